"""One DIN, one patient across chains (issue 14, I1): a DIN bound to two COIs is a critical
`identity-conflict` alert on both chains, a DIN infused under two COIs a `double-infusion` on
both, whatever the arrival order; refusals bind nothing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.ids import issue_coi
from v2v_projection.fold import ChainFold
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

PATIENT_1, PATIENT_2 = issue_coi("S1234", 26, 1).value, issue_coi("S1234", 26, 2).value
# The issue's in-house site: intake labelled S..0100/0200/0300, then manufacturing, numbering
# from 1 under the same FIN, harvested S..0100 and S..0200 for patient 2.
BAGS = ("S12342600000100", "S12342600000200", "S12342600000300")
PRODUCTS = ("S12342600000100", "S12342600000200")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SITE = "SHEBA"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def stamp(hours: float) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at(hours))
    return value


class Consortium:
    def __init__(self) -> None:
        self.writer = EnvelopeWriter()
        self.records: list[bytes] = []

    def add(
        self, coi: str, aggregate: str, payload: Message, hours: float, context: str, site: str
    ) -> bytes:
        value = self.writer.write(
            coi, f"{aggregate}:{coi}", payload, at(hours), site=site, context=context
        )
        self.records.append(value)
        return value

    def label(self, coi: str, din: str, hours: float) -> bytes:
        labelled = intake.UnitLabelled(
            coi=coi, collection_id="c-1", din=din, unit_kind="apheresis-bag"
        )
        return self.add(coi, "Therapy", labelled, hours, "intake", "HOSP-A")

    def harvest(self, coi: str, dins: tuple[str, ...], hours: float) -> bytes:
        made = manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id=f"batch-{coi}",
            product_dins=list(dins),
            hold_condition=common_pb2.CONDITION_CRYO,
            created_at=stamp(hours),
        )
        return self.add(coi, "Batch", made, hours, "manufacturing", "GMP-B")

    def infuse(self, coi: str, din: str, hours: float) -> bytes:
        administered = infusion.InfusionAdministered(coi=coi, din=din, administered_at=stamp(hours))
        return self.add(coi, f"ProductAtSite-{din}", administered, hours, "infusion", "HOSP-A")

    def views(self, records: list[bytes] | None = None) -> dict[str, dict[str, Any]]:
        fold = ChainFold()
        fold.apply_all(self.records if records is None else records)
        return {coi: view for coi in fold.cois() if (view := fold.chain(coi)) is not None}


def alerts(view: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [alert for alert in view["alerts"] if alert["kind"] == kind]


def the_issue() -> Consortium:
    consortium = Consortium()
    for n, bag in enumerate(BAGS):
        consortium.label(PATIENT_1, bag, n * 0.1)
    consortium.label(PATIENT_2, "S12342600000400", 24)
    consortium.harvest(PATIENT_2, PRODUCTS, 240)
    return consortium


def test_a_din_bound_to_two_cois_is_a_critical_identity_conflict_on_both_chains() -> None:
    views = the_issue().views()

    for coi, other in ((PATIENT_1, PATIENT_2), (PATIENT_2, PATIENT_1)):
        found = alerts(views[coi], "identity-conflict")
        assert len(found) == 2  # S..0100 and S..0200
        for alert, din in zip(found, PRODUCTS, strict=True):
            assert alert["severity"] == "critical"
            assert alert["at"] == at(240).isoformat()  # when the second binding happened
            assert din in alert["detail"] and coi in alert["detail"] and other in alert["detail"]
    assert not alerts(views[PATIENT_1], "double-infusion")


def test_the_conflict_is_the_same_for_every_arrival_order() -> None:
    consortium = the_issue()
    expected = consortium.views()

    for seed in range(5):
        shuffled = list(consortium.records)
        random.Random(seed).shuffle(shuffled)
        assert consortium.views(shuffled) == expected


def test_a_chain_learns_its_conflict_from_another_chains_fact() -> None:
    """Patient 1's chain is derived (and cached) before manufacturing numbers patient 2's
    product with its DIN; the fold marks patient 1's chain as changed."""
    consortium = the_issue()
    *earlier, harvest = consortium.records
    fold = ChainFold()
    fold.apply_all(earlier)
    before = fold.chain(PATIENT_1)
    assert before is not None and not alerts(before, "identity-conflict")
    fold.take_changed()

    fold.apply_bytes(harvest)

    assert fold.take_changed() == {PATIENT_1, PATIENT_2}
    after = fold.chain(PATIENT_1)
    assert after is not None and len(alerts(after, "identity-conflict")) == 2


def test_one_din_infused_under_two_cois_is_a_double_infusion_on_both_chains() -> None:
    consortium = the_issue()
    consortium.infuse(PATIENT_2, PRODUCTS[1], 300)
    consortium.infuse(PATIENT_1, PRODUCTS[1], 310)

    views = consortium.views()

    for coi in (PATIENT_1, PATIENT_2):
        [alert] = alerts(views[coi], "double-infusion")
        assert alert["severity"] == "critical" and alert["at"] == at(310).isoformat()
        assert PATIENT_1 in alert["detail"] and PATIENT_2 in alert["detail"]


def test_a_din_with_other_flag_characters_is_the_same_donation_number() -> None:
    consortium = Consortium()
    consortium.label(PATIENT_1, "S12342600000100", 0)
    consortium.label(PATIENT_2, "S12342600000199", 1)

    views = consortium.views()

    assert len(alerts(views[PATIENT_1], "identity-conflict")) == 1
    assert len(alerts(views[PATIENT_2], "identity-conflict")) == 1


def test_a_refused_scan_of_another_patients_unit_binds_nothing() -> None:
    consortium = Consortium()
    consortium.label(PATIENT_1, BAGS[0], 0)
    refused = infusion.BedsideMismatchRecorded(
        coi=PATIENT_2,
        scanned_din=BAGS[0],
        wristband_coi=PATIENT_2,
        reason_code="coi-mismatch",
        scanned_at=stamp(5),
    )
    consortium.add(PATIENT_2, "BedsideMismatch", refused, 5, "infusion", "HOSP-A")

    views = consortium.views()

    assert not alerts(views[PATIENT_1], "identity-conflict")
    assert not alerts(views[PATIENT_2], "identity-conflict")
    assert [a["kind"] for a in views[PATIENT_2]["alerts"]] == ["identity-mismatch"]
