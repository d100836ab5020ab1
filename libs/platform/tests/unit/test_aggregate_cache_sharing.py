"""The aggregate cache's copies share what is immutable all through (issue 18 item 2, commands
at 30 % of the raw save rate): a frozen dataclass whose attributes are all shared is shared
itself, as a tuple of immutable values is, and instances of a class a domain declares
`immutable` are shared without looking inside, so an aggregate holding thousands of such
values (a batch's steps, a release's results) is copied at C speed instead of rebuilt value
by value on every command. What is mutable anywhere inside is still copied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from v2v_platform.aggregate_cache import copy_aggregate, immutable


class Kind(Enum):
    A = "a"


@dataclass(frozen=True)
class Who:
    user_id: str
    name: str


@dataclass(frozen=True)
class Result:
    """Frozen, holding another frozen value, a tuple and an enum member: immutable all
    through, though not every attribute is a string or a number."""

    value: str
    by: Who
    lots: tuple[str, ...]
    kind: Kind
    at: datetime


@dataclass(frozen=True)
class Wrapper:
    """Frozen, but holding a list: mutable inside, so copied."""

    inner: Result
    notes: list[str]


@immutable
@dataclass(frozen=True)
class Step:
    kind: str
    lots: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...]


class Holder(Aggregate):
    def __init__(self) -> None:
        self.results: dict[str, Result] = {}
        self.steps: list[Step] = []
        self.wrapped: list[Wrapper] = []


AT = datetime(2026, 1, 2, tzinfo=UTC)


def result(n: int) -> Result:
    return Result(f"v{n}", Who("u1", "Ann Analyst"), ("L1", "L2"), Kind.A, AT)


def test_a_frozen_value_immutable_all_through_is_shared() -> None:
    holder: Any = Holder()
    holder.results = {str(n): result(n) for n in range(3)}
    twin = copy_aggregate(holder)
    assert twin.results == holder.results and twin.results is not holder.results
    assert all(twin.results[k] is holder.results[k] for k in holder.results)


def test_a_frozen_value_with_something_mutable_inside_is_still_copied() -> None:
    holder: Any = Holder()
    shared = result(1)
    holder.wrapped = [Wrapper(shared, ["n"]), Wrapper(shared, ["m"])]
    twin = copy_aggregate(holder)
    assert twin.wrapped == holder.wrapped
    assert twin.wrapped[0] is not holder.wrapped[0]
    assert twin.wrapped[0].notes is not holder.wrapped[0].notes
    assert twin.wrapped[0].inner is shared  # immutable all through: shared
    twin.wrapped[0].notes.append("x")
    assert holder.wrapped[0].notes == ["n"]


def test_instances_of_a_class_declared_immutable_are_shared() -> None:
    holder: Any = Holder()
    holder.steps = [Step("expansion", ("L",), (("MOI", "5"),)) for _ in range(1000)]
    twin = copy_aggregate(holder)
    assert twin.steps == holder.steps and twin.steps is not holder.steps
    assert all(a is b for a, b in zip(twin.steps, holder.steps, strict=True))
    twin.steps.append(Step("harvest", (), ()))
    assert len(holder.steps) == 1000


def test_only_a_frozen_dataclass_can_be_declared_immutable() -> None:
    @dataclass
    class Thawed:
        value: str

    class Plain:
        pass

    for cls in (Thawed, Plain):
        with pytest.raises(TypeError, match="not a frozen dataclass"):
            immutable(cls)
