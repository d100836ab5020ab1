"""FHIR R5 resources from chain views (issue 17 item 2): every resource parses with its
`fhir.resources` R5 model, the unit state and dispense status tables, identifiers and ids."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources import __fhir_version__
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome

from v2v_platform.ids.din import Din
from v2v_projection.fold import ChainFold
from v2v_projection.standards import fhir
from v2v_projection.standards.fhir_search import BadSearch, canonical_din, criteria
from v2v_testkit.audit import GMP_SITE, PATIENT_SITE, HandWrittenChain, enrolled_to_infused
from v2v_testkit.synthetic.chains import generate_history
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def view_of(records: list[bytes], coi: str = COI) -> dict[str, Any]:
    fold = ChainFold()
    for record in records:
        fold.apply_bytes(record)
    view = fold.chain(coi)
    assert view is not None
    return view


@pytest.fixture(scope="module")
def chain() -> HandWrittenChain:
    return enrolled_to_infused(EnvelopeWriter(), COI, START)


@pytest.fixture(scope="module")
def view(chain: HandWrittenChain) -> dict[str, Any]:
    return view_of(chain.values())


def parsed(model: Any, resource: dict[str, Any]) -> Any:
    """The resource as a client receives it (JSON text) parsed by its R5 model."""
    return model.model_validate(json.loads(json.dumps(resource)))


def test_the_models_are_fhir_r5() -> None:
    assert __fhir_version__ == fhir.FHIR_VERSION == "5.0.0"


def test_every_unit_is_a_product_its_r5_model_parses(
    view: dict[str, Any], chain: HandWrittenChain
) -> None:
    made = fhir.products(view)

    models = [parsed(BiologicallyDerivedProduct, p) for p in made]
    assert [p.identifier[0].value for p in models] == [chain.bag, *chain.products]
    for product, unit in zip(models, view["units"], strict=True):
        assert product.id == f"{unit['din']}-{COI}"
        assert product.identifier[0].system == fhir.UNIT_SYSTEM
        assert product.biologicalSourceEvent.system == fhir.DIN_SYSTEM
        assert product.biologicalSourceEvent.value == unit["din"][:13]
        assert product.productCategory.code == "cells"
        assert product.productCode is None  # the facts carry no product code today


def test_a_collected_unit_names_its_patient_by_coi_and_its_collection_time(
    view: dict[str, Any], chain: HandWrittenChain
) -> None:
    bag = parsed(BiologicallyDerivedProduct, fhir.products(view)[0])

    assert bag.collection.source.type == "Patient"
    assert bag.collection.source.identifier.system == fhir.COI_SYSTEM
    assert bag.collection.source.identifier.value == COI
    assert bag.collection.collectedDateTime.isoformat() == chain.at(1).isoformat()
    assert bag.parent is None


def test_a_product_names_its_parent_facility_batch_and_storage_range(
    view: dict[str, Any], chain: HandWrittenChain
) -> None:
    product = parsed(BiologicallyDerivedProduct, fhir.products(view)[1])

    assert [p.reference for p in product.parent] == [
        f"BiologicallyDerivedProduct/{chain.bag}-{COI}"
    ]
    assert product.processingFacility[0].identifier.value == GMP_SITE
    assert product.storageTempRequirements.low.value == 2.0
    assert product.storageTempRequirements.high.value == 8.0
    assert product.storageTempRequirements.high.code == "Cel"
    properties = {p.type.coding[0].code: p for p in product.property}
    assert chain.batch_id in properties["manufacturing-batch"].valueString
    period = properties["manufacturing-period"].valuePeriod
    assert (period.start.isoformat(), period.end.isoformat()) == (
        chain.at(10).isoformat(),
        chain.at(100).isoformat(),
    )
    assert product.collection is None


def test_a_cryopreserved_unit_is_stored_at_or_below_minus_150() -> None:
    assert fhir.storage("cryo") == {"high": fhir.celsius(-150.0)}
    assert fhir.storage("") is None


def state_of(product: dict[str, Any]) -> tuple[str, str | None]:
    model = parsed(BiologicallyDerivedProduct, product)
    state = next(p for p in model.property if p.type.coding[0].code == "state")
    status = model.productStatus.code if model.productStatus is not None else None
    return state.valueCodeableConcept.coding[0].code, status


def test_unit_states_of_an_infused_chain(view: dict[str, Any]) -> None:
    bag, infused, spare = fhir.products(view)

    assert state_of(bag) == ("issued", "unavailable")  # used by the batch
    assert state_of(infused) == ("issued", "unavailable")
    assert state_of(spare) == ("available", "available")  # released, never at the ward


def unit(kind: str = "product", din: str = "B23452500001701", batch: str = "b-1") -> Any:
    return {"din": din, "kind": kind, "batch_id": batch}


def chain_view(
    release: str | None = None, infusion: str | None = None, started: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "batches": [{"batch_id": "b-1", "input_dins": list(started)}],
        "releases": [] if release is None else [{"batch_id": "b-1", "status": release}],
        "infusion": None if infusion is None else {"din": "B23452500001701", "status": infusion},
    }


@pytest.mark.parametrize(
    ("release", "infusion", "state"),
    [
        (None, None, "quarantined"),
        ("open", None, "quarantined"),
        ("oos-justified", None, "quarantined"),
        ("rejected", None, "rejected"),
        ("provisionally-certified", None, "available"),
        ("finally-certified", None, "available"),
        ("oos-released", None, "available"),
        ("finally-certified", "received", "allocated"),
        ("finally-certified", "stored", "allocated"),
        ("finally-certified", "thawed", "allocated"),
        ("finally-certified", "bedside-scan", "allocated"),
        ("finally-certified", "verified", "allocated"),
        ("finally-certified", "administered", "issued"),
        (None, "administered", "issued"),
    ],
)
def test_the_state_table_of_a_product_unit(
    release: str | None, infusion: str | None, state: str
) -> None:
    assert fhir.unit_state(chain_view(release, infusion), unit()) == state


def test_the_state_of_collected_and_unknown_units() -> None:
    bag = "A12342500001701"
    assert fhir.unit_state(chain_view(), unit("apheresis", bag, batch="")) == "allocated"
    allocated_to_a_batch = unit("apheresis", bag, batch="b-1")
    assert fhir.unit_state(chain_view(), allocated_to_a_batch) == "allocated"
    assert fhir.unit_state(chain_view(started=(bag,)), allocated_to_a_batch) == "issued"
    assert fhir.unit_state(chain_view(), unit("other")) == "unknown"
    assert "unknown" not in fhir.PRODUCT_STATUS  # no productStatus then


def test_product_status_codes_are_r5_codes() -> None:
    assert set(fhir.PRODUCT_STATUS.values()) == {"available", "unavailable"}


def infusion_at(view: dict[str, Any], status: str) -> dict[str, Any]:
    changed = copy.deepcopy(view)
    changed["infusion"]["status"] = status
    return changed


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("received", "allocated"),
        ("stored", "allocated"),
        ("thawed", "in-progress"),
        ("bedside-scan", "in-progress"),
        ("verified", "in-progress"),
        ("administered", "issued"),
    ],
)
def test_the_dispense_status_table(view: dict[str, Any], status: str, expected: str) -> None:
    made = fhir.dispense(infusion_at(view, status))
    assert made is not None

    dispensed = parsed(BiologicallyDerivedProductDispense, made)

    assert dispensed.status == expected
    assert (dispensed.whenHandedOver is not None) == (status == "administered")


def test_the_dispense_of_an_infused_unit(view: dict[str, Any], chain: HandWrittenChain) -> None:
    made = fhir.dispense(view)
    assert made is not None

    dispensed = parsed(BiologicallyDerivedProductDispense, made)

    product = chain.products[0]
    assert dispensed.id == f"{product}-{COI}"
    assert dispensed.product.reference == f"BiologicallyDerivedProduct/{product}-{COI}"
    assert dispensed.patient.type == "Patient"
    assert dispensed.patient.identifier.value == COI
    assert dispensed.location.identifier.value == PATIENT_SITE
    assert dispensed.whenHandedOver.isoformat() == chain.at(125).isoformat()
    assert fhir.dispense({**view, "infusion": None}) is None


def test_the_capability_statement_is_r5_with_read_and_search_of_both_resources() -> None:
    statement = parsed(
        CapabilityStatement, fhir.capability_statement("2026-12-05", "http://fhir.example/fhir")
    )

    assert statement.fhirVersion == "5.0.0"
    assert statement.kind == "instance"
    assert statement.format == ["json"]
    (rest,) = statement.rest
    assert [r.type for r in rest.resource] == [fhir.PRODUCT, fhir.DISPENSE]
    for resource in rest.resource:
        assert [i.code for i in resource.interaction] == ["read", "search-type"]
        assert [p.name for p in resource.searchParam] == ["identifier", "_id"]


def test_an_operation_outcome_names_the_parameter() -> None:
    outcome = parsed(OperationOutcome, fhir.operation_outcome(400, "bad", "_x"))

    (issue,) = outcome.issue
    assert (issue.severity, issue.code, issue.expression) == ("error", "invalid", ["_x"])


def test_resource_ids_round_trip_and_refuse_what_is_not_ours() -> None:
    made = fhir.resource_id("B23452500001701", COI)

    assert fhir.parse_resource_id(made) == ("B23452500001701", COI)
    for wrong in ("", "B23452500001701", f"B2345-{COI}", f"B23452500001701-{COI}x", "a-b"):
        assert fhir.parse_resource_id(wrong) is None


def test_a_din_is_found_in_its_scanned_checked_and_epcis_forms() -> None:
    assert canonical_din("A12342500001701") == "A12342500001701"
    checked = Din.parse("A12342500001701").with_check_character()
    assert len(checked) == 16
    assert canonical_din(checked) == "A12342500001701"
    assert canonical_din(checked[:15] + ("0" if checked[15] != "0" else "1")) is None
    assert canonical_din("A123425000017:01") == "A12342500001701"
    assert canonical_din("nonsense") is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([], "identifier"),
        ([("identifier", "")], "identifier"),
        ([("identifier", f"{fhir.UNIT_SYSTEM}|")], "identifier"),
        ([("identifier", f"{fhir.UNIT_SYSTEM}|not-a-din")], "identifier"),
        ([("identifier", "a|b|c")], "identifier"),
        ([("_id", "")], "_id"),
        ([("patient", COI)], "patient"),
        ([("_format", "xml")], "_format"),
    ],
)
def test_a_malformed_search_names_its_parameter(
    params: list[tuple[str, str]], parameter: str
) -> None:
    with pytest.raises(BadSearch) as refused:
        criteria(params)

    assert refused.value.parameter == parameter


def test_every_unit_and_infusion_of_a_generated_history_gives_valid_resources() -> None:
    """Synthetic journeys (cryo and fresh, rejections, OOS, excursions): every unit a valid
    product, every chain with an infusion record a valid dispense of one of its units."""
    history = generate_history(17, 24)
    fold = ChainFold()
    fold.apply_all(record for _, _, record in history.all_records())
    states: set[str] = set()
    dispensed = 0

    for view in fold.chains():
        products = [parsed(BiologicallyDerivedProduct, p) for p in fhir.products(view)]
        assert len(products) == len(view["units"]) > 0
        states |= {state_of(p)[0] for p in fhir.products(view)}
        made = fhir.dispense(view)
        if view["infusion"] is not None:
            assert made is not None
            dispense = parsed(BiologicallyDerivedProductDispense, made)
            assert dispense.id in {p.id for p in products}
            dispensed += 1

    assert dispensed > 0
    assert {"issued", "available"} <= states
