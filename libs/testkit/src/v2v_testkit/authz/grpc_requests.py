"""A request builder per gRPC method, keyed by full method name (`/package.Service/Method`).

A method with no builder here fails the authorization matrix: add one when adding a method.
The related caller is the site the seeded journey relates to the method's target: the
enrolling / treating hospital for its therapy, units and infusion; the GMP site for its
calendar, receipts, batch and release; a shipment's origin or destination for its custody.
"""

from __future__ import annotations

from v2v_testkit.authz.requests import (
    Builder,
    Request,
    moment,
    operator,
    patient_details,
    signature,
    unique,
)
from v2v_testkit.authz.seed import Seed

INTAKE = "/v2v.intake.v1.IntakeService/"
MANUFACTURING = "/v2v.manufacturing.v1.ManufacturingService/"
LOGISTICS = "/v2v.logistics.v1.LogisticsService/"
RELEASE = "/v2v.release.v1.ReleaseService/"
INFUSION = "/v2v.infusion.v1.InfusionService/"
PROJECTION = "/v2v.projection.v1.ChainQueryService/"
FRESH = "CONDITION_FRESH_COLD"


# ------------------------------------------------------------------ intake (per hospital)


def at_hospital(seed: Seed, **body: object) -> Request:
    return Request(seed.hospital, seed.hospital, dict(body))


def collector(seed: Seed) -> dict[str, str]:
    return operator(seed.people.collector)


def nurse(seed: Seed) -> dict[str, str]:
    return operator(seed.people.nurse)


INTAKE_BUILDERS: dict[str, Builder] = {
    INTAKE + "EnrolPatient": lambda s: at_hospital(
        s,
        operator=collector(s),
        patient_pseudonym=unique("PSN"),
        personal_details=patient_details(s),
        treating_site_id=s.hospital,
    ),
    INTAKE + "GetPatient": lambda s: at_hospital(s, coi=s.coi),
    INTAKE + "ErasePersonalDetails": lambda s: at_hospital(
        s, operator=collector(s), coi=s.coi, reason="authorization matrix: erasure request"
    ),
    INTAKE + "BookSlot": lambda s: at_hospital(
        s, operator=collector(s), coi=s.coi, manufacturing_site_id=s.gmp, slot_date=s.slot_date
    ),
    INTAKE + "RecordCollection": lambda s: at_hospital(
        s,
        operator=collector(s),
        coi=s.coi,
        started_at=moment(300),
        ended_at=moment(60),
        volume_ml=180.0,
        total_nucleated_cells_e9=10.0,
        cd3_cells_e9=5.0,
        slot_id=s.slot_id,
    ),
    INTAKE + "LabelUnits": lambda s: at_hospital(
        s,
        operator=collector(s),
        coi=s.coi,
        collection_id=s.collection_id,
        count=1,
        unit_kind="apheresis-bag",
    ),
    INTAKE + "VerifyLabel": lambda s: at_hospital(
        s,
        operator=collector(s),
        coi=s.coi,
        din=s.apheresis_din,
        scanned_din=s.apheresis_din,
        scanned_coi=s.coi,
        signature=signature(s.people.collector, "verification"),
    ),
    INTAKE + "PackageUnit": lambda s: at_hospital(
        s,
        operator=collector(s),
        coi=s.coi,
        din=s.apheresis_din,
        condition=FRESH,
        manufacturing_site_id=s.gmp,
        temperature_c=4.0,
    ),
}


# ------------------------------------------------------------------ manufacturing (GMP site)


def at_gmp(seed: Seed, related: str | None = None, **body: object) -> Request:
    return Request(seed.gmp, related or seed.gmp, dict(body))


def gmp_operator(seed: Seed) -> dict[str, str]:
    return operator(seed.people.gmp_operator)


MANUFACTURING_BUILDERS: dict[str, Builder] = {
    MANUFACTURING + "SetSlotCapacity": lambda s: at_gmp(
        s, operator=gmp_operator(s), manufacturing_site_id=s.gmp, slot_date=s.slot_date, capacity=9
    ),
    MANUFACTURING + "BookSlot": lambda s: at_gmp(
        s,
        s.hospital,
        operator=collector(s),
        coi=s.coi,
        manufacturing_site_id=s.gmp,
        slot_date=s.slot_date,
    ),
    MANUFACTURING + "ReleaseSlot": lambda s: at_gmp(
        s,
        s.hospital,
        operator=collector(s),
        slot_id=s.spare_slot_ids[0],
        reason="authorization matrix",
    ),
    MANUFACTURING + "GetSlotCalendar": lambda s: at_gmp(
        s, manufacturing_site_id=s.gmp, slot_date=s.slot_date
    ),
    MANUFACTURING + "ReceiveUnit": lambda s: at_gmp(
        s, operator=gmp_operator(s), scanned_din=s.apheresis_din, scanned_coi=s.coi
    ),
    MANUFACTURING + "StartBatch": lambda s: at_gmp(
        s, operator=gmp_operator(s), input_dins=list(s.apheresis_dins)
    ),
    MANUFACTURING + "RecordProcessStep": lambda s: at_gmp(
        s,
        operator=gmp_operator(s),
        batch_id=s.batch_id,
        step_kind="formulation",
        device_type="Sepax C-Pro",
        device_serial="SEPAX-0001",
        reagent_lots=["CryoStor-CS10"],
    ),
    MANUFACTURING + "RecordInProcessQc": lambda s: at_gmp(
        s,
        operator=gmp_operator(s),
        batch_id=s.batch_id,
        test="viability",
        value=91.0,
        unit="%",
        passed=True,
    ),
    MANUFACTURING + "Harvest": lambda s: at_gmp(
        s,
        operator=gmp_operator(s),
        batch_id=s.batch_id,
        product_unit_count=1,
        hold_condition=FRESH,
    ),
    MANUFACTURING + "FailBatch": lambda s: at_gmp(
        s, operator=gmp_operator(s), batch_id=s.batch_id, reason="authorization matrix"
    ),
    MANUFACTURING + "GetBatch": lambda s: at_gmp(s, batch_id=s.batch_id),
    MANUFACTURING + "ListExpectedUnits": lambda s: at_gmp(s, coi=s.coi),
}


# ------------------------------------------------------------------ logistics (one service)


def at_logistics(seed: Seed, related: str, **body: object) -> Request:
    return Request(seed.logistics, related, dict(body))


def scan_fields(seed: Seed) -> dict[str, object]:
    shipment = seed.apheresis_shipment
    return {
        "operator": collector(seed),
        "shipment_id": shipment.shipment_id,
        "idempotency_key": unique("scan"),
        "scanned_at": moment(),
        "from_party": f"site:{shipment.origin}",
    }


def readings(seed: Seed) -> list[dict[str, object]]:
    return [
        {"measured_at": moment(3 - n), "temperature_c": 4.5, "device_id": "LOGGER-AUTHZ"}
        for n in range(3)
    ]


LOGISTICS_BUILDERS: dict[str, Builder] = {
    LOGISTICS + "CreateShipment": lambda s: at_logistics(
        s,
        s.apheresis_shipment.origin,
        operator=collector(s),
        manifest_dins=list(s.apheresis_dins),
        condition=FRESH,
        destination_site_id=s.apheresis_shipment.destination,
        shipper_id="BOX-AUTHZ",
        data_logger_id="LOGGER-AUTHZ",
        courier_id=s.apheresis_shipment.courier_id,
    ),
    LOGISTICS + "AssignCourier": lambda s: at_logistics(
        s,
        s.apheresis_shipment.origin,
        operator=collector(s),
        shipment_id=s.apheresis_shipment.shipment_id,
        courier_id=s.apheresis_shipment.courier_id,
    ),
    LOGISTICS + "OfferHandoff": lambda s: at_logistics(
        s,
        s.apheresis_shipment.destination,
        operator=gmp_operator(s),
        shipment_id=s.apheresis_shipment.shipment_id,
        idempotency_key=unique("offer"),
        offered_at=moment(),
        to_party=f"site:{s.apheresis_shipment.origin}",
    ),
    LOGISTICS + "RecordScan": lambda s: at_logistics(
        s, s.apheresis_shipment.origin, **scan_fields(s), label=s.apheresis_din
    ),
    LOGISTICS + "ConfirmHandoff": lambda s: at_logistics(
        s, s.apheresis_shipment.origin, **scan_fields(s)
    ),
    LOGISTICS + "ReceiveShipment": lambda s: at_logistics(
        s,
        s.apheresis_shipment.destination,
        operator=gmp_operator(s),
        shipment_id=s.apheresis_shipment.shipment_id,
        scanned_labels=list(s.apheresis_dins),
        from_party=f"courier:{s.apheresis_shipment.courier_id}",
    ),
    LOGISTICS + "InspectReceipt": lambda s: at_logistics(
        s,
        s.apheresis_shipment.destination,
        operator=gmp_operator(s),
        shipment_id=s.apheresis_shipment.shipment_id,
        intact=True,
        temperature_log_reviewed=True,
    ),
    LOGISTICS + "RecordException": lambda s: at_logistics(
        s,
        s.apheresis_shipment.origin,
        operator=collector(s),
        shipment_id=s.apheresis_shipment.shipment_id,
        kind="delayed",
        reason="authorization matrix",
    ),
    LOGISTICS + "UploadTemperatureReadings": lambda s: at_logistics(
        s,
        s.apheresis_shipment.destination,
        operator=gmp_operator(s),
        shipment_id=s.apheresis_shipment.shipment_id,
        readings=readings(s),
    ),
    LOGISTICS + "GetShipment": lambda s: at_logistics(
        s, s.apheresis_shipment.origin, shipment_id=s.apheresis_shipment.shipment_id
    ),
}


# ------------------------------------------------------------------ release (GMP site)


def analyst(seed: Seed) -> dict[str, str]:
    return operator(seed.people.analyst)


def qp_signed(seed: Seed, **fields: object) -> Request:
    body = {
        "operator": analyst(seed),
        "batch_id": seed.batch_id,
        "signature": signature(seed.people.qp, "approval"),
        **fields,
    }
    return Request(seed.gmp, seed.gmp, body)


RELEASE_BUILDERS: dict[str, Builder] = {
    RELEASE + "RecordQcResult": lambda s: at_gmp(
        s,
        operator=analyst(s),
        batch_id=s.batch_id,
        test="endotoxin",
        method="LAL",
        value="0.1",
        unit="EU/mL",
        result_at=moment(30),
        analyst=analyst(s),
    ),
    RELEASE + "CertifyProvisionally": qp_signed,
    RELEASE + "CertifyFinally": qp_signed,
    RELEASE + "RejectBatch": lambda s: qp_signed(s, reason="authorization matrix"),
    RELEASE + "JustifyOosRelease": lambda s: qp_signed(
        s, justification="authorization matrix: no alternative therapy"
    ),
    RELEASE + "AcceptOosRelease": lambda s: at_gmp(
        s,
        s.hospital,
        operator=operator(s.people.physician),
        batch_id=s.batch_id,
        signature=signature(s.people.physician, "responsibility"),
    ),
    RELEASE + "GetBatchRelease": lambda s: at_gmp(s, batch_id=s.batch_id),
    RELEASE + "ListSpecifications": lambda s: at_gmp(s),
}


# ------------------------------------------------------------------ infusion (per hospital)


INFUSION_BUILDERS: dict[str, Builder] = {
    INFUSION + "ReceiveProduct": lambda s: at_hospital(
        s, operator=nurse(s), din=s.product_din, received_at=moment()
    ),
    INFUSION + "StoreProduct": lambda s: at_hospital(
        s, operator=nurse(s), din=s.product_din, location="pharmacy fridge 1", stored_at=moment()
    ),
    INFUSION + "StartThaw": lambda s: at_hospital(
        s, operator=nurse(s), din=s.product_din, thaw_started_at=moment()
    ),
    INFUSION + "ScanAtBedside": lambda s: at_hospital(
        s,
        operator=nurse(s),
        wristband_coi=s.coi,
        din=s.product_din,
        scanned_at=moment(),
        signature=signature(s.people.nurse, "verification"),
    ),
    INFUSION + "AdministerInfusion": lambda s: at_hospital(
        s,
        operator=nurse(s),
        din=s.product_din,
        administered_at=moment(),
        dose_car_cells_per_kg=1.0e6,
        volume_ml=68.0,
        witnessed_by=operator(s.people.second_nurse),
        witness_signature=signature(s.people.second_nurse, "witness"),
    ),
    INFUSION + "RecordAdverseEvent": lambda s: at_hospital(
        s, operator=nurse(s), din=s.product_din, kind="crs", grade=1, onset_at=moment()
    ),
    INFUSION + "ListAlerts": lambda s: at_hospital(s, unacknowledged_only=False),
    INFUSION + "AcknowledgeAlert": lambda s: at_hospital(
        s,
        operator=operator(s.people.physician),
        failure_id=s.failure_id,
        decision="authorization matrix: patient informed",
        signature=signature(s.people.physician, "responsibility"),
    ),
    INFUSION + "GetProductUnit": lambda s: at_hospital(s, din=s.product_din),
}


# ------------------------------------------------------------------ projection (auditor site)


def at_projection(seed: Seed, **body: object) -> Request:
    return Request(seed.auditor, seed.hospital, dict(body))


PROJECTION_BUILDERS: dict[str, Builder] = {
    PROJECTION + "GetChain": lambda s: at_projection(s, coi=s.coi),
    PROJECTION + "ListChains": lambda s: at_projection(s),
    PROJECTION + "GetCustodyTimeline": lambda s: at_projection(s, coi=s.coi),
    PROJECTION + "WatchAlerts": lambda s: at_projection(s, coi=s.coi, include_existing=True),
    PROJECTION + "GetKpis": lambda s: at_projection(s),
}


GRPC_BUILDERS: dict[str, Builder] = {
    **INTAKE_BUILDERS,
    **MANUFACTURING_BUILDERS,
    **LOGISTICS_BUILDERS,
    **RELEASE_BUILDERS,
    **INFUSION_BUILDERS,
    **PROJECTION_BUILDERS,
}
