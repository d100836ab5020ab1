"""Replaying a history through the projection's own fold, optionally as of a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError

from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.audit.sources import History
from v2v_projection.fold import ChainFold, UndecodableEnvelope


class AsOfError(ValueError):
    """--as-of is not an ISO-8601 time."""


def parse_as_of(text: str) -> datetime:
    """ISO-8601 (``2025-03-01T12:00:00Z``, ``2025-03-01``); a time without offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AsOfError(
            f"{text!r} is not an ISO-8601 UTC time (e.g. 2025-03-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class ViewError(Exception):
    """A chain cannot be derived: one of its records does not decode (tampered or corrupt)."""


@dataclass
class Replayed:
    fold: ChainFold
    records: int
    undecodable: int

    def chain(self, coi: str) -> dict[str, Any] | None:
        with _derivation(f"chain {coi}"):
            return self.fold.chain(coi)

    def chains(self) -> list[dict[str, Any]]:
        with _derivation("the chains"):
            return self.fold.chains()

    def kpis(self) -> dict[str, Any]:
        with _derivation("the KPIs"):
            return self.fold.kpis()


@contextmanager
def _derivation(what: str) -> Iterator[None]:
    try:
        yield
    except DecodeError as error:
        raise ViewError(
            f"cannot derive {what}: a record's payload does not decode ({error});"
            " run `v2v audit verify` to locate it"
        ) from None


def replay(
    history: History,
    as_of: datetime | None = None,
    on_record: Callable[[], None] | None = None,
) -> Replayed:
    """Every record through a fresh `ChainFold`; records that are not envelopes are counted
    and skipped (`verify` names them). Checkpoints are no chain's events: skipped."""
    fold = ChainFold(as_of=as_of)
    records = undecodable = 0
    for record in history.records:
        if is_checkpoint_topic(record.topic):
            if on_record is not None:
                on_record()
            continue
        records += 1
        try:
            fold.apply_bytes(record.value)
        except UndecodableEnvelope:
            undecodable += 1
        if on_record is not None:
            on_record()
    return Replayed(fold, records, undecodable)
