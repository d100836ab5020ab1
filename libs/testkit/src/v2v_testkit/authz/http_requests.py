"""A request builder per HTTP route, keyed `<context>: METHOD path` (the OpenAPI path
template). A route with no builder here fails the authorization matrix: add one when adding
a route. Courier routes name a courier as the related caller (the seeded shipment's)."""

from __future__ import annotations

from v2v_testkit.authz.grpc_requests import analyst, collector, gmp_operator, nurse, readings
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

FRESH = "fresh-cold"


def therapy(seed: Seed, body: dict[str, object] | None = None, **path: str) -> Request:
    return Request(seed.hospital, seed.hospital, body, {"coi": seed.coi, **path})


INTAKE_ROUTES: dict[str, Builder] = {
    "intake: POST /v1/therapies": lambda s: Request(
        s.hospital,
        s.hospital,
        {
            "operator": collector(s),
            "patient_pseudonym": unique("PSN"),
            "personal_details": patient_details(s),
            "treating_site_id": s.hospital,
        },
    ),
    "intake: GET /v1/therapies/{coi}": lambda s: therapy(s),
    "intake: POST /v1/therapies/{coi}/collections": lambda s: therapy(
        s,
        {
            "operator": collector(s),
            "started_at": moment(300),
            "ended_at": moment(60),
            "volume_ml": 180.0,
            "total_nucleated_cells_e9": 10.0,
            "cd3_cells_e9": 5.0,
            "slot_id": s.slot_id,
        },
    ),
    "intake: POST /v1/therapies/{coi}/collections/{collection_id}/units": lambda s: therapy(
        s,
        {"operator": collector(s), "count": 1, "unit_kind": "apheresis-bag"},
        collection_id=s.collection_id,
    ),
    "intake: POST /v1/therapies/{coi}/erasure": lambda s: therapy(
        s, {"operator": collector(s), "reason": "authorization matrix: erasure request"}
    ),
    "intake: POST /v1/therapies/{coi}/slots": lambda s: therapy(
        s, {"operator": collector(s), "manufacturing_site_id": s.gmp, "slot_date": s.slot_date}
    ),
    "intake: POST /v1/therapies/{coi}/units/{din}/packaging": lambda s: therapy(
        s,
        {
            "operator": collector(s),
            "condition": FRESH,
            "temperature_c": 4.0,
            "manufacturing_site_id": s.gmp,
        },
        din=s.apheresis_din,
    ),
    "intake: GET /v1/therapies/{coi}/units/{din}/label.pdf": lambda s: therapy(
        s, din=s.apheresis_din
    ),
    "intake: POST /v1/therapies/{coi}/units/{din}/scans": lambda s: therapy(
        s,
        {
            "operator": collector(s),
            "scanned_din": s.apheresis_din,
            "scanned_coi": s.coi,
            "signature": signature(s.people.collector, "verification"),
        },
        din=s.apheresis_din,
    ),
}


def gmp(seed: Seed, body: dict[str, object] | None = None, **path: str) -> Request:
    return Request(seed.gmp, seed.gmp, body, path)


def batch(seed: Seed, body: dict[str, object] | None = None) -> Request:
    return gmp(seed, body, batch_id=seed.batch_id)


def calendar(seed: Seed, related: str, body: dict[str, object] | None = None) -> Request:
    return Request(seed.gmp, related, body, {"site_id": seed.gmp, "slot_date": seed.slot_date})


MANUFACTURING_ROUTES: dict[str, Builder] = {
    "manufacturing: POST /v1/batches": lambda s: gmp(
        s, {"operator": gmp_operator(s), "input_dins": list(s.apheresis_dins)}
    ),
    "manufacturing: GET /v1/batches/{batch_id}": lambda s: batch(s),
    "manufacturing: POST /v1/batches/{batch_id}/failure": lambda s: batch(
        s, {"operator": gmp_operator(s), "reason": "authorization matrix"}
    ),
    "manufacturing: POST /v1/batches/{batch_id}/harvest": lambda s: batch(
        s, {"operator": gmp_operator(s), "product_unit_count": 1, "hold_condition": FRESH}
    ),
    "manufacturing: POST /v1/batches/{batch_id}/qc-results": lambda s: batch(
        s,
        {
            "operator": gmp_operator(s),
            "test": "viability",
            "value": 91.0,
            "unit": "%",
            "passed": True,
        },
    ),
    "manufacturing: POST /v1/batches/{batch_id}/steps": lambda s: batch(
        s,
        {
            "operator": gmp_operator(s),
            "step_kind": "formulation",
            "device_type": "Sepax C-Pro",
            "device_serial": "SEPAX-0001",
            "reagent_lots": ["CryoStor-CS10"],
        },
    ),
    "manufacturing: GET /v1/calendars/{site_id}/{slot_date}": lambda s: calendar(s, s.gmp),
    "manufacturing: PUT /v1/calendars/{site_id}/{slot_date}": lambda s: calendar(
        s, s.gmp, {"operator": gmp_operator(s), "capacity": 9}
    ),
    "manufacturing: POST /v1/calendars/{site_id}/{slot_date}/bookings": lambda s: calendar(
        s, s.hospital, {"operator": collector(s), "coi": s.coi}
    ),
    "manufacturing: GET /v1/expected-units/{coi}": lambda s: gmp(s, coi=s.coi),
    "manufacturing: GET /v1/units/{din}/label.pdf": lambda s: gmp(s, din=s.product_din),
    "manufacturing: POST /v1/receipts": lambda s: gmp(
        s, {"operator": gmp_operator(s), "scanned_din": s.apheresis_din, "scanned_coi": s.coi}
    ),
    "manufacturing: POST /v1/slot-releases": lambda s: Request(
        s.gmp,
        s.hospital,
        {
            "operator": collector(s),
            "slot_id": s.spare_slot_ids[1],
            "reason": "authorization matrix",
        },
    ),
}


def shipment(seed: Seed, related: str, body: dict[str, object] | None = None) -> Request:
    path = {"shipment_id": seed.apheresis_shipment.shipment_id}
    return Request(seed.logistics, related, body, path)


def courier_scan(seed: Seed, **fields: str) -> Request:
    leg = seed.apheresis_shipment
    body: dict[str, object] = {
        "idempotency_key": unique("scan"),
        "scanned_at": moment(),
        "from_party": f"site:{leg.origin}",
        **fields,
    }
    return shipment(seed, leg.courier_id, body)


def courier_offer(seed: Seed) -> Request:
    leg = seed.apheresis_shipment
    body: dict[str, object] = {
        "idempotency_key": unique("offer"),
        "scanned_at": moment(),
        "to_party": f"site:{leg.destination}",
    }
    return shipment(seed, leg.courier_id, body)


LOGISTICS_ROUTES: dict[str, Builder] = {
    "logistics: POST /v1/courier/login": lambda s: Request(
        s.logistics, s.apheresis_shipment.courier_id, {"password": s.courier_password}
    ),
    "logistics: GET /v1/courier/me": lambda s: Request(
        s.logistics, s.apheresis_shipment.courier_id
    ),
    "logistics: GET /v1/courier/shipments": lambda s: Request(
        s.logistics, s.apheresis_shipment.courier_id
    ),
    "logistics: POST /v1/courier/shipments/{shipment_id}/handoff": lambda s: courier_scan(s),
    "logistics: POST /v1/courier/shipments/{shipment_id}/offer": lambda s: courier_offer(s),
    "logistics: POST /v1/courier/shipments/{shipment_id}/scans": lambda s: courier_scan(
        s, label=s.apheresis_din
    ),
    "logistics: POST /v1/shipments": lambda s: Request(
        s.logistics,
        s.apheresis_shipment.origin,
        {
            "operator": collector(s),
            "manifest": list(s.apheresis_dins),
            "condition": FRESH,
            "destination_site_id": s.apheresis_shipment.destination,
            "shipper_id": "BOX-AUTHZ",
            "data_logger_id": "LOGGER-AUTHZ",
            "courier_id": s.apheresis_shipment.courier_id,
        },
    ),
    "logistics: GET /v1/shipments/{shipment_id}": lambda s: shipment(
        s, s.apheresis_shipment.origin
    ),
    "logistics: POST /v1/shipments/{shipment_id}/courier": lambda s: shipment(
        s,
        s.apheresis_shipment.origin,
        {"operator": collector(s), "courier_id": s.apheresis_shipment.courier_id},
    ),
    "logistics: POST /v1/shipments/{shipment_id}/exception": lambda s: shipment(
        s,
        s.apheresis_shipment.origin,
        {"operator": collector(s), "kind": "delayed", "reason": "authorization matrix"},
    ),
    "logistics: POST /v1/shipments/{shipment_id}/inspection": lambda s: shipment(
        s,
        s.apheresis_shipment.destination,
        {"operator": gmp_operator(s), "intact": True, "temperature_log_reviewed": True},
    ),
    "logistics: POST /v1/shipments/{shipment_id}/receipt": lambda s: shipment(
        s,
        s.apheresis_shipment.destination,
        {
            "operator": gmp_operator(s),
            "scanned_labels": list(s.apheresis_dins),
            "from_party": f"courier:{s.apheresis_shipment.courier_id}",
        },
    ),
    "logistics: POST /v1/shipments/{shipment_id}/temperature-readings": lambda s: shipment(
        s,
        s.apheresis_shipment.destination,
        {"operator": gmp_operator(s), "readings": readings(s)},
    ),
}


def qp_signed(seed: Seed, **fields: object) -> Request:
    body = {
        "operator": analyst(seed),
        "signature": signature(seed.people.qp, "approval"),
        **fields,
    }
    return batch(seed, body)


RELEASE_ROUTES: dict[str, Builder] = {
    "release: GET /v1/batches/{batch_id}": lambda s: batch(s),
    "release: POST /v1/batches/{batch_id}/final-certification": qp_signed,
    "release: POST /v1/batches/{batch_id}/provisional-certification": qp_signed,
    "release: POST /v1/batches/{batch_id}/oos-justification": lambda s: qp_signed(
        s, justification="authorization matrix: no alternative therapy"
    ),
    "release: POST /v1/batches/{batch_id}/rejection": lambda s: qp_signed(
        s, reason="authorization matrix"
    ),
    "release: POST /v1/batches/{batch_id}/oos-acceptance": lambda s: Request(
        s.gmp,
        s.hospital,
        {
            "operator": operator(s.people.physician),
            "signature": signature(s.people.physician, "responsibility"),
        },
        {"batch_id": s.batch_id},
    ),
    "release: POST /v1/batches/{batch_id}/qc-results": lambda s: batch(
        s,
        {
            "operator": analyst(s),
            "test": "endotoxin",
            "method": "LAL",
            "value": "0.1",
            "unit": "EU/mL",
            "result_at": moment(30),
            "analyst": analyst(s),
        },
    ),
    "release: GET /v1/specifications": lambda s: gmp(s),
}


def unit(seed: Seed, body: dict[str, object] | None = None) -> Request:
    return Request(seed.hospital, seed.hospital, body, {"din": seed.product_din})


INFUSION_ROUTES: dict[str, Builder] = {
    "infusion: GET /v1/alerts": lambda s: Request(s.hospital, s.hospital),
    "infusion: POST /v1/alerts/{failure_id}/acknowledgement": lambda s: Request(
        s.hospital,
        s.hospital,
        {
            "operator": operator(s.people.physician),
            "decision": "authorization matrix: patient informed",
            "signature": signature(s.people.physician, "responsibility"),
        },
        {"failure_id": s.failure_id},
    ),
    "infusion: POST /v1/bedside-scans": lambda s: Request(
        s.hospital,
        s.hospital,
        {
            "operator": nurse(s),
            "wristband_coi": s.coi,
            "din": s.product_din,
            "scanned_at": moment(),
            "signature": signature(s.people.nurse, "verification"),
        },
    ),
    "infusion: GET /v1/units/{din}": lambda s: unit(s),
    "infusion: POST /v1/units/{din}/adverse-events": lambda s: unit(
        s, {"operator": nurse(s), "kind": "crs", "grade": 1, "onset_at": moment()}
    ),
    "infusion: POST /v1/units/{din}/infusion": lambda s: unit(
        s,
        {
            "operator": nurse(s),
            "dose_car_cells_per_kg": 1.0e6,
            "volume_ml": 68.0,
            "witnessed_by": operator(s.people.second_nurse),
            "witness_signature": signature(s.people.second_nurse, "witness"),
            "administered_at": moment(),
        },
    ),
    "infusion: POST /v1/units/{din}/receipt": lambda s: unit(
        s, {"operator": nurse(s), "received_at": moment()}
    ),
    "infusion: POST /v1/units/{din}/storage": lambda s: unit(
        s, {"operator": nurse(s), "location": "pharmacy fridge 1", "stored_at": moment()}
    ),
    "infusion: POST /v1/units/{din}/thaw": lambda s: unit(
        s, {"operator": nurse(s), "thaw_started_at": moment()}
    ),
}


def chain(seed: Seed, path: dict[str, str] | None = None, **query: str) -> Request:
    return Request(seed.auditor, seed.hospital, None, path or {}, query)


PROJECTION_ROUTES: dict[str, Builder] = {
    "projection: GET /v1/alerts": lambda s: chain(s, coi=s.coi),
    "projection: GET /v1/chains": lambda s: chain(s),
    "projection: GET /v1/chains/{coi}": lambda s: chain(s, {"coi": s.coi}),
    "projection: GET /v1/chains/{coi}/custody": lambda s: chain(s, {"coi": s.coi}),
    "projection: GET /v1/chains/{coi}/epcis": lambda s: chain(s, {"coi": s.coi}),
    "projection: GET /v1/chains/{coi}/integrity": lambda s: chain(s, {"coi": s.coi}),
    "projection: GET /v1/kpis": lambda s: chain(s),
    "projection: GET /fhir/BiologicallyDerivedProduct": lambda s: chain(
        s, identifier=f"urn:v2v:isbt128:din|{s.product_din}"
    ),
    "projection: GET /fhir/BiologicallyDerivedProduct/{resource_id}": lambda s: chain(
        s, {"resource_id": f"{s.product_din}-{s.coi}"}
    ),
    "projection: GET /fhir/BiologicallyDerivedProductDispense": lambda s: chain(
        s, identifier=f"urn:v2v:isbt128:din|{s.product_din}"
    ),
    "projection: GET /fhir/BiologicallyDerivedProductDispense/{resource_id}": lambda s: chain(
        s, {"resource_id": f"{s.product_din}-{s.coi}"}
    ),
}


HTTP_BUILDERS: dict[str, Builder] = {
    **INTAKE_ROUTES,
    **MANUFACTURING_ROUTES,
    **LOGISTICS_ROUTES,
    **RELEASE_ROUTES,
    **INFUSION_ROUTES,
    **PROJECTION_ROUTES,
}
