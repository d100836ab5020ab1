"""A chain's envelopes as an EPCIS 2.0 document (v2v_projection.standards.epcis): one event per
fact kind as docs/standards.md maps it (bizStep, disposition, readPoint, bizLocation, source
and destination, clinical eventTime, recorded recordTime), transformations for collections
and batches, the loggers' readings as sensor elements, refusals as inspections with the
mismatch found, a corrected QC result declared erroneous; schema-valid and deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_projection.standards.epcis import epcis_document
from v2v_projection.standards.epcis_ids import din_of_uri, din_uri, party_uri, site_uri
from v2v_projection.standards.epcis_schema import schema_errors
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
BAG, PRODUCT, STRANGER = "A12342500004200", "A12342500004300", "A12342500009900"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HOSPITAL, GMP, LOGI = "HOSP-A", "GMP-B", "LOGI-1"
RECORDING_DELAY = timedelta(minutes=7)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def shown(hours: float) -> str:
    return at(hours).isoformat(timespec="milliseconds")


def stamp(hours: float) -> Timestamp:
    moment = at(hours)
    return Timestamp(seconds=int(moment.timestamp()), nanos=moment.microsecond * 1000)


def unit(din: str) -> str:
    return f"urn:v2v:isbt128:din:{din[:13]}:{din[13:]}"


class Chain:
    """Hand-written envelopes of one chain, each recorded RECORDING_DELAY after it happened."""

    def __init__(self) -> None:
        self.writer = EnvelopeWriter()
        self.records: list[bytes] = []

    def add(self, aggregate: str, payload: Message, hours: float, site: str, context: str) -> None:
        recorded = at(hours) + RECORDING_DELAY
        self.records.append(
            self.writer.write(
                COI, aggregate, payload, recorded, site=site, context=context, occurred_at=at(hours)
            )
        )

    def intake(self, payload: Message, hours: float) -> None:
        self.add(f"Unit:{BAG}", payload, hours, HOSPITAL, "intake")

    def shipment(self, shipment_id: str, payload: Message, hours: float) -> None:
        self.add(f"Shipment:{shipment_id}", payload, hours, LOGI, "logistics")

    def gmp(self, aggregate: str, payload: Message, hours: float) -> None:
        self.add(aggregate, payload, hours, GMP, "manufacturing")

    def qc(self, payload: Message, hours: float) -> None:
        self.add("BatchRelease:B-1", payload, hours, "QC-B", "release")

    def ward(self, payload: Message, hours: float) -> None:
        self.add(f"ProductAtSite:{PRODUCT}", payload, hours, HOSPITAL, "infusion")

    def document(self) -> dict[str, Any]:
        return epcis_document(self.records, CREATED)

    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.document()["epcisBody"]["eventList"]
        return events


def collected(chain: Chain) -> None:
    chain.intake(
        intake.UnitLabelled(
            coi=COI, collection_id="COL-1", din=BAG, unit_kind="apheresis-bag", labelled_at=stamp(1)
        ),
        1,
    )
    chain.intake(
        intake.UnitPackaged(
            coi=COI,
            din=BAG,
            condition=common_pb2.CONDITION_FRESH_COLD,
            packaged_at=stamp(2),
            manufacturing_site_id=GMP,
            temperature_c=4.5,
        ),
        2,
    )


def shipped(chain: Chain) -> None:
    chain.shipment(
        "S-1",
        logistics.ShipmentCreated(
            coi=COI,
            shipment_id="S-1",
            manifest_dins=[BAG],
            condition=common_pb2.CONDITION_FRESH_COLD,
            origin_site_id=HOSPITAL,
            destination_site_id=GMP,
            data_logger_id="LOGGER-7",
            custodian=f"site:{HOSPITAL}/collection",
            created_at=stamp(3),
            origin_department="collection",
        ),
        3,
    )
    pickup = logistics.CustodyHandedOver(
        coi=COI,
        shipment_id="S-1",
        from_party=f"site:{HOSPITAL}/collection",
        to_party="courier:C-1",
        status="picked-up",
        scanned_at=stamp(4),
    )
    chain.shipment("S-1", pickup, 4)
    relay = logistics.CustodyHandedOver(
        coi=COI,
        shipment_id="S-1",
        from_party="courier:C-1",
        to_party="courier:C-2",
        status="in-transit",
        scanned_at=stamp(5),
    )
    chain.shipment("S-1", relay, 5)
    readings = logistics.TemperatureReadingsRecorded(
        coi=COI,
        shipment_id="S-1",
        device_id="LOGGER-7",
        readings=[
            logistics.TemperatureReading(measured_at=stamp(4.5), temperature_c=4.0),
            logistics.TemperatureReading(measured_at=stamp(5.5), temperature_c=9.25),
        ],
    )
    chain.shipment("S-1", readings, 5.6)
    excursion = logistics.TemperatureExcursionRecorded(
        coi=COI,
        shipment_id="S-1",
        device_id="LOGGER-7",
        started_at=stamp(5.5),
        ended_at=stamp(5.5),
        min_c=9.25,
        max_c=9.25,
        condition=common_pb2.CONDITION_FRESH_COLD,
    )
    chain.shipment("S-1", excursion, 5.61)
    chain.shipment(
        "S-1",
        logistics.ShipmentDelivered(
            coi=COI,
            shipment_id="S-1",
            from_party="courier:C-2",
            destination_site_id=GMP,
            received_at=stamp(6),
            manifest_dins=[BAG],
        ),
        6,
    )
    chain.shipment(
        "S-1",
        logistics.ReceiptInspected(
            coi=COI, shipment_id="S-1", intact=False, inspected_at=stamp(6.5)
        ),
        6.5,
    )


def manufactured(chain: Chain) -> None:
    chain.gmp(
        f"UnitAtSite:{BAG}",
        manufacturing.UnitReceived(
            coi=COI, din=BAG, manufacturing_site_id=GMP, slot_id="SLOT-1", received_at=stamp(7)
        ),
        7,
    )
    chain.gmp(
        "Batch:B-1",
        manufacturing.BatchStarted(
            coi=COI,
            batch_id="B-1",
            manufacturing_site_id=GMP,
            input_dins=[BAG],
            started_at=stamp(8),
        ),
        8,
    )
    chain.gmp(
        "Batch:B-1",
        manufacturing.ProductUnitsCreated(
            coi=COI,
            batch_id="B-1",
            product_dins=[PRODUCT],
            input_dins=[BAG],
            hold_condition=common_pb2.CONDITION_CRYO,
            created_at=stamp(20),
        ),
        20,
    )


def released(chain: Chain) -> None:
    chain.qc(
        release.BatchReleaseOpened(
            coi=COI, batch_id="B-1", manufacturing_site_id=GMP, product_dins=[PRODUCT]
        ),
        21,
    )
    first = release.QcResultRecorded(
        coi=COI, batch_id="B-1", result_id="R-1", test="viability", value="58", passed=False
    )
    first.result_at.CopyFrom(stamp(22))
    chain.qc(first, 22)
    fixed = release.QcResultRecorded(
        coi=COI,
        batch_id="B-1",
        result_id="R-2",
        test="viability",
        value="85",
        passed=True,
        corrects_result_id="R-1",
    )
    fixed.result_at.CopyFrom(stamp(23))
    chain.qc(fixed, 23)
    chain.qc(
        release.FinallyCertified(
            coi=COI, batch_id="B-1", product_dins=[PRODUCT], certified_at=stamp(24)
        ),
        24,
    )


def infused(chain: Chain) -> None:
    chain.ward(
        infusion.ProductReceived(
            coi=COI, din=PRODUCT, treating_site_id=HOSPITAL, received_at=stamp(30)
        ),
        30,
    )
    chain.ward(infusion.ProductStored(coi=COI, din=PRODUCT, stored_at=stamp(31)), 31)
    chain.ward(infusion.InfusionAdministered(coi=COI, din=PRODUCT, administered_at=stamp(40)), 40)


def whole_chain() -> Chain:
    chain = Chain()
    collected(chain)
    shipped(chain)
    manufactured(chain)
    released(chain)
    infused(chain)
    return chain


def only(events: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    found = [e for e in events if all(e.get(k) == v for k, v in wanted.items())]
    assert len(found) == 1, f"{len(found)} events match {wanted}"
    return found[0]


def test_the_document_is_an_epcis_2_document_valid_against_the_schema() -> None:
    document = whole_chain().document()

    assert (
        document["@context"][0] == "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
    )
    assert document["type"] == "EPCISDocument"
    assert document["schemaVersion"] == "2.0"
    assert document["creationDate"] == CREATED.isoformat(timespec="milliseconds")
    assert schema_errors(document) == []


def test_events_carry_clinical_time_utc_offset_and_recorded_time() -> None:
    labelled = whole_chain().events()[0]

    assert labelled["eventTime"] == shown(1)
    assert labelled["eventTimeZoneOffset"] == "+00:00"
    assert labelled["recordTime"] == (at(1) + RECORDING_DELAY).isoformat(timespec="milliseconds")
    assert labelled["eventID"].startswith("ni:///sha-256;")
    assert labelled["eventID"].endswith("?ver=CBV2.0")


def test_times_are_kept_to_the_millisecond_the_event_hash_uses() -> None:
    chain = Chain()
    almost = at(1) + timedelta(microseconds=999_876)  # the hash generator cannot round this
    chain.records.append(
        chain.writer.write(
            COI,
            f"Unit:{BAG}",
            intake.UnitPackaged(coi=COI, din=BAG, manufacturing_site_id=GMP),
            almost,
            site=HOSPITAL,
        )
    )

    (packaged,) = chain.events()

    assert packaged["eventTime"] == packaged["recordTime"] == "2025-03-01T09:00:00.999+00:00"
    assert packaged["eventID"].startswith("ni:///sha-256;")


def test_a_labelled_unit_is_the_output_of_its_collection_transformation() -> None:
    events = whole_chain().events()

    labelled = only(
        events, type="TransformationEvent", bizStep="commissioning", outputEPCList=[unit(BAG)]
    )
    assert labelled["transformationID"] == "urn:v2v:collection:COL-1"
    assert "inputEPCList" not in labelled
    assert labelled["disposition"] == "active"
    assert labelled["readPoint"] == labelled["bizLocation"] == {"id": "urn:v2v:site:HOSP-A"}
    assert labelled["ilmd"] == {"v2v:coi": COI, "v2v:unitKind": "apheresis-bag"}


def test_a_batch_is_a_transformation_of_the_input_units_into_the_products() -> None:
    events = whole_chain().events()

    started, made = [e for e in events if e["type"] == "TransformationEvent"][1:]
    assert started["inputEPCList"] == [unit(BAG)]
    assert "outputEPCList" not in started
    assert made["inputEPCList"] == [unit(BAG)]
    assert made["outputEPCList"] == [unit(PRODUCT)]
    assert started["transformationID"] == made["transformationID"] == "urn:v2v:batch:B-1"
    assert (made["bizStep"], made["disposition"]) == ("commissioning", "active")
    assert made["eventTime"] == shown(20)
    assert made["ilmd"]["v2v:holdCondition"] == "cryo"


def test_custody_moves_name_their_step_parties_and_places() -> None:
    events = whole_chain().events()

    staged = only(events, bizStep="staging_outbound")
    origin = "urn:v2v:site:HOSP-A/collection"
    assert staged["epcList"] == [unit(BAG)]
    assert staged["disposition"] == "container_closed"
    assert staged["readPoint"] == staged["bizLocation"] == {"id": origin}
    assert staged["sourceList"] == [{"type": "location", "source": origin}]
    assert staged["destinationList"] == [{"type": "location", "destination": "urn:v2v:site:GMP-B"}]
    assert staged["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:v2v:shipment:S-1"}
    ]

    pickup = only(events, bizStep="departing")
    assert pickup["disposition"] == "in_transit"
    assert pickup["eventTime"] == shown(4)
    assert pickup["readPoint"] == {"id": origin}
    assert "bizLocation" not in pickup
    assert pickup["sourceList"] == [{"type": "possessing_party", "source": origin}]
    assert pickup["destinationList"] == [
        {"type": "possessing_party", "destination": "urn:v2v:courier:C-1"}
    ]

    relay = only(events, bizStep="accepting")
    assert relay["disposition"] == "in_transit"
    assert "readPoint" not in relay and "bizLocation" not in relay
    assert relay["sourceList"][0]["source"] == "urn:v2v:courier:C-1"
    assert relay["destinationList"][0]["destination"] == "urn:v2v:courier:C-2"

    arrived = only(events, bizStep="arriving")
    assert arrived["disposition"] == "in_progress"
    assert arrived["readPoint"] == arrived["bizLocation"] == {"id": "urn:v2v:site:GMP-B"}
    assert arrived["sourceList"] == [{"type": "possessing_party", "source": "urn:v2v:courier:C-2"}]
    assert arrived["destinationList"] == [
        {"type": "possessing_party", "destination": "urn:v2v:site:GMP-B"},
        {"type": "location", "destination": "urn:v2v:site:GMP-B"},
    ]


def test_receipts_storage_and_infusion_happen_at_their_site() -> None:
    events = whole_chain().events()

    at_gmp, at_ward = [e for e in events if e.get("bizStep") == "receiving"]
    assert (at_gmp["epcList"], at_gmp["bizLocation"]) == ([unit(BAG)], {"id": site_uri(GMP)})
    assert (at_ward["epcList"], at_ward["bizLocation"]) == (
        [unit(PRODUCT)],
        {"id": site_uri(HOSPITAL)},
    )
    assert at_ward["disposition"] == "in_progress"
    assert only(events, bizStep="storing")["eventTime"] == shown(31)
    dispensed = only(events, bizStep="dispensing")
    assert dispensed["disposition"] == "dispensed"
    assert dispensed["epcList"] == [unit(PRODUCT)]
    assert dispensed["eventTime"] == shown(40)


def test_a_damaged_receipt_and_the_release_decision_are_inspections() -> None:
    events = whole_chain().events()

    damaged = only(events, bizStep="inspecting", disposition="damaged")
    assert damaged["epcList"] == [unit(BAG)]
    assert damaged["bizLocation"] == {"id": site_uri(GMP)}
    certified = only(events, bizStep="inspecting", disposition="conformant")
    assert certified["epcList"] == [unit(PRODUCT)]
    assert certified["v2v:decision"] == "final"


def test_logger_readings_are_sensor_reports_of_the_shipments_units() -> None:
    events = whole_chain().events()

    upload, alarm = [e for e in events if e.get("bizStep") == "sensor_reporting"]
    assert upload["epcList"] == [unit(BAG)]
    assert upload["eventTime"] == shown(5.5)
    (element,) = upload["sensorElementList"]
    assert element["sensorMetadata"] == {
        "deviceID": "urn:v2v:logger:LOGGER-7",
        "startTime": shown(4.5),
        "endTime": shown(5.5),
    }
    assert element["sensorReport"] == [
        {"type": "gs1:Temperature", "value": 4.0, "uom": "CEL", "time": shown(4.5)},
        {"type": "gs1:Temperature", "value": 9.25, "uom": "CEL", "time": shown(5.5)},
    ]
    (report,) = alarm["sensorElementList"][0]["sensorReport"]
    assert report["exception"] == "ALARM_CONDITION"
    assert (report["minValue"], report["maxValue"], report["uom"]) == (9.25, 9.25, "CEL")
    packaged = only(events, bizStep="packing")
    assert packaged["sensorElementList"] == [
        {
            "sensorReport": [
                {"type": "gs1:Temperature", "value": 4.5, "uom": "CEL", "time": shown(2)}
            ]
        }
    ]


def test_a_corrected_qc_result_is_declared_erroneous_with_its_correction() -> None:
    events = whole_chain().events()

    results = [e for e in events if "v2v:test" in e]
    first, correction, declared = results
    assert (first["v2v:result"], correction["v2v:result"]) == ("58", "85")
    assert "errorDeclaration" not in first and "errorDeclaration" not in correction
    assert declared["eventID"] == first["eventID"]
    assert {k: v for k, v in declared.items() if k not in ("errorDeclaration", "recordTime")} == {
        k: v for k, v in first.items() if k != "recordTime"
    }
    assert declared["errorDeclaration"] == {
        "declarationTime": correction["recordTime"],
        "reason": "incorrect_data",
        "correctiveEventIDs": [correction["eventID"]],
    }
    assert events.index(declared) == events.index(correction) + 1


REFUSALS: list[tuple[str, Message, str, str, list[str], str]] = [
    (
        "intake",
        intake.LabelMismatchRecorded(
            coi=COI, expected_din=BAG, scanned_label=STRANGER, reason_code="din-mismatch"
        ),
        HOSPITAL,
        "label-verification",
        [unit(BAG)],
        "mismatch_instance",
    ),
    (
        "logistics",
        logistics.ScanMismatchRecorded(
            coi=COI,
            shipment_id="S-1",
            reason_code="missing-unit",
            scanned_label="",
            missing_dins=[BAG],
        ),
        LOGI,
        "custody-handoff",
        [unit(BAG)],
        "mismatch_quantity",
    ),
    (
        "logistics",
        logistics.ScanMismatchRecorded(
            coi=COI, shipment_id="S-1", reason_code="other-coi", scanned_label=f"{STRANGER} junk"
        ),
        LOGI,
        "custody-handoff",
        [unit(STRANGER)],
        "mismatch_instance",
    ),
    (
        "manufacturing",
        manufacturing.UnitReceiptMismatchRecorded(
            coi=COI, scanned_din=STRANGER, reason_code="unknown-unit", manufacturing_site_id=GMP
        ),
        GMP,
        "gmp-receipt",
        [unit(STRANGER)],
        "mismatch_instance",
    ),
    (
        "manufacturing",
        manufacturing.BatchInputsMismatchRecorded(
            coi=COI, input_dins=[BAG, STRANGER], input_cois=[COI, "CHB"], reason_code="mixed-coi"
        ),
        GMP,
        "batch-start",
        [unit(BAG), unit(STRANGER)],
        "mismatch_instance",
    ),
    (
        "infusion",
        infusion.BedsideMismatchRecorded(
            coi=COI, scanned_din=PRODUCT, wristband_coi=COI, reason_code="window-expired"
        ),
        HOSPITAL,
        "bedside-verification",
        [unit(PRODUCT)],
        "expired",
    ),
    (
        "infusion",
        infusion.BedsideMismatchRecorded(
            coi=COI, scanned_din="not a DIN", reason_code="malformed-label"
        ),
        HOSPITAL,
        "bedside-verification",
        [],
        "mismatch_instance",
    ),
]


@pytest.mark.parametrize(
    ("context", "payload", "site", "step", "units", "disposition"),
    REFUSALS,
    ids=[f"{r[3]}-{r[1].reason_code}" for r in REFUSALS],  # type: ignore[attr-defined]
)
def test_a_refused_scan_is_an_inspection_with_the_mismatch_found(
    context: str, payload: Message, site: str, step: str, units: list[str], disposition: str
) -> None:
    chain = Chain()
    shipped(chain)  # the manifest of S-1
    before = len(chain.events())
    chain.add(f"Refusal:{step}", payload, 10, site, context)

    events = chain.events()
    assert len(events) == before + 1
    refused = events[-1]
    assert refused["type"] == "ObjectEvent"
    assert refused["action"] == "OBSERVE"
    assert refused["bizStep"] == "inspecting"
    assert refused["disposition"] == disposition
    assert refused["epcList"] == units
    assert refused["readPoint"] == {"id": site_uri(site)}
    assert refused["v2v:refusedStep"] == step
    assert refused["v2v:reasonCode"] == payload.reason_code  # type: ignore[attr-defined]
    assert "errorDeclaration" not in refused
    assert schema_errors(chain.document()) == []


def test_the_same_envelopes_give_the_same_document_in_any_order() -> None:
    chain = whole_chain()

    again = epcis_document(list(reversed(chain.records)), CREATED)

    assert again == chain.document()
    ids = [e["eventID"] for e in again["epcisBody"]["eventList"] if "errorDeclaration" not in e]
    assert len(set(ids)) == len(ids)


def test_an_event_has_the_same_id_alone_as_among_the_others() -> None:
    chain = whole_chain()

    alone = epcis_document(chain.records[:1], CREATED)["epcisBody"]["eventList"][0]

    assert alone == chain.events()[0]


def test_facts_that_observe_no_unit_are_not_exported() -> None:
    chain = Chain()
    chain.add(
        "Therapy:1",
        intake.PatientEnrolled(
            coi=COI,
            patient_pseudonym="PSN-1",
            enrolling_site_id=HOSPITAL,
            treating_site_id=HOSPITAL,
        ),
        0,
        HOSPITAL,
        "intake",
    )
    chain.shipment(
        "S-1", logistics.CourierAssigned(coi=COI, shipment_id="S-1", courier_id="C-1"), 1
    )

    assert chain.events() == []
    assert schema_errors(chain.document()) == []


def test_unit_uris_are_the_din_with_its_flags_and_resolve_back() -> None:
    assert din_uri("A12342500004200") == "urn:v2v:isbt128:din:A123425000042:00"
    assert din_of_uri("urn:v2v:isbt128:din:A123425000042:00") == "A12342500004200"
    with pytest.raises(ValueError):
        din_uri("A123425000042")  # no flags: not v2v's unit identity
    assert party_uri("site:HOSP A/ward") == "urn:v2v:site:HOSP%20A/ward"
    assert party_uri("courier:C-1") == "urn:v2v:courier:C-1"
