"""A small eventsourcing application used to prove the relay and consumer (tests only).

One `Chain` aggregate per COI; each `note` records an attributed event. Its RelaySpec is
`v2v_platform.testing.outbox_app:SPEC`, so a relay process can be started on it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from google.protobuf.struct_pb2 import Struct

from v2v_platform.envelope.from_domain import AttributedEventTranslator
from v2v_platform.relay.process import RelaySpec

NAMESPACE = UUID("0f7d3c9a-2b1e-5f4d-8a6c-9e0b1d2c3f4a")
SITE_ID = "HOSP-A"
ACTOR = {"user_id": "u-7", "printed_name": "Test Operator", "role": "collection"}


class Chain(Aggregate):
    class Started(Aggregate.Created):
        coi: str
        actor: dict[str, str]
        site_id: str

    class Noted(Aggregate.Event):
        coi: str
        actor: dict[str, str]
        site_id: str
        reason: str
        seq: int

    @staticmethod
    def create_id(coi: str) -> UUID:
        return uuid5(NAMESPACE, coi)

    @event(Started)
    def __init__(self, coi: str, actor: dict[str, str], site_id: str) -> None:
        self.coi = coi
        self.notes = 0

    @event(Noted)
    def note(self, coi: str, actor: dict[str, str], site_id: str, reason: str, seq: int) -> None:
        self.notes += 1


class ChainApp(Application[UUID]):
    def start(self, coi: str) -> UUID:
        chain = Chain(coi=coi, actor=ACTOR, site_id=SITE_ID)
        self.save(chain)
        return chain.id

    def note(self, coi: str, seq: int) -> None:
        chain: Chain = self.repository.get(Chain.create_id(coi))
        chain.note(coi=coi, actor=ACTOR, site_id=SITE_ID, reason="", seq=seq)
        self.save(chain)


def _payload(event: Any) -> Struct:
    payload = Struct()
    payload.update({"kind": type(event).__name__, "seq": getattr(event, "seq", 0)})
    return payload


TRANSLATOR = AttributedEventTranslator({Chain.Started: _payload, Chain.Noted: _payload})
SPEC = RelaySpec(context="intake", application=ChainApp, translator=TRANSLATOR)
