"""One test per alert kind of the chain view, each on a hand-written history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.events.v1.envelope_pb2 import Envelope
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.protocol_rules import DEFAULT_RULES
from v2v_projection.fold import ChainFold
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
BAG, PRODUCT = "A12342500004200", "B23452500000700"
BATCH, SHIPMENT = "batch-1", "shipment-1"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class History:
    def __init__(self) -> None:
        self.writer = EnvelopeWriter()
        self.records: list[bytes] = []

    def add(self, aggregate: str, payload: Message, hours: float, site: str = "HOSP-A") -> bytes:
        record = self.writer.write(COI, aggregate, payload, at(hours), site=site)
        self.records.append(record)
        return record

    def chain(self, records: list[bytes] | None = None) -> dict[str, Any]:
        fold = ChainFold()
        for record in self.records if records is None else records:
            fold.apply_bytes(record)
        view = fold.chain(COI)
        assert view is not None
        return view

    def alerts(self, kind: str) -> list[dict[str, Any]]:
        return [alert for alert in self.chain()["alerts"] if alert["kind"] == kind]


def stamp(hours: float) -> Timestamp:
    return Timestamp(seconds=int(at(hours).timestamp()))


def labelled(history: History) -> None:
    unit = intake.UnitLabelled(coi=COI, collection_id="c-1", din=BAG, unit_kind="apheresis-bag")
    history.add("Therapy:1", unit, 1)


def shipped(history: History, hours: float = 2) -> None:
    created = logistics.ShipmentCreated(
        coi=COI,
        shipment_id=SHIPMENT,
        manifest_dins=[BAG],
        origin_site_id="HOSP-A",
        destination_site_id="GMP-B",
        custodian="site:HOSP-A",
        created_at=stamp(hours),
    )
    history.add("Shipment:1", created, hours, "LOGI-1")
    handed = logistics.CustodyHandedOver(
        coi=COI,
        shipment_id=SHIPMENT,
        from_party="site:HOSP-A",
        to_party="courier:C-1",
        status="picked-up",
        scanned_at=stamp(hours + 1),
    )
    history.add("Shipment:1", handed, hours + 1, "LOGI-1")


def received_at_gmp(history: History, hours: float) -> None:
    received = manufacturing.UnitReceived(
        coi=COI, din=BAG, manufacturing_site_id="GMP-B", received_at=stamp(hours)
    )
    history.add("ReceivedUnit:1", received, hours, "GMP-B")


def product_made(history: History) -> None:
    products = manufacturing.ProductUnitsCreated(
        coi=COI,
        batch_id=BATCH,
        product_dins=[PRODUCT],
        input_dins=[BAG],
        hold_condition=common_pb2.CONDITION_FRESH_COLD,
        created_at=stamp(100),
    )
    history.add("Batch:1", products, 100, "GMP-B")


def certified(hours: float) -> release.ProvisionallyCertified:
    signature = common_pb2.SignatureManifestation(
        user_id="u-qp", printed_name="Dr. Quinn Person", meaning="approval", signed_at=stamp(hours)
    )
    return release.ProvisionallyCertified(
        coi=COI,
        batch_id=BATCH,
        product_dins=[PRODUCT],
        certified_at=stamp(hours),
        qp_signature=signature,
        spec_version="v1",
    )


def administered(hours: float) -> infusion.InfusionAdministered:
    return infusion.InfusionAdministered(
        coi=COI, din=PRODUCT, administered_at=stamp(hours), release_basis="provisional"
    )


def test_every_mismatch_event_is_an_identity_mismatch_alert() -> None:
    history = History()
    history.add("Therapy:1", intake.LabelMismatchRecorded(coi=COI, reason_code="din-mismatch"), 1)
    mismatch = manufacturing.UnitReceiptMismatchRecorded(coi=COI, reason_code="coi-mismatch")
    history.add("ReceiptMismatch:1", mismatch, 2, "GMP-B")
    scan = logistics.ScanMismatchRecorded(coi=COI, reason_code="other-coi", scanned_at=stamp(3))
    history.add("Shipment:1", scan, 3, "LOGI-1")
    bedside = infusion.BedsideMismatchRecorded(coi=COI, reason_code="coi-mismatch")
    history.add("BedsideMismatch:1", bedside, 4)

    alerts = history.alerts("identity-mismatch")

    assert [alert["at"] for alert in alerts] == [at(h).isoformat() for h in (1, 2, 3, 4)]
    assert "din-mismatch" in alerts[0]["detail"] and "other-coi" in alerts[2]["detail"]


def test_custody_taken_by_a_second_holder_is_double_custody() -> None:
    history = History()
    labelled(history)
    shipped(history)
    received_at_gmp(history, 10)  # the courier never delivered it

    alerts = history.alerts("double-custody")

    assert len(alerts) == 1
    assert alerts[0]["at"] == at(10).isoformat()
    assert "site:GMP-B" in alerts[0]["detail"] and "courier:C-1" in alerts[0]["detail"]


def test_a_lost_shipment_leaves_a_custody_gap() -> None:
    history = History()
    labelled(history)
    shipped(history)
    lost = logistics.ShipmentExceptionRecorded(
        coi=COI, shipment_id=SHIPMENT, kind="lost", custodian="courier:C-1", recorded_at=stamp(6)
    )
    history.add("Shipment:1", lost, 6, "LOGI-1")

    assert [a["at"] for a in history.alerts("custody-gap")] == [at(6).isoformat()]
    received_at_gmp(history, 9)  # found again: the gap is bounded
    (gap,) = history.alerts("custody-gap")
    assert gap["at"] == at(6).isoformat() and at(9).isoformat() in gap["detail"]


def test_a_normal_journey_of_a_unit_has_continuous_custody() -> None:
    history = History()
    labelled(history)
    shipped(history)
    delivered = logistics.ShipmentDelivered(
        coi=COI,
        shipment_id=SHIPMENT,
        from_party="courier:C-1",
        destination_site_id="GMP-B",
        received_at=stamp(8),
    )
    history.add("Shipment:1", delivered, 8, "LOGI-1")
    received_at_gmp(history, 8.5)

    view = history.chain()

    custodians = [(c["custodian"], c["to"]) for c in view["units"][0]["custody"]]
    assert custodians == [
        ("site:HOSP-A", at(3).isoformat()),
        ("courier:C-1", at(8).isoformat()),
        ("site:GMP-B", None),
    ]
    assert view["alerts"] == []


def test_window_breaches_are_alerts() -> None:
    history = History()
    breached = logistics.StabilityWindowBreached(
        coi=COI, shipment_id=SHIPMENT, window_ends_at=stamp(40), detected_at=stamp(41)
    )
    history.add("Shipment:1", breached, 41, "LOGI-1")
    thawed = infusion.ThawStarted(
        coi=COI, din=PRODUCT, thaw_started_at=stamp(120), infuse_by=stamp(120.5)
    )
    history.add("ProductAtSite:1", thawed, 120)
    history.add("Batch:1", certified(110), 110, "QC-B")
    history.add("ProductAtSite:1", administered(121), 121)

    alerts = history.alerts("stability-window-breach")

    assert [alert["at"] for alert in alerts] == [at(41).isoformat(), at(121).isoformat()]
    assert "thaw deadline" in alerts[1]["detail"]


RELEASED = 110  # hours after T0: the provisional certification of the fresh product


def infused_after_verification(window: timedelta, infused_hours: float) -> History:
    """A fresh product released at RELEASED, verified at the bedside by a site that applied
    `window` (infuse_by = release + window, as the infusion service records it), infused at
    `infused_hours`."""
    history = History()
    product_made(history)
    history.add("BatchRelease:1", certified(RELEASED), RELEASED, "QC-B")
    infuse_by = at(RELEASED) + window
    verified = infusion.BedsideVerified(
        coi=COI,
        din=PRODUCT,
        verified_at=stamp(infused_hours - 0.5),
        release_basis="provisional",
        infuse_by=Timestamp(seconds=int(infuse_by.timestamp())),
        protocol_rules=replace(DEFAULT_RULES, fresh_product=window).tag,
    )
    history.add("ProductAtSite:1", verified, infused_hours - 0.5)
    history.add("ProductAtSite:1", administered(infused_hours), infused_hours)
    return history


def test_a_site_with_a_longer_fresh_window_infusing_within_it_raises_no_window_alert() -> None:
    history = infused_after_verification(timedelta(hours=96), RELEASED + 80)

    assert history.alerts("stability-window-breach") == []
    assert history.chain()["alerts"] == []


def test_a_site_with_a_shorter_fresh_window_infusing_after_its_deadline_is_an_alert() -> None:
    history = infused_after_verification(timedelta(hours=48), RELEASED + 50)

    (alert,) = history.alerts("stability-window-breach")

    assert alert["at"] == at(RELEASED + 50).isoformat()
    assert at(RELEASED + 48).isoformat() in alert["detail"]
    assert "deadline verified at the bedside" in alert["detail"]


def test_the_default_fresh_window_is_judged_as_before() -> None:
    window = DEFAULT_RULES.fresh_product
    within = infused_after_verification(window, RELEASED + 71)
    late = infused_after_verification(window, RELEASED + 73)

    assert within.alerts("stability-window-breach") == []
    (alert,) = late.alerts("stability-window-breach")
    assert alert["at"] == at(RELEASED + 73).isoformat()
    assert (at(RELEASED) + window).isoformat() in alert["detail"]


def test_a_fresh_infusion_without_a_recorded_deadline_raises_no_window_alert() -> None:
    history = History()
    product_made(history)
    history.add("BatchRelease:1", certified(RELEASED), RELEASED, "QC-B")
    history.add("ProductAtSite:1", administered(RELEASED + 200), RELEASED + 200)

    assert history.alerts("stability-window-breach") == []


def test_a_missed_thaw_deadline_is_one_alert_even_when_the_bedside_verified_it_too() -> None:
    history = History()
    product_made(history)
    history.add("BatchRelease:1", certified(RELEASED), RELEASED, "QC-B")
    deadline = stamp(RELEASED + 30.5)
    thawed = infusion.ThawStarted(
        coi=COI, din=PRODUCT, thaw_started_at=stamp(RELEASED + 30), infuse_by=deadline
    )
    history.add("ProductAtSite:1", thawed, RELEASED + 30)
    verified = infusion.BedsideVerified(coi=COI, din=PRODUCT, infuse_by=deadline)
    history.add("ProductAtSite:1", verified, RELEASED + 30.2)
    history.add("ProductAtSite:1", administered(RELEASED + 31), RELEASED + 31)

    (alert,) = history.alerts("stability-window-breach")

    assert "thaw deadline" in alert["detail"]


def test_temperature_excursions_are_alerts() -> None:
    history = History()
    excursion = logistics.TemperatureExcursionRecorded(
        coi=COI,
        shipment_id=SHIPMENT,
        device_id="LOGGER-5",
        started_at=stamp(5),
        duration_seconds=1800,
        min_c=8.5,
        max_c=11.0,
    )
    history.add("Shipment:1", excursion, 6, "LOGI-1")

    (alert,) = history.alerts("temperature-excursion")

    assert alert["at"] == at(5).isoformat() and "LOGGER-5" in alert["detail"]


def test_infusion_before_the_release_decision_time_is_an_alert_whatever_the_arrival_order() -> None:
    history = History()
    product_made(history)
    late_release = history.add("BatchRelease:1", certified(130), 130, "QC-B")
    infused = history.add("ProductAtSite:1", administered(125), 125)

    for order in ([late_release, infused], [infused, late_release]):
        view = history.chain([history.records[0], *order])
        kinds = [alert["kind"] for alert in view["alerts"]]
        assert kinds == ["infusion-without-release"]


def test_infusion_after_a_valid_release_raises_no_alert() -> None:
    history = History()
    product_made(history)
    history.add("BatchRelease:1", certified(110), 110, "QC-B")
    history.add("ProductAtSite:1", administered(125), 125)

    view = history.chain()

    assert view["alerts"] == []
    assert view["releases"][0]["status"] == "provisionally-certified"
    assert view["releases"][0]["decisions"][0]["signature"]["printed_name"] == "Dr. Quinn Person"


def test_an_infusion_after_a_rejection_is_without_release() -> None:
    history = History()
    product_made(history)
    history.add("BatchRelease:1", certified(110), 110, "QC-B")
    rejected = release.BatchRejected(coi=COI, batch_id=BATCH, rejected_at=stamp(115))
    history.add("BatchRelease:1", rejected, 115, "QC-B")
    history.add("ProductAtSite:1", administered(125), 125)

    assert len(history.alerts("infusion-without-release")) == 1


def test_a_receipt_before_release_is_an_alert() -> None:
    history = History()
    product_made(history)
    received = infusion.ProductReceived(
        coi=COI, din=PRODUCT, treating_site_id="HOSP-A", batch_id=BATCH, received_at=stamp(105)
    )
    history.add("ProductAtSite:1", received, 105)
    history.add("BatchRelease:1", certified(110), 110, "QC-B")

    assert len(history.alerts("receipt-without-release")) == 1


def test_a_post_release_failure_is_an_alert_until_acknowledged() -> None:
    history = History()
    failure = release.PostReleaseFailureRecorded(
        coi=COI, batch_id=BATCH, failure_id="f-1", test="sterility", result_at=stamp(200)
    )
    history.add("BatchRelease:1", failure, 200, "QC-B")
    assert len(history.alerts("unacknowledged-post-release-failure")) == 1

    signature = common_pb2.SignatureManifestation(
        user_id="u-doc", printed_name="Dr. Kai", meaning="responsibility", signed_at=stamp(202)
    )
    acknowledged = infusion.PostReleaseFailureAcknowledged(
        coi=COI, failure_id="f-1", batch_id=BATCH, physician_signature=signature
    )
    history.add("FailureAcknowledgement:1", acknowledged, 202)

    view = history.chain()
    assert [a["kind"] for a in view["alerts"]] == []
    assert view["releases"][0]["post_release_failures"] == [
        {"failure_id": "f-1", "test": "sterility", "acknowledged": True}
    ]
    assert view["signatures"][0]["meaning"] == "responsibility"


def test_a_broken_hash_chain_is_an_integrity_alert() -> None:
    history = History()
    labelled(history)
    shipped(history)
    tampered = Envelope.FromString(history.records[-1])
    tampered.prev_hash = b"\x00" * 32
    history.records[-1] = tampered.SerializeToString(deterministic=True)

    (alert,) = history.alerts("integrity-break")

    assert alert["event_id"] == tampered.event_id
    assert "prev_hash does not match" in alert["detail"]
