"""Each v2v fact as EPCIS 2.0 events (the mapping table is in docs/standards.md).

A mapper gets the chain's mapping state (`ChainEvents`: what earlier facts said about
shipments, batches and QC results), the fact and its decoded payload, and adds events with
`ChainEvents.add`. Times are the clinical times the facts carry (`eventTime`, offset
"+00:00": v2v keeps UTC) and the envelope's recorded time (`recordTime`). Every event names
the v2v event it comes from (`v2v:sourceEventId`). Facts with no physical observation of a
unit (enrolment, slot bookings, courier assignment, offers, single unit scans, thaw, bedside
scans, adverse events, acknowledgements) map to nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from google.protobuf.message import Message

from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.ids.din import Din
from v2v_platform.ids.errors import InvalidIdentifier
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import condition_name
from v2v_projection.chain.times import EPOCH, stamp_ns
from v2v_projection.standards.epcis_ids import (
    batch_uri,
    collection_uri,
    din_uri,
    location_of_party,
    logger_uri,
    party_uri,
    shipment_uri,
    site_uri,
)

Event = dict[str, Any]
NS_PER_MS = 1_000_000
CELSIUS = "CEL"
TEMPERATURE = "gs1:Temperature"


@dataclass
class Shipment:
    manifest: list[str]
    origin: str
    destination: str


@dataclass(frozen=True)
class Declared:
    """`original` declared erroneous, corrected by `corrective` (a later event)."""

    original: Event
    corrective: Event


@dataclass
class ChainEvents:
    entries: list[Event | Declared] = field(default_factory=list)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    batch_inputs: dict[str, list[str]] = field(default_factory=dict)
    batch_products: dict[str, list[str]] = field(default_factory=dict)
    qc_results: dict[str, Event] = field(default_factory=dict)

    def add(self, event: Event) -> Event:
        self.entries.append(event)
        return event

    def shipment(self, shipment_id: str) -> Shipment:
        return self.shipments.get(shipment_id) or Shipment([], "", "")


def epcis_time(ns: int) -> str:
    """EPCIS times: UTC, milliseconds (the precision of the CBV 2.0 event hash), truncated."""
    moment = EPOCH + timedelta(milliseconds=ns // NS_PER_MS)
    return moment.isoformat(timespec="milliseconds")


def units(dins: Iterable[str]) -> list[str]:
    """Unit URIs of the DINs that are DINs (a refused scan may name none), each once."""
    found: dict[str, None] = {}
    for text in dins:
        try:
            found[din_uri(str(Din.parse(text)))] = None
        except (InvalidIdentifier, ValueError):
            continue
    return list(found)


def event(
    kind: str, fact: Fact, at_ns: int, *, action: str | None = "OBSERVE", **fields: Any
) -> Event:
    """An event at the fact's clinical time `at_ns` (the envelope's when 0), with `fields`
    whose value is not None, in the order given."""
    made: Event = {
        "type": kind,
        "eventTime": epcis_time(at_ns or fact.occurred_ns),
        "eventTimeZoneOffset": "+00:00",
        "recordTime": epcis_time(fact.recorded_ns),
    }
    if action is not None:
        made["action"] = action
    made.update((key, value) for key, value in fields.items() if value is not None)
    made["v2v:sourceEventId"] = fact.event_id
    return made


def place(uri: str | None) -> dict[str, str] | None:
    return {"id": uri} if uri else None


def at_site(site_id: str) -> dict[str, Any]:
    """readPoint and bizLocation: the site (an event observed where the units stay)."""
    return {"readPoint": place(site_uri(site_id)), "bizLocation": place(site_uri(site_id))}


def possession(kind: str, *parties: str) -> list[dict[str, str]] | None:
    """sourceList / destinationList (`kind` "source" or "destination") of possessing parties."""
    found = [{"type": "possessing_party", kind: party_uri(p)} for p in parties if p]
    return found or None


def shipment_transaction(shipment_id: str) -> list[dict[str, str]]:
    """The shipment as the business transaction (CBV `desadv`: despatch advice)."""
    return [{"type": "desadv", "bizTransaction": shipment_uri(shipment_id)}]


def temperature(value: float, at_ns: int | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"type": TEMPERATURE, "value": value, "uom": CELSIUS}
    if at_ns:
        report["time"] = epcis_time(at_ns)
    return report


Mapper = Callable[[ChainEvents, Fact, Any], None]
MAPPERS: dict[str, tuple[Callable[[bytes], Message], Mapper]] = {}


def maps(message_class: type[Message]) -> Callable[[Mapper], Mapper]:
    def register(mapper: Mapper) -> Mapper:
        MAPPERS[message_class.DESCRIPTOR.full_name] = (message_class.FromString, mapper)
        return mapper

    return register


# --- intake ---------------------------------------------------------------------------------


@maps(intake.UnitLabelled)
def unit_labelled(chain: ChainEvents, fact: Fact, e: intake.UnitLabelled) -> None:
    """The unit is made from the patient's collection: a transformation (its id the
    collection) with no identified input and the labelled unit as output."""
    chain.add(
        event(
            "TransformationEvent",
            fact,
            stamp_ns(e.labelled_at),
            action=None,
            outputEPCList=units([e.din]),
            transformationID=collection_uri(e.collection_id),
            bizStep="commissioning",
            disposition="active",
            **at_site(fact.site_id),
            ilmd={"v2v:coi": e.coi, "v2v:unitKind": e.unit_kind},
        )
    )


@maps(intake.UnitPackaged)
def unit_packaged(chain: ChainEvents, fact: Fact, e: intake.UnitPackaged) -> None:
    measured = stamp_ns(e.packaged_at) or fact.occurred_ns
    readings = [{"sensorReport": [temperature(e.temperature_c, measured)]}]
    chain.add(
        event(
            "ObjectEvent",
            fact,
            measured,
            epcList=units([e.din]),
            bizStep="packing",
            disposition="container_closed",
            **at_site(fact.site_id),
            sensorElementList=readings if e.temperature_c else None,
        )
    )


@maps(intake.LabelMismatchRecorded)
def label_refused(chain: ChainEvents, fact: Fact, e: intake.LabelMismatchRecorded) -> None:
    at = stamp_ns(e.scanned_at)
    refusal(chain, fact, at, [e.expected_din], e.reason_code, "label-verification")


# --- logistics ------------------------------------------------------------------------------


@maps(logistics.ShipmentCreated)
def shipment_created(chain: ChainEvents, fact: Fact, e: logistics.ShipmentCreated) -> None:
    origin = site_uri(e.origin_site_id, e.origin_department)
    destination = site_uri(e.destination_site_id, e.destination_department)
    chain.shipments[e.shipment_id] = Shipment(list(e.manifest_dins), origin, destination)
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.created_at),
            epcList=units(e.manifest_dins),
            bizStep="staging_outbound",
            disposition="container_closed",
            readPoint=place(origin),
            bizLocation=place(origin),
            bizTransactionList=shipment_transaction(e.shipment_id),
            sourceList=[{"type": "location", "source": origin}],
            destinationList=[{"type": "location", "destination": destination}],
        )
    )


@maps(logistics.CustodyHandedOver)
def handed_over(chain: ChainEvents, fact: Fact, e: logistics.CustodyHandedOver) -> None:
    """A pickup (custody leaves the origin: `departing`) or a handoff on the way
    (`accepting`); in transit either way, so no bizLocation."""
    shipment = chain.shipment(e.shipment_id)
    pickup = e.status == "picked-up"
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.scanned_at),
            epcList=units(shipment.manifest),
            bizStep="departing" if pickup else "accepting",
            disposition="in_transit",
            readPoint=place(location_of_party(e.from_party)),
            bizTransactionList=shipment_transaction(e.shipment_id),
            sourceList=possession("source", e.from_party),
            destinationList=possession("destination", e.to_party),
        )
    )


@maps(logistics.ShipmentDelivered)
def delivered(chain: ChainEvents, fact: Fact, e: logistics.ShipmentDelivered) -> None:
    shipment = chain.shipment(e.shipment_id)
    taker = site_uri(e.destination_site_id, e.destination_department)
    taken = {"type": "possessing_party", "destination": taker}
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.received_at),
            epcList=units(e.manifest_dins or shipment.manifest),
            bizStep="arriving",
            disposition="in_progress",
            readPoint=place(taker),
            bizLocation=place(taker),
            bizTransactionList=shipment_transaction(e.shipment_id),
            sourceList=possession("source", e.from_party),
            destinationList=[taken, {"type": "location", "destination": taker}],
        )
    )


@maps(logistics.ReceiptInspected)
def inspected(chain: ChainEvents, fact: Fact, e: logistics.ReceiptInspected) -> None:
    shipment = chain.shipment(e.shipment_id)
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.inspected_at),
            epcList=units(shipment.manifest),
            bizStep="inspecting",
            disposition="conformant" if e.intact else "damaged",
            readPoint=place(shipment.destination),
            bizLocation=place(shipment.destination),
            bizTransactionList=shipment_transaction(e.shipment_id),
        )
    )


@maps(logistics.TemperatureReadingsRecorded)
def readings(chain: ChainEvents, fact: Fact, e: logistics.TemperatureReadingsRecorded) -> None:
    """One upload of the shipment's logger: its readings in one sensor element."""
    if not e.readings:
        return
    times = [stamp_ns(r.measured_at) for r in e.readings]
    metadata = {
        "deviceID": logger_uri(e.device_id),
        "startTime": epcis_time(min(times)),
        "endTime": epcis_time(max(times)),
    }
    reports = [temperature(r.temperature_c, at) for r, at in zip(e.readings, times, strict=True)]
    chain.add(
        event(
            "ObjectEvent",
            fact,
            max(times),
            epcList=units(chain.shipment(e.shipment_id).manifest),
            bizStep="sensor_reporting",
            bizTransactionList=shipment_transaction(e.shipment_id),
            sensorElementList=[{"sensorMetadata": metadata, "sensorReport": reports}],
        )
    )


@maps(logistics.TemperatureExcursionRecorded)
def excursion(chain: ChainEvents, fact: Fact, e: logistics.TemperatureExcursionRecorded) -> None:
    """Readings out of the condition's range: an alarm with the range of what was read."""
    started, ended = stamp_ns(e.started_at), stamp_ns(e.ended_at)
    metadata = {"deviceID": logger_uri(e.device_id), "startTime": epcis_time(started)}
    if ended:
        metadata["endTime"] = epcis_time(ended)
    report = {
        "type": TEMPERATURE,
        "exception": "ALARM_CONDITION",
        "minValue": e.min_c,
        "maxValue": e.max_c,
        "uom": CELSIUS,
    }
    chain.add(
        event(
            "ObjectEvent",
            fact,
            started,
            epcList=units(chain.shipment(e.shipment_id).manifest),
            bizStep="sensor_reporting",
            bizTransactionList=shipment_transaction(e.shipment_id),
            sensorElementList=[{"sensorMetadata": metadata, "sensorReport": [report]}],
        )
    )


@maps(logistics.StabilityWindowBreached)
def window_breached(chain: ChainEvents, fact: Fact, e: logistics.StabilityWindowBreached) -> None:
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.detected_at),
            epcList=units(chain.shipment(e.shipment_id).manifest),
            disposition="expired",
            bizTransactionList=shipment_transaction(e.shipment_id),
        )
    )


EXCEPTION_DISPOSITIONS = {"damaged": "damaged", "lost": "unknown", "delayed": "in_transit"}


@maps(logistics.ShipmentExceptionRecorded)
def shipment_exception(
    chain: ChainEvents, fact: Fact, e: logistics.ShipmentExceptionRecorded
) -> None:
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.occurred_at) or stamp_ns(e.recorded_at),
            epcList=units(chain.shipment(e.shipment_id).manifest),
            disposition=EXCEPTION_DISPOSITIONS.get(e.kind, "unknown"),
            bizTransactionList=shipment_transaction(e.shipment_id),
            sourceList=possession("source", e.custodian),
        )
    )


@maps(logistics.ScanMismatchRecorded)
def scan_refused(chain: ChainEvents, fact: Fact, e: logistics.ScanMismatchRecorded) -> None:
    scanned = e.scanned_label.split() or chain.shipment(e.shipment_id).manifest
    refusal(chain, fact, stamp_ns(e.scanned_at), scanned, e.reason_code, "custody-handoff")


# --- manufacturing --------------------------------------------------------------------------


@maps(manufacturing.UnitReceived)
def unit_received(chain: ChainEvents, fact: Fact, e: manufacturing.UnitReceived) -> None:
    receipt(chain, fact, stamp_ns(e.received_at), e.din, e.manufacturing_site_id)


@maps(manufacturing.UnitReceiptMismatchRecorded)
def receipt_refused(
    chain: ChainEvents, fact: Fact, e: manufacturing.UnitReceiptMismatchRecorded
) -> None:
    refusal(chain, fact, 0, [e.scanned_din], e.reason_code, "gmp-receipt")


@maps(manufacturing.BatchInputsMismatchRecorded)
def batch_refused(
    chain: ChainEvents, fact: Fact, e: manufacturing.BatchInputsMismatchRecorded
) -> None:
    at = stamp_ns(e.refused_at)
    refusal(chain, fact, at, e.input_dins, e.reason_code, "batch-start")


@maps(manufacturing.BatchStarted)
def batch_started(chain: ChainEvents, fact: Fact, e: manufacturing.BatchStarted) -> None:
    """The inputs go into the batch: the transformation's first part (its id the batch)."""
    chain.batch_inputs[e.batch_id] = list(e.input_dins)
    chain.add(
        event(
            "TransformationEvent",
            fact,
            stamp_ns(e.started_at),
            action=None,
            inputEPCList=units(e.input_dins),
            transformationID=batch_uri(e.batch_id),
            disposition="in_progress",
            **at_site(e.manufacturing_site_id),
        )
    )


@maps(manufacturing.ProductUnitsCreated)
def products_created(chain: ChainEvents, fact: Fact, e: manufacturing.ProductUnitsCreated) -> None:
    chain.batch_products[e.batch_id] = list(e.product_dins)
    ilmd = {"v2v:coi": e.coi, "v2v:holdCondition": condition_name(e.hold_condition)}
    chain.add(
        event(
            "TransformationEvent",
            fact,
            stamp_ns(e.created_at),
            action=None,
            inputEPCList=units(e.input_dins or chain.batch_inputs.get(e.batch_id, ())),
            outputEPCList=units(e.product_dins),
            transformationID=batch_uri(e.batch_id),
            bizStep="commissioning",
            disposition="active",
            **at_site(fact.site_id),
            ilmd=ilmd,
        )
    )


@maps(manufacturing.BatchFailed)
def batch_failed(chain: ChainEvents, fact: Fact, e: manufacturing.BatchFailed) -> None:
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.failed_at),
            epcList=units(chain.batch_inputs.get(e.batch_id, ())),
            disposition="non_conformant",
            **at_site(fact.site_id),
            **{"v2v:batch": batch_uri(e.batch_id)},
        )
    )


# --- release --------------------------------------------------------------------------------


@maps(release.BatchReleaseOpened)
def release_opened(chain: ChainEvents, fact: Fact, e: release.BatchReleaseOpened) -> None:
    chain.batch_products.setdefault(e.batch_id, list(e.product_dins))


@maps(release.QcResultRecorded)
def qc_result(chain: ChainEvents, fact: Fact, e: release.QcResultRecorded) -> None:
    """A QC result of the batch's products; one correcting an earlier result declares the
    earlier result's event erroneous (epcis.py)."""
    recorded = chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.result_at),
            epcList=units(chain.batch_products.get(e.batch_id, ())),
            bizStep="inspecting",
            readPoint=place(site_uri(fact.site_id)),
            **{
                "v2v:batch": batch_uri(e.batch_id),
                "v2v:test": e.test,
                "v2v:result": e.value,
                "v2v:passed": "true" if e.passed else "false",
            },
        )
    )
    chain.qc_results[e.result_id] = recorded
    corrected = chain.qc_results.get(e.corrects_result_id) if e.corrects_result_id else None
    if corrected is not None:
        chain.entries.append(Declared(corrected, recorded))


class Decision(NamedTuple):
    disposition: str
    decision: str


DECISIONS: dict[type[Message], Decision] = {
    release.ProvisionallyCertified: Decision("conformant", "provisional"),
    release.FinallyCertified: Decision("conformant", "final"),
    release.OosReleaseAccepted: Decision("available", "oos-accepted"),
    release.BatchRejected: Decision("non_conformant", "rejected"),
    release.PostReleaseFailureRecorded: Decision("non_conformant", "post-release-failure"),
}
DECISION_TIMES = {
    release.ProvisionallyCertified: "certified_at",
    release.FinallyCertified: "certified_at",
    release.OosReleaseAccepted: "accepted_at",
    release.BatchRejected: "rejected_at",
    release.PostReleaseFailureRecorded: "result_at",
}


def release_decision(chain: ChainEvents, fact: Fact, e: Any) -> None:
    """A QP's (or a physician's OOS) decision on the batch's products."""
    decision = DECISIONS[type(e)]
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(getattr(e, DECISION_TIMES[type(e)])),
            epcList=units(e.product_dins),
            bizStep="inspecting",
            disposition=decision.disposition,
            readPoint=place(site_uri(fact.site_id)),
            **{"v2v:batch": batch_uri(e.batch_id), "v2v:decision": decision.decision},
        )
    )


for _decided in DECISIONS:
    maps(_decided)(release_decision)


# --- infusion -------------------------------------------------------------------------------


@maps(infusion.ProductReceived)
def product_received(chain: ChainEvents, fact: Fact, e: infusion.ProductReceived) -> None:
    site = e.treating_site_id or fact.site_id
    receipt(chain, fact, stamp_ns(e.received_at), e.din, site)


@maps(infusion.ProductStored)
def product_stored(chain: ChainEvents, fact: Fact, e: infusion.ProductStored) -> None:
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.stored_at),
            epcList=units([e.din]),
            bizStep="storing",
            disposition="in_progress",
            **at_site(fact.site_id),
        )
    )


@maps(infusion.InfusionAdministered)
def administered(chain: ChainEvents, fact: Fact, e: infusion.InfusionAdministered) -> None:
    chain.add(
        event(
            "ObjectEvent",
            fact,
            stamp_ns(e.administered_at),
            epcList=units([e.din]),
            bizStep="dispensing",
            disposition="dispensed",
            **at_site(fact.site_id),
        )
    )


@maps(infusion.BedsideMismatchRecorded)
def bedside_refused(chain: ChainEvents, fact: Fact, e: infusion.BedsideMismatchRecorded) -> None:
    at = stamp_ns(e.scanned_at)
    refusal(chain, fact, at, [e.scanned_din], e.reason_code, "bedside-verification")


# --- shared ---------------------------------------------------------------------------------


def receipt(chain: ChainEvents, fact: Fact, at_ns: int, din: str, site_id: str) -> None:
    """A unit scanned in at the site that takes it into its process (GMP, ward)."""
    chain.add(
        event(
            "ObjectEvent",
            fact,
            at_ns,
            epcList=units([din]),
            bizStep="receiving",
            disposition="in_progress",
            **at_site(site_id),
        )
    )


QUANTITY_REASONS = frozenset({"missing-unit", "extra-unit"})
EXPIRED_REASONS = frozenset({"window-breached", "window-expired"})


def refused_disposition(reason_code: str) -> str:
    """What the refused scan found: the wrong units (or units missing or extra), or units
    past their window."""
    if reason_code in QUANTITY_REASONS:
        return "mismatch_quantity"
    if reason_code in EXPIRED_REASONS:
        return "expired"
    return "mismatch_instance"


def refusal(
    chain: ChainEvents, fact: Fact, at_ns: int, scanned: Iterable[str], reason: str, step: str
) -> None:
    """A refused scan (nothing else changed, invariant I2): an inspection of what was scanned,
    its disposition the mismatch found, its reason code and the step it refused. Not an
    errorDeclaration: no earlier event is retracted (docs/standards.md)."""
    chain.add(
        event(
            "ObjectEvent",
            fact,
            at_ns,
            epcList=units(scanned),
            bizStep="inspecting",
            disposition=refused_disposition(reason),
            readPoint=place(site_uri(fact.site_id)),
            **{"v2v:refusedStep": step, "v2v:reasonCode": reason},
        )
    )
