"""`v2v audit verify` reports a DIN bound to two COIs as a break (issue 14, I1): the issue's
in-house site whose intake and manufacturing both numbered DINs from 1 under one FIN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from v2v.common.v1 import common_pb2
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.envelope.codec import decode
from v2v_platform.ids import issue_coi
from v2v_projection.audit.verification import CHECK_IDENTITY, describe, verify_history
from v2v_testkit.audit import partitioned
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

PATIENT_1, PATIENT_2 = issue_coi("S1234", 26, 1).value, issue_coi("S1234", 26, 2).value
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Topics:
    def __init__(self) -> None:
        self.writer = EnvelopeWriter()
        self.by_topic: dict[str, list[bytes]] = {}

    def add(self, coi: str, aggregate: str, payload: Message, hours: float, context: str) -> None:
        site = "HOSP-A" if context == "intake" else "GMP-B"  # the generated keys' sites
        value = self.writer.write(
            coi,
            f"{aggregate}:{coi}",
            payload,
            T0 + timedelta(hours=hours),
            site=site,
            context=context,
        )
        self.by_topic.setdefault(f"v2v.{context}.events.v1", []).append(value)

    def label(self, coi: str, din: str, hours: float) -> None:
        labelled = intake.UnitLabelled(coi=coi, collection_id="c-1", din=din)
        self.add(coi, "Therapy", labelled, hours, "intake")

    def harvest(self, coi: str, dins: list[str], hours: float) -> None:
        made = manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id="b-1",
            product_dins=dins,
            hold_condition=common_pb2.CONDITION_CRYO,
        )
        self.add(coi, "Batch", made, hours, "manufacturing")


def test_a_din_bound_to_two_cois_is_an_identity_break() -> None:
    topics = Topics()
    for n in (1, 2, 3):
        topics.label(PATIENT_1, f"S123426000{n:03d}00", n)
    topics.label(PATIENT_2, "S12342600000400", 10)
    topics.harvest(PATIENT_2, ["S12342600000100", "S12342600000200"], 240)
    header, records = partitioned(topics.by_topic)

    outcome = verify_history(header, records, topics.writer.keys)

    assert [b.check for b in outcome.breaks] == [CHECK_IDENTITY, CHECK_IDENTITY]
    [harvest] = [r for r in records if decode(r.value).aggregate_id == f"Batch:{PATIENT_2}"]
    for found, din in zip(outcome.breaks, ("S123426000001", "S123426000002"), strict=True):
        assert found.location.topic == harvest.topic
        assert found.location.offset == harvest.offset
        assert found.aggregate_id == f"Batch:{PATIENT_2}"
        assert din in found.detail and PATIENT_1 in found.detail and PATIENT_2 in found.detail
        assert describe(found).startswith("identity at ")
    assert not outcome.clean


def test_one_din_per_coi_is_clean() -> None:
    topics = Topics()
    topics.label(PATIENT_1, "S12342600000100", 1)
    topics.label(PATIENT_2, "S12342600000200", 2)
    topics.harvest(PATIENT_2, ["S12342650000100"], 240)  # a disjoint block of numbers
    header, records = partitioned(topics.by_topic)

    outcome = verify_history(header, records, topics.writer.keys)

    assert outcome.clean, [describe(b) for b in outcome.breaks]
