"""Model-validated FHIR R5 resources for every chain of a demo run (issue 17 item 2, Proof),
black box, on PostgreSQL and Kafka: the demo's patient plans (seed 7, every special case)
driven through the real services; then, read from the projection's /fhir API with the
auditor's site token, every unit of every chain is a `BiologicallyDerivedProduct` and every
infused unit a `BiologicallyDerivedProductDispense` that parse with `fhir.resources` (R5),
found again by identifier search; a hospital finds none of the other hospital's units.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome

from v2v_platform.auth.tokens import issue_site_token
from v2v_simulator.running import DemoRun

pytestmark = pytest.mark.integration
UNIT = "urn:v2v:isbt128:din"
PRODUCTS = "/fhir/BiologicallyDerivedProduct"
DISPENSES = "/fhir/BiologicallyDerivedProductDispense"


def parsed(model: Any, reply: httpx.Response) -> Any:
    assert reply.status_code == 200, (str(reply.url), reply.text)
    assert reply.headers["content-type"].startswith("application/fhir+json")
    return model.model_validate(reply.json())


def client(base: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, trust_env=False, timeout=60.0)


def test_every_chain_of_a_demo_run_reads_as_valid_fhir_r5(
    demo_run: DemoRun,
) -> None:
    running = demo_run.running
    consortium = running.system.consortium
    base = running.system.http_base("projection", consortium.auditor_site)
    pki = running.system.pki

    with client(base) as anyone:
        statement = parsed(CapabilityStatement, anyone.get("/fhir/metadata"))
        assert statement.fhirVersion == "5.0.0"
    products = dispenses = 0
    units_of: dict[str, list[str]] = {}
    with client(base, issue_site_token(pki, consortium.auditor_site)) as auditor:
        chains = auditor.get("/v1/chains", params={"limit": 1000}).json()["chains"]
        assert {journey.coi for journey in demo_run.journeys} <= {c["coi"] for c in chains}
        for summary in chains:
            coi = summary["coi"]
            view = auditor.get(f"/v1/chains/{coi}").json()
            units_of[coi] = [unit["din"] for unit in view["units"]]
            for din in units_of[coi]:
                product = parsed(BiologicallyDerivedProduct, auditor.get(f"{PRODUCTS}/{din}-{coi}"))
                assert product.identifier[0].value == din
                found = parsed(
                    Bundle, auditor.get(PRODUCTS, params={"identifier": f"{UNIT}|{din}"})
                )
                assert f"{din}-{coi}" in [entry.resource.id for entry in found.entry]
                products += 1
            infusion = view["infusion"]
            if infusion is not None and infusion["status"] == "administered":
                din = infusion["din"]
                dispense = parsed(
                    BiologicallyDerivedProductDispense, auditor.get(f"{DISPENSES}/{din}-{coi}")
                )
                assert dispense.status == "issued"
                assert dispense.patient.identifier.value == coi
                assert dispense.whenHandedOver is not None
                found = parsed(Bundle, auditor.get(DISPENSES, params={"identifier": din}))
                assert [entry.resource.id for entry in found.entry] == [f"{din}-{coi}"]
                dispenses += 1
    print(f"FHIR R5: {len(chains)} chains, {products} products, {dispenses} dispenses, all valid")
    assert dispenses >= len(demo_run.journeys)  # every journey ends infused
    assert products >= 2 * len(demo_run.journeys)  # a bag and a product at least

    first, second = consortium.hospitals
    theirs = next(j for j in demo_run.journeys if j.plan.hospital.site_id == second.site_id)
    with client(base, issue_site_token(pki, first.site_id)) as hospital:
        for din in units_of[theirs.coi]:
            found = parsed(Bundle, hospital.get(PRODUCTS, params={"identifier": din}))
            assert theirs.coi not in found.model_dump_json()
            refused = hospital.get(f"{PRODUCTS}/{din}-{theirs.coi}")
            assert refused.status_code == 404
            OperationOutcome.model_validate(refused.json())
