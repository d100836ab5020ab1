"""`GET /v1/chains/{coi}/epcis` over every chain of a generated history: a schema-valid EPCIS
2.0 document (application/ld+json) of the chain's envelopes, to the sites related to the chain
and auditors; 404 (like GetChain) to a site that may not read the chain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.http_api import SiteTokenVerifier, create_app
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.queries import ChainQueries
from v2v_projection.standards.epcis import epcis_document
from v2v_projection.standards.epcis_http import epcis_router
from v2v_projection.standards.epcis_schema import schema_errors
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

SITES = ("HOSP-A:collection,infusion", "HOSP-C:collection,infusion", "AUDIT-1:auditor")


@pytest.fixture(scope="module")
def history() -> GeneratedHistory:
    return generate_history(17, 8)


@pytest.fixture(scope="module")
def projection(
    history: GeneratedHistory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainProjection]:
    store = SqliteProjectionStore(tmp_path_factory.mktemp("store") / "p.sqlite")
    projection = ChainProjection(store, verifier=InlineVerifier(EnvelopeGate(history.keys)))
    records = history.all_records()
    assert projection.ingest([(t, 0, n, r) for n, (t, _, r) in enumerate(records)]) == len(records)
    yield projection
    projection.close()


@pytest.fixture(scope="module")
def http(
    projection: ChainProjection, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    pki = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(pki, [parse_site_spec(spec) for spec in SITES])
    app: FastAPI = create_app("projection", "1", "EPCIS test")
    verifier = SiteTokenVerifier(pki / "ca.crt")
    app.include_router(epcis_router(ChainQueries(projection), projection, verifier))
    with TestClient(app) as client:
        yield client, pki


def get(http: tuple[TestClient, Path], site: str, coi: str) -> Any:
    client, pki = http
    token = issue_site_token(pki, site)
    return client.get(f"/v1/chains/{coi}/epcis", headers={"Authorization": f"Bearer {token}"})


def test_every_chain_is_a_schema_valid_epcis_document_of_its_envelopes(
    history: GeneratedHistory, projection: ChainProjection, http: tuple[TestClient, Path]
) -> None:
    kinds: Counter[str] = Counter()
    for coi in history.cois:
        response = get(http, "AUDIT-1", coi)

        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/ld+json"
        document = response.json()
        assert schema_errors(document) == [], coi
        created = datetime.fromisoformat(document["creationDate"])
        assert document == epcis_document(projection.envelopes_of(coi), created)
        assert abs((datetime.now(UTC) - created).total_seconds()) < 60
        kinds.update(e.get("bizStep", e["type"]) for e in document["epcisBody"]["eventList"])
    for step in (
        "commissioning",
        "staging_outbound",
        "departing",
        "arriving",
        "receiving",
        "sensor_reporting",
        "inspecting",
        "storing",
        "dispensing",
    ):
        assert kinds[step] > 0, step


def test_a_site_reads_the_document_of_its_chains_only(
    history: GeneratedHistory, projection: ChainProjection, http: tuple[TestClient, Path]
) -> None:
    for coi in history.cois:
        view = projection.chain(coi)
        assert view is not None
        for hospital in ("HOSP-A", "HOSP-C"):
            response = get(http, hospital, coi)
            if hospital in view["sites"]:
                assert response.status_code == 200
            else:
                assert response.status_code == 404
                assert response.json()["status"] == 404


def test_an_unknown_chain_is_404_and_a_caller_without_token_401(
    http: tuple[TestClient, Path],
) -> None:
    assert get(http, "AUDIT-1", "CHZ999925999999").status_code == 404
    assert http[0].get("/v1/chains/CHZ999925999999/epcis").status_code == 401
