"""HL7 FHIR R5 resources built from a chain view (`ChainQueries.chain`; keys in chain/view.py),
each validated by its `fhir.resources` model (R5, 5.0.0) before it is served.

- `BiologicallyDerivedProduct` per unit of the chain;
- `BiologicallyDerivedProductDispense` for the chain's infusion record (the unit the treating
  site received, prepared and infused);
- the `CapabilityStatement` of the read API, and searchset `Bundle`s and `OperationOutcome`s.

Identifiers (docs/standards.md, "FHIR R5"): a unit is `urn:v2v:isbt128:din|<DIN + flags>`
(the 15 characters its DIN bar code carries; the EPCIS export names the same unit
`urn:v2v:isbt128:din:<DIN>:<flags>`), its `biologicalSourceEvent` is ISBT 128's DIN URI with
the 13-character DIN (as HL7's R5 example does), a site `urn:v2v:site|<SITE_ID>`, a patient
by the chain's COI `urn:v2v:coi|<COI>` (a logical reference: v2v holds no Patient resource).
Resource ids are `<DIN + flags>-<COI>`: stable, URL-safe, unique even when one DIN is bound
to two chains, and enough to find the chain without a search.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.resource import Resource

from v2v_platform.conditions import Condition
from v2v_platform.ids.coi import COI_LENGTH
from v2v_platform.ids.din import DIN_DATA_LENGTH, DIN_LENGTH

FHIR_VERSION = "5.0.0"
FHIR_JSON = "application/fhir+json"
PRODUCT = "BiologicallyDerivedProduct"
DISPENSE = "BiologicallyDerivedProductDispense"

UNIT_SYSTEM = "urn:v2v:isbt128:din"
"""A unit's identifier: the DIN with its flags, as its bar code carries it (15 characters)."""
DIN_SYSTEM = "https://www.isbt128.org/uri/DonationIdentificationNumber"
"""`biologicalSourceEvent`: the 13-character ISBT 128 DIN (the URI of HL7's R5 example)."""
COI_SYSTEM = "urn:v2v:coi"
SITE_SYSTEM = "urn:v2v:site"
PROPERTY_SYSTEM = "urn:v2v:fhir:product-property"
STATE_SYSTEM = "urn:v2v:fhir:product-state"
CATEGORY_SYSTEM = "http://hl7.org/fhir/product-category"
PRODUCT_STATUS_SYSTEM = "http://hl7.org/fhir/biologicallyderived-product-status"
UCUM = "http://unitsofmeasure.org"

CONDITIONS = {condition.value: condition for condition in Condition}
RELEASED = frozenset({"provisionally-certified", "finally-certified", "oos-released"})
AT_THE_WARD = frozenset({"received", "stored", "thawed", "bedside-scan", "verified"})

PRODUCT_STATUS = {
    "available": "available",
    "allocated": "available",
    "issued": "unavailable",
    "quarantined": "unavailable",
    "rejected": "unavailable",
    "expired": "unavailable",
}
"""v2v state of a unit (`unit_state`) -> R5 `productStatus` (code system
biologicallyderived-product-status: available | unavailable); `unknown` gives none."""

DISPENSE_STATUS = {
    "received": "allocated",
    "stored": "allocated",
    "thawed": "in-progress",
    "bedside-scan": "in-progress",
    "verified": "in-progress",
    "administered": "issued",
}
"""The chain's infusion status (chain/on_infusion.py) -> R5 dispense `status`; anything
else `unknown`. R5 has no `completed`: an infused unit was `issued` (handed over)."""


def resource_id(din: str, coi: str) -> str:
    return f"{din}-{coi}"


def parse_resource_id(value: str) -> tuple[str, str] | None:
    """(DIN, COI) of a resource id, or None when it cannot be one of ours."""
    din, dash, coi = value.partition("-")
    if not dash or len(din) != DIN_LENGTH or len(coi) != COI_LENGTH:
        return None
    if not (din.isalnum() and din.isascii() and coi.isalnum() and coi.isascii()):
        return None
    return din, coi


def unit_state(view: dict[str, Any], unit: dict[str, Any]) -> str:
    """The unit's state from the chain's release and infusion facts (docs/standards.md)."""
    din, infusion = unit["din"], view["infusion"]
    if infusion is not None and infusion["din"] == din:
        if infusion["status"] == "administered":
            return "issued"
        if infusion["status"] in AT_THE_WARD:
            return "allocated"
    if unit["kind"] == "apheresis":
        started = any(din in batch["input_dins"] for batch in view["batches"])
        return "issued" if started else "allocated"
    if unit["kind"] != "product":
        return "unknown"
    status = release_status(view, unit["batch_id"])
    if status in RELEASED:
        return "available"
    return "rejected" if status == "rejected" else "quarantined"


def release_status(view: dict[str, Any], batch_id: str) -> str:
    found = [r["status"] for r in view["releases"] if r["batch_id"] == batch_id]
    return found[0] if found else "open"


def validated(model: type[Resource], data: dict[str, Any]) -> dict[str, Any]:
    """`data` parsed by its R5 model (raises pydantic's ValidationError), as served JSON."""
    built: dict[str, Any] = model.model_validate(data).model_dump(mode="json")
    return built


def product(view: dict[str, Any], unit: dict[str, Any]) -> dict[str, Any]:
    coi, din = view["coi"], unit["din"]
    state = unit_state(view, unit)
    data: dict[str, Any] = {
        "resourceType": PRODUCT,
        "id": resource_id(din, coi),
        "productCategory": {"system": CATEGORY_SYSTEM, "code": "cells", "display": "Cells"},
        "parent": [
            {"reference": f"{PRODUCT}/{resource_id(parent, coi)}"} for parent in unit["parents"]
        ],
        "identifier": [{"system": UNIT_SYSTEM, "value": din}],
        "biologicalSourceEvent": {"system": DIN_SYSTEM, "value": din[:DIN_DATA_LENGTH]},
        "processingFacility": facilities(view, unit),
        "collection": collection(view, unit),
        "storageTempRequirements": storage(unit["condition"]),
        "property": [state_property(state), *processing(view, unit)],
    }
    if state in PRODUCT_STATUS:
        code = PRODUCT_STATUS[state]
        data["productStatus"] = {
            "system": PRODUCT_STATUS_SYSTEM,
            "code": code,
            "display": code.capitalize(),
        }
    return validated(BiologicallyDerivedProduct, without_empty(data))


def products(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [product(view, unit) for unit in view["units"]]


def without_empty(data: dict[str, Any]) -> dict[str, Any]:
    """FHIR forbids empty elements: drop the ones a chain has nothing for."""
    return {key: value for key, value in data.items() if value not in (None, [], {}, "")}


def site(site_id: str) -> dict[str, Any]:
    """A logical reference to a site (v2v serves no Organization resources)."""
    return {"type": "Organization", "identifier": {"system": SITE_SYSTEM, "value": site_id}}


def patient(coi: str) -> dict[str, Any]:
    """The chain's patient by COI (a logical reference: v2v holds no Patient resource)."""
    return {"type": "Patient", "identifier": {"system": COI_SYSTEM, "value": coi}}


def batch_of(view: dict[str, Any], batch_id: str) -> dict[str, Any] | None:
    return next((b for b in view["batches"] if b["batch_id"] == batch_id), None)


def facilities(view: dict[str, Any], unit: dict[str, Any]) -> list[dict[str, Any]]:
    """The GMP site whose batch made a product unit."""
    batch = batch_of(view, unit["batch_id"]) if unit["kind"] == "product" else None
    return [site(batch["site_id"])] if batch is not None and batch["site_id"] else []


def collection(view: dict[str, Any], unit: dict[str, Any]) -> dict[str, Any] | None:
    """An apheresis unit was collected from the chain's patient when it was labelled; the
    facts name no collecting person (R5 `collector` is a Practitioner)."""
    if unit["kind"] != "apheresis":
        return None
    found: dict[str, Any] = {"source": patient(view["coi"])}
    if unit["created_at"]:
        found["collectedDateTime"] = unit["created_at"]
    return found


def storage(condition: str) -> dict[str, Any] | None:
    """The condition's temperature range (v2v_platform.conditions); cryo: at most -150 °C."""
    kind = CONDITIONS.get(condition)
    if kind is None:
        return None
    low, high = kind.temperature_range_c
    bounds = {"high": celsius(high)}
    return bounds if kind is Condition.CRYO else {"low": celsius(low), **bounds}


def celsius(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "°C", "system": UCUM, "code": "Cel"}


def property_type(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": PROPERTY_SYSTEM, "code": code, "display": display}]}


def state_property(state: str) -> dict[str, Any]:
    return {
        "type": property_type("state", "v2v state of the unit"),
        "valueCodeableConcept": {"coding": [{"system": STATE_SYSTEM, "code": state}]},
    }


def processing(view: dict[str, Any], unit: dict[str, Any]) -> list[dict[str, Any]]:
    """R5 has no `processing` element: the manufacturing batch that made a product unit (or
    used an apheresis unit) goes in `property`: its id and status, and its period."""
    batch = batch_of(view, unit["batch_id"]) if unit["batch_id"] else None
    if batch is None:
        return []
    role = "made from" if unit["kind"] == "apheresis" else "made by"
    shown = [
        {
            "type": property_type("manufacturing-batch", "Manufacturing batch"),
            "valueString": f"{role} batch {batch['batch_id']} at {batch['site_id']}"
            f" ({batch['status']})",
        }
    ]
    period = without_empty({"start": batch["started_at"], "end": batch["ended_at"]})
    if period:
        shown.append(
            {
                "type": property_type("manufacturing-period", "Manufacturing period"),
                "valuePeriod": period,
            }
        )
    return shown


def dispense(view: dict[str, Any]) -> dict[str, Any] | None:
    """The dispense of the unit the treating site took in for infusion, or None."""
    infusion = view["infusion"]
    if infusion is None or not infusion["din"]:
        return None
    coi, din = view["coi"], infusion["din"]
    data: dict[str, Any] = {
        "resourceType": DISPENSE,
        "id": resource_id(din, coi),
        "identifier": [{"system": UNIT_SYSTEM, "value": din}],
        "status": DISPENSE_STATUS.get(infusion["status"], "unknown"),
        "product": {
            "reference": f"{PRODUCT}/{resource_id(din, coi)}",
            "identifier": {"system": UNIT_SYSTEM, "value": din},
        },
        "patient": patient(coi),
    }
    if view["treating_site_id"]:
        data["location"] = {
            "type": "Location",
            "identifier": {"system": SITE_SYSTEM, "value": view["treating_site_id"]},
        }
    if infusion["status"] == "administered" and infusion["administered_at"]:
        data["whenHandedOver"] = infusion["administered_at"]
    return validated(BiologicallyDerivedProductDispense, data)


def capability_statement(date: str, base_url: str) -> dict[str, Any]:
    """What this server answers: read and search by identifier of the two resources."""
    search_params = [
        {"name": "identifier", "type": "token", "documentation": "system|value or value"},
        {"name": "_id", "type": "token", "documentation": "the resource id"},
    ]
    resources = [
        {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": search_params,
        }
        for kind in (PRODUCT, DISPENSE)
    ]
    data = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "v2v",
        "kind": "instance",
        "software": {"name": "v2v projection"},
        "implementation": {
            "description": "v2v chain of identity: read-only FHIR R5 view of the chains",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Site bearer tokens as on /v1; a site reads the units of the"
                " chains it is related to, an auditor all.",
                "security": {"description": "Authorization: Bearer <site token>"},
                "resource": resources,
            }
        ],
    }
    return validated(CapabilityStatement, data)


def searchset(base_url: str, self_url: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    data = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }
    return validated(Bundle, without_empty(data))


ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found"}


def operation_outcome(status: int, diagnostics: str, expression: str = "") -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "processing" if status < 500 else "exception"),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = [expression]
    return validated(OperationOutcome, {"resourceType": "OperationOutcome", "issue": [issue]})
