"""The FHIR R5 read API under /fhir (issue 17 item 2), through HTTP: every answer parses with
its R5 model, search by identifier (system|value, bare value, unknown, malformed), reads by
id, per-site visibility exactly as /v1, OperationOutcome errors, the open metadata."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome

from v2v_platform.access_policy import Access, Relation
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.http_api import SiteTokenVerifier
from v2v_projection.adapters.http_api import create_http_app
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.queries import ChainQueries
from v2v_projection.standards import fhir
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.audit import (
    GMP_SITE,
    OTHER_HOSPITAL,
    PATIENT_SITE,
    HandWrittenChain,
    enrolled_to_infused,
)
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
COIS = ("CHA123425000017", "CHA123425000018")
AUDITOR = "AUDIT-1"
SITES = (
    f"{PATIENT_SITE}:collection,infusion",
    f"{OTHER_HOSPITAL}:collection,infusion",
    f"{GMP_SITE}:manufacturing",
    f"{AUDITOR}:auditor",
    "ADMIN-1:admin",
)
UNIT = fhir.UNIT_SYSTEM


@pytest.fixture(scope="module")
def chains() -> dict[str, HandWrittenChain]:
    writer = EnvelopeWriter()
    return {coi: enrolled_to_infused(writer, coi, START) for coi in COIS}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def http(tmp_path: Path, chains: dict[str, HandWrittenChain], pki: Path) -> Iterator[TestClient]:
    keys = EnvelopeWriter().keys
    store = SqliteProjectionStore(tmp_path / "p.sqlite")
    projection = ChainProjection(store, verifier=InlineVerifier(EnvelopeGate(keys)))
    records = [record for chain in chains.values() for record in chain.records]
    projection.ingest([(t, 0, offset, value) for offset, (t, value) in enumerate(records)])
    queries = ChainQueries(projection)
    verifier = SiteTokenVerifier(pki / "ca.crt")
    app = create_http_app(queries, verifier)  # /fhir included, as the service serves it
    with TestClient(app) as client:
        yield client
    projection.close()


class Caller:
    def __init__(self, http: TestClient, pki: Path, site: str | None) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {issue_site_token(pki, site)}"} if site else {}

    def get(self, path: str, **params: Any) -> httpx.Response:
        reply: httpx.Response = self.http.get(path, params=params, headers=self.headers)
        return reply


def as_site(http: TestClient, pki: Path, site: str | None) -> Caller:
    return Caller(http, pki, site)


def parsed(model: Any, data: Any) -> Any:
    return model.model_validate(data)


def bundle_of(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith(fhir.FHIR_JSON)
    bundle = parsed(Bundle, reply.json())
    assert bundle.type == "searchset"
    for entry in bundle.entry or []:
        model = (
            BiologicallyDerivedProduct
            if entry.resource.get_resource_type() == fhir.PRODUCT
            else BiologicallyDerivedProductDispense
        )
        parsed(model, entry.resource.model_dump(mode="json"))
    return bundle


def ids_of(bundle: Any) -> list[str]:
    return [entry.resource.id for entry in bundle.entry or []]


def outcome_of(reply: httpx.Response, status: int) -> Any:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(fhir.FHIR_JSON)
    return parsed(OperationOutcome, reply.json())


PRODUCTS = f"/fhir/{fhir.PRODUCT}"
DISPENSES = f"/fhir/{fhir.DISPENSE}"


def test_search_by_system_and_value_finds_the_unit(
    http: TestClient, pki: Path, chains: dict[str, HandWrittenChain]
) -> None:
    chain = chains[COIS[0]]
    product = chain.products[0]
    hospital = as_site(http, pki, PATIENT_SITE)

    bundle = bundle_of(hospital.get(PRODUCTS, identifier=f"{UNIT}|{product}"))

    assert ids_of(bundle) == [f"{product}-{COIS[0]}"]
    assert bundle.total == 1
    (entry,) = bundle.entry
    assert entry.fullUrl == f"http://testserver/fhir/{fhir.PRODUCT}/{product}-{COIS[0]}"
    assert entry.search.mode == "match"


def test_search_by_bare_value_checked_din_and_or_values(
    http: TestClient, pki: Path, chains: dict[str, HandWrittenChain]
) -> None:
    first, second = (chains[coi] for coi in COIS)
    hospital = as_site(http, pki, PATIENT_SITE)

    assert ids_of(bundle_of(hospital.get(PRODUCTS, identifier=first.bag))) == [
        f"{first.bag}-{COIS[0]}"
    ]
    both = bundle_of(hospital.get(PRODUCTS, identifier=f"{first.bag},{UNIT}|{second.bag}"))
    assert sorted(ids_of(both)) == sorted([f"{first.bag}-{COIS[0]}", f"{second.bag}-{COIS[1]}"])
    epcis_form = f"{first.bag[:13]}:{first.bag[13:]}"
    assert ids_of(bundle_of(hospital.get(PRODUCTS, identifier=epcis_form))) == [
        f"{first.bag}-{COIS[0]}"
    ]


def test_search_by_an_unknown_identifier_is_an_empty_bundle(
    http: TestClient, pki: Path, chains: dict[str, HandWrittenChain]
) -> None:
    hospital = as_site(http, pki, PATIENT_SITE)
    bag = chains[COIS[0]].bag

    for identifier in (f"{UNIT}|Z99992500000100", f"urn:other|{bag}", f"|{bag}", "nonsense"):
        bundle = bundle_of(hospital.get(PRODUCTS, identifier=identifier))
        assert bundle.total == 0, identifier
        assert bundle.entry is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"identifier": f"{UNIT}|not-a-din"}, "identifier"),
        ({"identifier": f"{UNIT}|"}, "identifier"),
        ({}, "identifier"),
        ({"patient": "CHA123425000017"}, "patient"),
    ],
)
def test_a_malformed_search_is_400_naming_the_parameter(
    http: TestClient, pki: Path, params: dict[str, str], parameter: str
) -> None:
    hospital = as_site(http, pki, PATIENT_SITE)
    for path in (PRODUCTS, DISPENSES):
        outcome = outcome_of(hospital.get(path, **params), 400)

        (issue,) = outcome.issue
        assert issue.code == "invalid"
        assert issue.expression == [parameter]
        assert parameter in issue.diagnostics


def test_read_by_id_and_search_by_id(
    http: TestClient, pki: Path, chains: dict[str, HandWrittenChain]
) -> None:
    chain = chains[COIS[1]]
    product_id = f"{chain.products[1]}-{COIS[1]}"
    hospital = as_site(http, pki, PATIENT_SITE)

    read = hospital.get(f"{PRODUCTS}/{product_id}")

    assert read.status_code == 200
    assert read.headers["content-type"].startswith(fhir.FHIR_JSON)
    assert parsed(BiologicallyDerivedProduct, read.json()).id == product_id
    assert ids_of(bundle_of(hospital.get(PRODUCTS, _id=product_id))) == [product_id]
    for missing in (f"Z99992500000100-{COIS[1]}", "not-an-id", f"{chain.products[1]}-CHZ"):
        (issue,) = outcome_of(hospital.get(f"{PRODUCTS}/{missing}"), 404).issue
        assert issue.code == "not-found"


def test_the_dispense_of_the_infused_unit(
    http: TestClient, pki: Path, chains: dict[str, HandWrittenChain]
) -> None:
    chain = chains[COIS[0]]
    infused, spare = chain.products
    hospital = as_site(http, pki, PATIENT_SITE)

    found = bundle_of(hospital.get(DISPENSES, identifier=f"{UNIT}|{infused}"))
    read = hospital.get(f"{DISPENSES}/{infused}-{COIS[0]}")

    assert ids_of(found) == [f"{infused}-{COIS[0]}"]
    dispense = parsed(BiologicallyDerivedProductDispense, read.json())
    assert dispense.status == "issued"
    assert dispense.patient.identifier.value == COIS[0]
    assert bundle_of(hospital.get(DISPENSES, identifier=spare)).total == 0
    outcome_of(hospital.get(f"{DISPENSES}/{spare}-{COIS[0]}"), 404)


def test_each_site_finds_only_the_units_of_chains_it_reads(
    http: TestClient, pki: Path, chains: dict[str, HandWrittenChain]
) -> None:
    bags = ",".join(chain.bag for chain in chains.values())
    product_id = f"{chains[COIS[0]].products[0]}-{COIS[0]}"

    for site, seen in ((PATIENT_SITE, 2), (GMP_SITE, 2), (AUDITOR, 2), (OTHER_HOSPITAL, 0)):
        caller = as_site(http, pki, site)
        assert bundle_of(caller.get(PRODUCTS, identifier=bags)).total == seen, site
        assert bundle_of(caller.get(PRODUCTS, _id=product_id)).total == min(seen, 1), site
        assert bundle_of(caller.get(DISPENSES, _id=product_id)).total == min(seen, 1), site
        for path in (f"{PRODUCTS}/{product_id}", f"{DISPENSES}/{product_id}"):
            reply = caller.get(path)
            assert reply.status_code == (200 if seen else 404), (site, path)
    unrelated = as_site(http, pki, OTHER_HOSPITAL).get(f"{PRODUCTS}/{product_id}")
    assert COIS[0] not in outcome_of(unrelated, 404).issue[0].diagnostics.replace(product_id, "")


def test_no_token_is_401_and_a_role_without_reads_403(http: TestClient, pki: Path) -> None:
    for path in (PRODUCTS, DISPENSES, f"{PRODUCTS}/x-y"):
        reply = as_site(http, pki, None).get(path, identifier="x")
        assert outcome_of(reply, 401).issue[0].code == "login"
        assert reply.headers["www-authenticate"] == "Bearer"
    bad = http.get(PRODUCTS, params={"identifier": "x"}, headers={"Authorization": "Bearer x"})
    outcome_of(bad, 401)
    admin = as_site(http, pki, "ADMIN-1").get(PRODUCTS, identifier="x")
    assert outcome_of(admin, 403).issue[0].code == "forbidden"


def test_the_metadata_is_open_and_an_r5_capability_statement(http: TestClient) -> None:
    reply = http.get("/fhir/metadata")

    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(fhir.FHIR_JSON)
    statement = parsed(CapabilityStatement, reply.json())
    assert statement.fhirVersion == "5.0.0"
    assert statement.implementation.url == "http://testserver/fhir"


def test_another_resource_type_is_a_fhir_404(http: TestClient) -> None:
    (issue,) = outcome_of(http.get("/fhir/Patient"), 404).issue

    assert issue.code == "not-found"
    assert fhir.PRODUCT in issue.diagnostics


def test_every_fhir_route_declares_its_access_and_metadata_is_not_in_the_schema(
    http: TestClient,
) -> None:
    paths = http.app.openapi()["paths"]  # type: ignore[attr-defined]
    fhir_paths = {path: ops for path, ops in paths.items() if path.startswith("/fhir")}

    assert sorted(fhir_paths) == sorted(
        [PRODUCTS, f"{PRODUCTS}/{{resource_id}}", DISPENSES, f"{DISPENSES}/{{resource_id}}"]
    )
    declared = {path: Access.from_openapi(ops["get"]) for path, ops in fhir_paths.items()}
    search, read = declared[PRODUCTS], declared[f"{PRODUCTS}/{{resource_id}}"]
    assert search is not None and search.relation == Relation.FILTERED
    assert read is not None and read.relation == Relation.PATIENT
    assert not any(access is not None and access.writes for access in declared.values())
