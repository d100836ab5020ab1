"""`Fact`: one applied envelope as the derivation sees it (not what a service learns through
its `ports.<Context>Facts`): what every handler needs, decoded once; the rest (payload,
aggregate, version) read from the envelope only by the handlers that use it."""

from __future__ import annotations

from typing import NamedTuple

from v2v.events.v1.envelope_pb2 import Envelope

_decode = Envelope.FromString
_new_fact = tuple.__new__


class Fact(NamedTuple):
    occurred_ns: int
    event_id: str
    event_type: str
    site_id: str
    recorded_ns: int
    envelope: Envelope

    @property
    def payload(self) -> bytes:
        return self.envelope.payload

    @property
    def aggregate_id(self) -> str:
        return self.envelope.aggregate_id

    @property
    def version(self) -> int:
        return self.envelope.aggregate_version


def in_derivation_order(records: list[bytes]) -> list[Fact]:
    """Facts sorted by when they happened, ties by event id: the same for any arrival order."""
    facts: list[Fact] = []
    append, decode, new_fact = facts.append, _decode, _new_fact
    for data in records:  # one pass per event of a replay: kept tight
        envelope = decode(data)
        occurred, recorded = envelope.occurred_at, envelope.recorded_at
        append(
            new_fact(
                Fact,
                (
                    occurred.seconds * 1_000_000_000 + occurred.nanos,
                    envelope.event_id,
                    envelope.event_type,
                    envelope.site_id,
                    recorded.seconds * 1_000_000_000 + recorded.nanos,
                    envelope,
                ),
            )
        )
    facts.sort(key=_sort_key)
    return facts


def _sort_key(fact: Fact) -> tuple[int, str]:
    return (fact[0], fact[1])
