"""Who sees a chain (issue 13): the sites its RELATIONSHIP facts name, never a site that only
authored something about its COI (a refused scan, a booking, a receipt, a shipment of its own)
- through every read of both APIs and the live alerts, whatever the order the facts arrive in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v_platform.access_policy import Access, Relation
from v2v_platform.auth.identity import Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.errors import NotFound
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.scope import Scope
from v2v_projection.adapters import grpc_api
from v2v_projection.adapters.http_api import create_http_app
from v2v_projection.alert_watch import AlertHub, Watch
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.fold import ChainFold
from v2v_projection.queries import ChainFilter, ChainQueries
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.audit import (
    OTHER_GMP,
    OTHER_HOSPITAL,
    OTHER_QC,
    PATIENT_SITE,
    RELATED_SITES,
    HandWrittenChain,
    enrolled_to_infused,
    refused_bedside_scan,
    unrelated_attempts,
)
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
KEYS = EnvelopeWriter().keys  # every chain below is written with seed 0's keys
UNRELATED = (OTHER_HOSPITAL, OTHER_GMP, OTHER_QC)
HOSPITAL_C = Scope(OTHER_HOSPITAL, frozenset({Role.COLLECTION, Role.INFUSION}))
HOSPITAL_A = Scope(PATIENT_SITE, frozenset({Role.COLLECTION, Role.INFUSION}))
AUDITOR = Scope("AUDIT-1", frozenset({Role.AUDITOR}))


def chain_with(*attempts: str) -> HandWrittenChain:
    chain = enrolled_to_infused(EnvelopeWriter(), COI, START)
    tried = unrelated_attempts(chain)
    kept = {tried[name] for name in attempts}
    chain.records = [record for record in chain.records if record not in tried.values()]
    chain.records += [record for record in tried.values() if record in kept]
    return chain


def view_of(records: list[bytes]) -> dict[str, Any]:
    fold = ChainFold()
    for record in records:
        fold.apply_bytes(record)
    view = fold.chain(COI)
    assert view is not None
    return view


ATTEMPTS = sorted(unrelated_attempts(enrolled_to_infused(EnvelopeWriter(), COI, START)))


def test_the_sites_of_a_chain_are_those_its_relationship_facts_name() -> None:
    view = view_of(chain_with().values())

    assert view["sites"] == sorted(RELATED_SITES)


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_a_fact_by_or_about_an_unrelated_site_never_makes_it_a_reader(attempt: str) -> None:
    view = view_of(chain_with(attempt).values())

    assert view["sites"] == sorted(RELATED_SITES)


def test_a_refused_bedside_scan_at_another_hospital_shows_it_nothing_of_the_chain() -> None:
    """The issue's case: HOSP-C's refused scan against HOSP-A's (guessable) COI was signed by
    HOSP-C, which made HOSP-C a 'participant' that read HOSP-A's whole chain."""
    view = view_of(chain_with("refused bedside scan").values())

    assert OTHER_HOSPITAL not in view["sites"]
    assert not Scope(OTHER_HOSPITAL, frozenset({Role.INFUSION})).sees(view["sites"])
    assert [a["kind"] for a in view["alerts"] if a["kind"] == "identity-mismatch"] == [
        "identity-mismatch"
    ]  # the refusal is still on HOSP-A's record


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(range(len(chain_with(*ATTEMPTS).records))))
def test_the_visible_sites_do_not_depend_on_the_arrival_order(order: list[int]) -> None:
    records = chain_with(*ATTEMPTS).values()
    reference = view_of(records)

    shuffled = view_of([records[index] for index in order])

    assert shuffled["sites"] == sorted(RELATED_SITES)
    assert json.dumps(shuffled, sort_keys=True) == json.dumps(reference, sort_keys=True)


@pytest.fixture
def attempted() -> HandWrittenChain:
    return chain_with(*ATTEMPTS)


@pytest.fixture
def projection(tmp_path: Path, attempted: HandWrittenChain) -> Iterator[ChainProjection]:
    verifier = InlineVerifier(EnvelopeGate(KEYS))
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=verifier)
    records = [(t, 0, offset, value) for offset, (t, value) in enumerate(attempted.records)]
    assert projection.ingest(records) == len(records)
    yield projection
    projection.close()


def test_no_read_shows_the_chain_to_a_site_that_only_authored_facts_about_it(
    projection: ChainProjection,
) -> None:
    queries = ChainQueries(projection)
    for site in UNRELATED:
        scope = Scope(site, frozenset(Role) - {Role.AUDITOR})  # every role but reads-all
        with pytest.raises(NotFound):
            queries.chain(scope, COI)
        with pytest.raises(NotFound):
            queries.custody(scope, COI)
        with pytest.raises(NotFound):
            queries.alerts(scope, coi=COI)
        assert queries.list_chains(scope, ChainFilter()).chains == []
        assert queries.alerts(scope) == []
        assert queries.kpis(scope)["consortium"]["chains"] == 0
        assert queries.kpis(scope)["sites"] == {}

    assert queries.chain(HOSPITAL_A, COI)["coi"] == COI
    assert queries.chain(AUDITOR, COI)["coi"] == COI
    assert queries.kpis(HOSPITAL_A)["consortium"]["chains"] == 1
    assert queries.kpis(AUDITOR) == projection.kpis()
    assert [s["coi"] for s in queries.list_chains(HOSPITAL_A, ChainFilter()).chains] == [COI]


def test_a_live_alert_reaches_the_related_sites_only(
    projection: ChainProjection, attempted: HandWrittenChain
) -> None:
    hub = AlertHub(projection)
    treating, stranger = Watch(HOSPITAL_A), Watch(HOSPITAL_C)
    hub.watch(treating, include_existing=False)
    hub.watch(stranger, include_existing=True)
    topic, record = refused_bedside_scan(attempted, OTHER_HOSPITAL, 200)  # a second one
    projection.ingest([(topic, 0, 10_000, record)])

    assert hub.tick() >= 1
    assert treating.inbox.get_nowait()["coi"] == COI
    assert stranger.inbox.empty()


SITES = (
    f"{PATIENT_SITE}:collection,infusion",
    f"{OTHER_HOSPITAL}:collection,infusion",
    f"{OTHER_GMP}:manufacturing",
    "AUDIT-1:auditor",
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


def test_every_http_read_answers_an_unrelated_site_as_if_the_chain_did_not_exist(
    projection: ChainProjection, pki: Path
) -> None:
    app = create_http_app(ChainQueries(projection), SiteTokenVerifier(pki / "ca.crt"))
    with TestClient(app) as http:

        def get(site: str, path: str) -> Any:
            token = issue_site_token(pki, site)
            return http.get(path, headers={"Authorization": f"Bearer {token}"})

        for site in (OTHER_HOSPITAL, OTHER_GMP):
            for path in (f"/v1/chains/{COI}", f"/v1/chains/{COI}/custody", f"/v1/alerts?coi={COI}"):
                assert get(site, path).status_code == 404, (site, path)
            assert get(site, "/v1/chains").json()["chains"] == []
            assert get(site, "/v1/alerts").json()["alerts"] == []
            assert get(site, "/v1/kpis").json()["consortium"]["chains"] == 0
        assert get(PATIENT_SITE, f"/v1/chains/{COI}").json()["sites"] == sorted(RELATED_SITES)
        assert get(PATIENT_SITE, "/v1/kpis").json()["consortium"]["chains"] == 1
        assert get("AUDIT-1", f"/v1/chains/{COI}/custody").status_code == 200


def test_every_method_and_route_declares_its_access(pki: Path) -> None:
    methods = pb.DESCRIPTOR.services_by_name["ChainQueryService"].methods_by_name
    assert set(grpc_api.ACCESS) == set(methods)
    assert {
        f"/{grpc_api.SERVICE_NAME}/{name}": access.roles for name, access in grpc_api.ACCESS.items()
    } == grpc_api.REQUIRED_ROLES
    assert grpc_api.ACCESS["GetChain"].relation == Relation.PATIENT
    assert grpc_api.ACCESS["ListChains"].relation == Relation.FILTERED
    assert not any(access.writes for access in grpc_api.ACCESS.values())
    projection = ChainProjection(SqliteProjectionStore(Path(":memory:")))
    app = create_http_app(ChainQueries(projection), SiteTokenVerifier(pki / "ca.crt"))
    operations = [op for path in app.openapi()["paths"].values() for op in path.values()]
    declared = [Access.from_openapi(operation) for operation in operations]
    assert operations and None not in declared
