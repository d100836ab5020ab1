"""The kernel's aggregate cache (issue 18 item 2): a read applies only the events stored after
the cached version; the caller gets a copy (a refused command or a failed save leaves the
cache as stored); other application instances' writes are seen (fast-forward); a failed
fast-forward leaves nothing cached; the cache is bounded (least recently used out) and set
by V2V_AGGREGATE_CACHE_SIZE (0: none)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Repository
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import EventStore, IntegrityError

from v2v_platform.aggregate_cache import (
    DEFAULT_SIZE,
    SETTING,
    CachedRepository,
    cache_size,
    copy_aggregate,
)
from v2v_platform.config import EventStoreSettings
from v2v_platform.errors import Refused
from v2v_platform.service_application import ServiceApplication, UnpublishedRecords

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class Counter(Aggregate):
    @event("Opened")
    def __init__(self) -> None:
        self.count = 0
        self.seen: list[int] = []
        self.tags: dict[str, set[str]] = {}

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1
        self.seen.append(self.count)


class Records(UnpublishedRecords):
    pass


class App(ServiceApplication[Records]):
    context = "testing"


def sqlite_env(path: Path, size: int | None = None) -> dict[str, str]:
    env = EventStoreSettings(sqlite_path=path).eventsourcing_env()
    return env if size is None else {**env, SETTING: str(size)}


def opened(application: App, counts: int = 0) -> UUID:
    counter = Counter()
    for _ in range(counts):
        counter.count_one()
    application.save(counter)
    return counter.id


def counted(application: App, counter_id: UUID) -> None:
    counter = application.get(Counter, counter_id, "counter")
    counter.count_one()
    application.save(counter)


class CountingEvents:
    """The repository's event store, counting the events a read takes from it."""

    def __init__(self, inner: EventStore[UUID]) -> None:
        self.inner = inner
        self.read = 0

    def get(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for domain_event in self.inner.get(*args, **kwargs):
            self.read += 1
            yield domain_event


def counting(application: App) -> CountingEvents:
    events = CountingEvents(application.events)
    application.repository.event_store = events  # type: ignore[assignment]
    return events


def test_a_read_applies_only_the_events_stored_after_the_cached_version() -> None:
    application = App(POPO, site_id="HOSP-A")
    counter_id = opened(application, counts=200)
    assert application.get(Counter, counter_id, "counter").count == 200  # the first read
    events = counting(application)
    assert application.get(Counter, counter_id, "counter").count == 200
    assert events.read == 0
    counted(application, counter_id)
    events.read = 0
    assert application.get(Counter, counter_id, "counter").count == 201
    assert events.read == 1  # not 202


def test_a_refused_command_leaves_the_cached_aggregate_as_stored() -> None:
    application = App(POPO, site_id="HOSP-A")
    counter_id = opened(application, counts=2)

    def refused() -> None:
        counter = application.get(Counter, counter_id, "counter")
        counter.count_one()
        counter.seen.append(99)  # changed in place, no event
        counter.tags.setdefault("a", set()).add("b")
        raise Refused("not now")

    with pytest.raises(Refused):
        application.retrying(refused)
    counter = application.get(Counter, counter_id, "counter")
    assert (counter.count, counter.seen, counter.tags, counter.version) == (2, [1, 2], {}, 3)


def test_a_save_that_fails_leaves_the_cached_aggregate_as_stored(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    application, other = App(sqlite_env(store), site_id="A"), App(sqlite_env(store), site_id="A")
    counter_id = opened(application, counts=1)
    stale = application.get(Counter, counter_id, "counter")
    counted(other, counter_id)
    stale.count_one()
    with pytest.raises(IntegrityError):
        application.save(stale)
    counter = application.get(Counter, counter_id, "counter")
    assert (counter.count, counter.version) == (2, 3)


def test_a_command_that_lost_the_race_is_retried_from_the_winners_state(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    application, other = App(sqlite_env(store), site_id="A"), App(sqlite_env(store), site_id="A")
    counter_id = opened(application)
    application.get(Counter, counter_id, "counter")  # cached before the race
    attempts: list[int] = []

    def attempt() -> int:
        counter = application.get(Counter, counter_id, "counter")
        attempts.append(counter.count)
        if len(attempts) == 1:
            counted(other, counter_id)  # another process wins this version
        counter.count_one()
        application.save(counter)
        return counter.count

    assert application.retrying(attempt) == 2
    assert attempts == [0, 1]
    assert other.get(Counter, counter_id, "counter").seen == [1, 2]


def test_two_applications_on_one_store_see_each_others_writes(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    first, second = App(sqlite_env(store), site_id="A"), App(sqlite_env(store), site_id="A")
    counter_id = opened(first)
    for _ in range(3):
        assert (
            second.get(Counter, counter_id, "counter").count
            == first.get(Counter, counter_id, "counter").count
        )
        counted(second, counter_id)
        counted(first, counter_id)
    assert first.get(Counter, counter_id, "counter").seen == [1, 2, 3, 4, 5, 6]
    assert second.get(Counter, counter_id, "counter").seen == [1, 2, 3, 4, 5, 6]


def test_a_fast_forward_that_fails_leaves_nothing_cached(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"
    first, second = App(sqlite_env(store), site_id="A"), App(sqlite_env(store), site_id="A")
    counter_id = opened(first, counts=1)
    first.get(Counter, counter_id, "counter")
    counted(second, counter_id)
    repository = first.repository
    assert isinstance(repository, CachedRepository)
    assert counter_id in repository.cached_ids()

    def breaks_halfway(aggregate: Any, events: Iterable[Any]) -> Any:
        aggregate.count = -1  # half applied
        raise RuntimeError("cannot apply")

    with pytest.raises(RuntimeError):
        repository.get(counter_id, projector_func=breaks_halfway)
    assert counter_id not in repository.cached_ids()
    counter = first.get(Counter, counter_id, "counter")
    assert (counter.count, counter.version) == (2, 3)


def test_the_cache_keeps_its_size_the_least_recently_used_out() -> None:
    application = App({**POPO, SETTING: "2"}, site_id="A")
    a, b, c = opened(application), opened(application), opened(application)
    for counter_id in (a, b, c, b):
        application.get(Counter, counter_id, "counter")
    repository = application.repository
    assert isinstance(repository, CachedRepository)
    assert repository.cached_ids() == [c, b]
    application.get(Counter, a, "counter")
    assert repository.cached_ids() == [b, a]


def test_the_setting_sizes_the_cache_and_zero_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cache_size({}) == DEFAULT_SIZE == 1000
    assert cache_size({SETTING: " 25 "}) == 25
    for bad in ("-1", "lots", "1.5", "2000000"):
        with pytest.raises(ValueError, match=SETTING):
            cache_size({SETTING: bad})
    with pytest.raises(ValueError, match=SETTING):
        App({**POPO, SETTING: "lots"}, site_id="A")
    cached = App(POPO, site_id="A").repository
    assert isinstance(cached, CachedRepository) and cached.maxsize == DEFAULT_SIZE
    monkeypatch.setenv(SETTING, "7")  # the process's environment, as a service reads it
    from_process = App(POPO, site_id="A").repository
    assert isinstance(from_process, CachedRepository) and from_process.maxsize == 7
    uncached = App({**POPO, SETTING: "0"}, site_id="A")
    assert type(uncached.repository) is Repository
    counter_id = opened(uncached, counts=5)
    uncached.get(Counter, counter_id, "counter")
    events = counting(uncached)
    uncached.get(Counter, counter_id, "counter")
    assert events.read == 6  # the whole stream, every time


def test_the_unpublished_records_are_cached_too() -> None:
    records = Records({**POPO, SETTING: "3"})
    counter = Counter()
    records.save(counter)
    assert records.find(Counter, counter.id) is not None
    repository = records.repository
    assert isinstance(repository, CachedRepository) and repository.maxsize == 3
    assert repository.cached_ids() == [counter.id]


def test_commands_in_threads_lose_no_update(tmp_path: Path) -> None:
    application = App(sqlite_env(tmp_path / "events.sqlite"), site_id="A")
    counter_id = opened(application)

    def worker() -> None:
        for _ in range(15):
            application.retrying(lambda: counted(application, counter_id))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counter = application.get(Counter, counter_id, "counter")
    assert counter.count == 60 and counter.seen == list(range(1, 61))


# the copy a reader gets


class Colour(Enum):
    RED = "red"


@dataclass(frozen=True)
class Point:
    x: int
    label: str


@dataclass(frozen=True)
class Bag:
    items: list[int]


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


class Hooked:
    """A value with its own deepcopy: the copy is made its way."""

    def __init__(self) -> None:
        self.copies = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Hooked:
        twin = Hooked()
        twin.copies = self.copies + 1
        return twin


def test_a_readers_copy_is_deep_and_shares_only_immutable_values() -> None:
    counter: Any = Counter()
    shared: list[int] = [1]
    loop: list[Any] = []
    loop.append(loop)
    state: dict[str, Any] = {
        "shared_a": shared,
        "shared_b": shared,
        "point": Point(1, "p"),
        "bag": Bag([1, 2]),
        "tree": Node("root", [Node("leaf")]),
        "colour": Colour.RED,
        "tuple_of_lists": ([1], [2]),
        "atoms": (1, "a", None),
        "frozen": frozenset({"a"}),
        "hooked": Hooked(),
        "loop": loop,
        "nested": {"k": {"s": {1, 2}}},
    }
    vars(counter).update(state)
    twin: Any = copy_aggregate(counter)
    assert (twin.id, twin.version) == (counter.id, counter.version)
    for name in ("count", "seen", "tags", *state):
        if name not in ("hooked", "loop"):
            assert getattr(twin, name) == getattr(counter, name) == getattr(deepcopy(counter), name)
    assert twin.shared_a is twin.shared_b is not shared  # aliases stay aliases
    assert twin.loop[0] is twin.loop is not loop
    assert twin.point is counter.point  # immutable all through: shared (deepcopy copies it)
    assert twin.atoms is counter.atoms and twin.colour is Colour.RED
    assert twin.bag is not counter.bag and twin.bag.items is not counter.bag.items
    assert twin.tuple_of_lists[0] is not counter.tuple_of_lists[0]
    assert twin.hooked.copies == 1
    twin.seen.append(5)
    twin.tags["x"] = set()
    twin.tree.children[0].children.append(Node("new"))
    twin.nested["k"]["s"].add(3)
    twin.bag.items.append(3)
    assert counter.seen == [] and counter.tags == {} and counter.tree.children[0].children == []
    assert counter.nested == {"k": {"s": {1, 2}}} and counter.bag.items == [1, 2]
    assert type(twin) is Counter
