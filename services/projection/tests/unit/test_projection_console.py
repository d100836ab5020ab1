"""The web console (issue 16 item 2) over an in-memory projection with FastAPI's TestClient:
login with a site token and its cookie, pages without a session, foreign-origin posts,
per-site visibility exactly as the reads, search by COI or DIN, filters and paging, the chain
page's sections, acknowledgement rules, and the live alert stream (the hub ticked by hand)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.http_api import SiteTokenVerifier, create_app
from v2v_platform.ids import Din
from v2v_platform.scope import Scope
from v2v_platform.testing.producing import eventually
from v2v_projection.alert_watch import AlertHub
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.console import app as console_app
from v2v_projection.console.acks import InMemoryAckStore
from v2v_projection.console.app import console_router
from v2v_projection.queries import ChainQueries
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.audit import (
    CARRIER_SITE,
    OTHER_HOSPITAL,
    PATIENT_SITE,
    HandWrittenChain,
    enrolled_to_infused,
    refused_bedside_scan,
)
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI_A = "CHA123425000017"  # HOSP-A's patient, enrolled to infused, with an excursion
COI_C = "CHA123425000018"  # HOSP-C's patient, enrolled and labelled
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
KEYS = EnvelopeWriter().keys
AUDITOR = "AUDIT-1"
SITES = (
    f"{PATIENT_SITE}:collection,infusion",
    f"{OTHER_HOSPITAL}:collection,infusion",
    "GMP-B:manufacturing",
    f"{AUDITOR}:auditor",
)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def with_excursion(chain: HandWrittenChain) -> HandWrittenChain:
    """The logger of the bag's shipment (hours 2-7) read 5 °C, then 12 °C for half an hour."""
    shipment_id = f"shipment-{chain.coi}"
    readings = logistics.TemperatureReadingsRecorded(
        coi=chain.coi,
        shipment_id=shipment_id,
        device_id="LOGGER-7",
        readings=[
            logistics.TemperatureReading(measured_at=chain.stamp(h), temperature_c=c)
            for h, c in ((2.5, 5.0), (3.0, 5.5), (3.5, 12.0), (4.0, 12.5), (4.5, 6.0))
        ],
    )
    chain.add("logistics", "Shipment", readings, 5, CARRIER_SITE)
    excursion = logistics.TemperatureExcursionRecorded(
        coi=chain.coi,
        shipment_id=shipment_id,
        device_id="LOGGER-7",
        started_at=chain.stamp(3.5),
        ended_at=chain.stamp(4.0),
        duration_seconds=1800,
        min_c=12.0,
        max_c=12.5,
        condition=common_pb2.CONDITION_FRESH_COLD,
    )
    chain.add("logistics", "Shipment", excursion, 5.1, CARRIER_SITE)
    return chain


def chain_a() -> HandWrittenChain:
    chain = with_excursion(enrolled_to_infused(EnvelopeWriter(), COI_A, START))
    refused_bedside_scan(chain, PATIENT_SITE, 124)
    return chain


def chain_c() -> HandWrittenChain:
    chain = HandWrittenChain(EnvelopeWriter(), COI_C, START + timedelta(days=30))
    enrolled = intake.PatientEnrolled(
        coi=COI_C,
        patient_pseudonym="PSN-2",
        enrolling_site_id=OTHER_HOSPITAL,
        treating_site_id=OTHER_HOSPITAL,
    )
    chain.add("intake", "Therapy", enrolled, 0, OTHER_HOSPITAL)
    labelled = intake.UnitLabelled(
        coi=COI_C, collection_id="c-1", din=chain.bag, unit_kind="apheresis-bag"
    )
    chain.add("intake", "Therapy", labelled, 1, OTHER_HOSPITAL)
    return chain


class StandInIntegrity:
    """The integrity source's interface (H3 builds the real one): access as the reads,
    one clean stream with a checkpoint."""

    def __init__(self, queries: ChainQueries) -> None:
        self.queries = queries

    def of(self, scope: Scope, coi: str) -> dict[str, Any]:
        view = self.queries.chain(scope, coi)
        checkpoint = {
            "site_id": PATIENT_SITE,
            "sequence": 7,
            "recorded_at": "2025-03-06T10:00:00+00:00",
            "version": 3,
            "covers_head": True,
            "proof_verified": True,
            "tree_size": 4,
            "leaf_index": 1,
            "root": "ab" * 32,
        }
        return {
            "coi": view["coi"],
            "verified_at": datetime.now(UTC).isoformat(),
            "clean": True,
            "events": 23,
            "untrusted_records": 0,
            "breaks": [],
            "streams": [
                {
                    "aggregate_id": f"Therapy:{coi}",
                    "aggregate_type": "Therapy",
                    "topic": "v2v.intake.events.v1",
                    "site_id": PATIENT_SITE,
                    "version": 3,
                    "hash": "cd" * 32,
                    "breaks": [],
                    "checkpoint": checkpoint,
                }
            ],
        }


@dataclass
class Console:
    http: TestClient
    pki: Path
    projection: ChainProjection
    hub: AlertHub
    acks: InMemoryAckStore
    chain_a: HandWrittenChain

    def token(self, site: str) -> str:
        return issue_site_token(self.pki, site)

    def login(self, site: str) -> None:
        reply = self.http.post(
            "/console/login", data={"token": self.token(site)}, follow_redirects=False
        )
        assert reply.status_code == 303, reply.text

    def page(self, path: str) -> Any:
        return self.http.get(path, follow_redirects=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


def console_app_of(projection: ChainProjection, pki: Path) -> tuple[FastAPI, AlertHub, Any]:
    queries = ChainQueries(projection)
    hub = AlertHub(projection)
    acks = InMemoryAckStore()
    app = create_app("v2v projection core", "1")
    verifier = SiteTokenVerifier(pki / "ca.crt")
    app.include_router(console_router(queries, hub, verifier, StandInIntegrity(queries), acks))
    return app, hub, acks


@pytest.fixture
def projection(tmp_path: Path) -> Iterator[tuple[ChainProjection, HandWrittenChain]]:
    verifier = InlineVerifier(EnvelopeGate(KEYS))
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=verifier)
    first = chain_a()
    records = [*first.records, *chain_c().records]
    rows = [(topic, 0, offset, value) for offset, (topic, value) in enumerate(records)]
    assert projection.ingest(rows) == len(rows)
    yield projection, first
    projection.close()


@pytest.fixture
def console(projection: tuple[ChainProjection, HandWrittenChain], pki: Path) -> Iterator[Console]:
    chains, first = projection
    app, hub, acks = console_app_of(chains, pki)
    with TestClient(app) as http:
        yield Console(http, pki, chains, hub, acks, first)
    hub.close()


def listed(html: str) -> set[str]:
    return {coi for coi in (COI_A, COI_C) if f'data-coi="{coi}"' in html}


# ------------------------------------------------------------------ login and session


def test_login_sets_a_strict_http_only_cookie_for_the_console_path(console: Console) -> None:
    form = console.page("/console/login")
    assert form.status_code == 200 and 'id="login-form"' in form.text
    assert "script-src 'self'" in form.headers["content-security-policy"]  # nothing external
    assert form.headers["referrer-policy"] == "same-origin"  # no-referrer: Origin null posts

    reply = console.http.post(
        "/console/login", data={"token": console.token(PATIENT_SITE)}, follow_redirects=False
    )

    assert reply.status_code == 303 and reply.headers["location"] == "/console/"
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("v2v_console=")
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert "httponly" in flags and "secure" not in flags  # plain http here
    assert flags["samesite"].strip().lower() == "samesite=strict"
    assert flags["path"].strip() == "Path=/console"
    max_age = int(flags["max-age"].split("=")[1])
    assert 86_000 < max_age <= 86_400  # until the token (one day) expires
    assert console.page("/console/").status_code == 200


def test_the_cookie_is_secure_over_https(
    projection: tuple[ChainProjection, HandWrittenChain], pki: Path
) -> None:
    app, hub, _ = console_app_of(projection[0], pki)
    with TestClient(app, base_url="https://console.example") as http:
        token = issue_site_token(pki, PATIENT_SITE)
        reply = http.post("/console/login", data={"token": token}, follow_redirects=False)
    hub.close()

    assert reply.status_code == 303
    assert "secure" in reply.headers["set-cookie"].lower().split("; ")


def test_a_wrong_token_shows_the_login_again_with_401(console: Console) -> None:
    other_ca = console.token(PATIENT_SITE)[:-8] + "AAAAAAAA"  # a signature that fails

    for token in (other_ca, "not a token"):
        reply = console.http.post("/console/login", data={"token": token})
        assert reply.status_code == 401
        assert 'id="login-form"' in reply.text and "does not open the console" in reply.text
        assert "set-cookie" not in reply.headers
    assert console.http.post("/console/login", data={}).status_code == 401


def test_without_a_session_pages_redirect_to_the_login_and_the_rest_is_401(
    console: Console,
) -> None:
    for path in ("/console/", f"/console/chains/{COI_A}", "/console/programme", "/console/alerts"):
        reply = console.page(path)
        assert reply.status_code == 303, path
        assert reply.headers["location"] == "/console/login"
    assert console.http.get("/console/alerts/stream").status_code == 401
    ack = {"coi": COI_A, "kind": "identity-mismatch", "at": "x", "event_id": "y"}
    assert console.http.post("/console/alerts/ack", data=ack).status_code == 401

    console.http.cookies.set("v2v_console", "forged", path="/console")
    assert console.page("/console/").headers["location"] == "/console/login"


def test_logout_clears_the_cookie(console: Console) -> None:
    console.login(PATIENT_SITE)

    reply = console.http.post("/console/logout", follow_redirects=False)

    assert reply.status_code == 303 and reply.headers["location"] == "/console/login"
    assert (
        'v2v_console=""' in reply.headers["set-cookie"]
        or "Max-Age=0" in reply.headers["set-cookie"]
    )
    assert console.page("/console/").status_code == 303


def test_a_post_from_another_origin_is_refused(console: Console) -> None:
    token = console.token(PATIENT_SITE)
    foreign = {"Origin": "https://evil.example"}

    login = console.http.post("/console/login", data={"token": token}, headers=foreign)
    assert login.status_code == 403 and "set-cookie" not in login.headers
    console.login(PATIENT_SITE)
    alert = first_alert(console, "temperature-excursion")
    ack = {"coi": COI_A, **{k: alert[k] for k in ("kind", "at", "event_id")}}
    assert console.http.post("/console/alerts/ack", data=ack, headers=foreign).status_code == 403
    assert console.http.post("/console/logout", headers=foreign).status_code == 403
    assert console.acks.of_chains([COI_A]) == {}

    same = {"Origin": "http://testserver"}
    reply = console.http.post("/console/alerts/ack", data=ack, headers=same, follow_redirects=False)
    assert reply.status_code == 303


# ------------------------------------------------------------------ visibility


def test_each_site_lists_and_opens_only_the_chains_it_reads(console: Console) -> None:
    expected = {PATIENT_SITE: {COI_A}, OTHER_HOSPITAL: {COI_C}, AUDITOR: {COI_A, COI_C}}
    for site, readable in expected.items():
        console.login(site)
        page = console.page("/console/")
        assert page.status_code == 200
        assert listed(page.text) == readable, site
        for coi in (COI_A, COI_C):
            chain = console.page(f"/console/chains/{coi}")
            assert chain.status_code == (200 if coi in readable else 404), (site, coi)
            if coi not in readable:
                assert '<section id="lineage">' not in chain.text
        alerts = console.page("/console/alerts").text
        assert {coi for coi in (COI_A, COI_C) if f"/console/chains/{coi}" in alerts} <= readable
    console.login(OTHER_HOSPITAL)
    assert console.page("/console/chains/CHA999925000001").status_code == 404


def test_the_programme_shows_the_kpis_of_the_chains_read_and_four_charts(
    console: Console,
) -> None:
    console.login(PATIENT_SITE)

    page = console.page("/console/programme")

    assert page.status_code == 200
    for chart in ("vein-to-vein", "stage-times", "manufacturing-success", "rates-over-time"):
        assert f'id="chart-{chart}"' in page.text
        figure = page.text.split(f'id="chart-{chart}"')[1].split("</figure>")[0]
        assert "<svg" in figure, chart
    assert f'data-site="{PATIENT_SITE}"' in page.text
    assert f'data-site="{OTHER_HOSPITAL}"' not in page.text


# ------------------------------------------------------------------ search, filters, paging


def test_search_by_din_finds_the_chain_whose_units_include_it(console: Console) -> None:
    console.login(AUDITOR)
    bag = Din.parse(console.chain_a.bag)
    product = console.chain_a.products[0]

    for text in (
        str(bag),
        f"  {bag}  ",
        bag.with_check_character(),
        bag.eye_readable(),
        product,
    ):
        page = console.page(f"/console/?q={quote(text)}")
        assert listed(page.text) == {COI_A}, text
    assert listed(console.page(f"/console/?q={COI_C}").text) == {COI_C}
    assert listed(console.page("/console/?q=25000018").text) == {COI_C}  # part of a COI
    unknown = console.page(f"/console/?q={quote(str(Din.parse('A12342599999900')))}")
    assert listed(unknown.text) == set() and "No chain matches" in unknown.text


def test_filters_by_stage_site_alerts_and_dates(console: Console) -> None:
    console.login(AUDITOR)

    def found(query: str) -> set[str]:
        page = console.page(f"/console/?{query}")
        assert page.status_code == 200, page.text
        return listed(page.text)

    assert found("") == {COI_A, COI_C}
    assert found("stage=infused") == {COI_A}
    assert found(f"site={OTHER_HOSPITAL}") == {COI_C}
    assert found("alerts=yes") == {COI_A}
    assert found("alerts=no") == {COI_C}
    assert found("from=2025-03-20") == {COI_C}  # chain C was updated on 2025-03-31
    assert found("to=2025-03-20") == {COI_A}
    assert found("from=2025-03-31&to=2025-03-31") == {COI_C}
    assert found("stage=infused&site=" + OTHER_HOSPITAL) == set()
    assert console.page("/console/?from=yesterday").status_code == 422
    counts = console.page("/console/?alerts=yes").text
    assert "of <strong>1</strong> matching" in counts and "(2 chains visible" in counts


def test_chains_are_paged_by_coi(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_app, "PAGE_SIZE", 1)
    console.login(AUDITOR)

    first = console.page("/console/?stage=")
    assert listed(first.text) == {COI_A} and 'id="next-page"' in first.text
    next_url = first.text.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = console.page(next_url.replace("&amp;", "&"))

    assert listed(second.text) == {COI_C} and 'id="next-page"' not in second.text
    assert "<strong>2\u20132</strong> of <strong>2</strong>" in second.text  # 2-2 of 2


# ------------------------------------------------------------------ the chain page


def test_the_chain_page_shows_every_section(console: Console) -> None:
    console.login(PATIENT_SITE)

    page = console.page(f"/console/chains/{COI_A}")

    assert page.status_code == 200
    html = page.text
    for section in ("alerts", "lineage", "custody", "shipments", "releases", "integrity"):
        assert f'<section id="{section}">' in html, section
    assert console.chain_a.bag in html and console.chain_a.products[0] in html
    custody = html.split('id="custody-table"')[1].split("</table>")[0]
    assert f"site:{PATIENT_SITE}" in custody or PATIENT_SITE in custody
    assert "Dr. Quinn Person" in html and "approval" in html  # e-signature and its meaning
    shipment = html.split(f'data-shipment-id="shipment-{COI_A}"')[1].split("</article>")[0]
    svg = "<svg" + shipment.split("<svg", 1)[1].split("</svg>", 1)[0] + "</svg>"
    gids = {e.get("id") for e in ElementTree.fromstring(svg).iter()}
    assert "excursion-0" in gids and "readings" in gids
    assert "12.5" in shipment  # the excursion listed under the chart
    assert "Clean" in html and "#7" in html and "verified" in html  # the integrity stand-in
    assert html.count('action="/console/alerts/ack"') == 2  # excursion + refused scan


def test_an_auditor_reads_the_chain_without_acknowledge_buttons(console: Console) -> None:
    console.login(AUDITOR)

    page = console.page(f"/console/chains/{COI_A}")

    assert page.status_code == 200
    assert 'action="/console/alerts/ack"' not in page.text


# ------------------------------------------------------------------ acknowledgement


def first_alert(console: Console, kind: str) -> dict[str, Any]:
    view = console.projection.chain(COI_A)
    assert view is not None
    return next(alert for alert in view["alerts"] if alert["kind"] == kind)


def ack_form(alert: dict[str, Any], note: str = "") -> dict[str, str]:
    fields = {k: alert[k] for k in ("kind", "at", "event_id")}
    return {"coi": COI_A, **fields, "note": note, "next": f"/console/chains/{COI_A}"}


def test_acknowledgement_rules(console: Console) -> None:
    alert = first_alert(console, "temperature-excursion")
    form = ack_form(alert, "logger reviewed with QA")

    console.login(AUDITOR)
    refused = console.http.post("/console/alerts/ack", data=form)
    assert refused.status_code == 403 and "may not acknowledge" in refused.text
    console.login(OTHER_HOSPITAL)
    assert console.http.post("/console/alerts/ack", data=form).status_code == 404
    console.login(PATIENT_SITE)
    missing = {**form, "event_id": "no-such-event"}
    assert console.http.post("/console/alerts/ack", data=missing).status_code == 404
    assert console.acks.of_chains([COI_A]) == {}

    done = console.http.post("/console/alerts/ack", data=form, follow_redirects=False)

    assert done.status_code == 303 and done.headers["location"] == f"/console/chains/{COI_A}"
    (ack,) = console.acks.of_chains([COI_A]).values()
    assert (ack.site_id, ack.kind, ack.note) == (PATIENT_SITE, alert["kind"], form["note"])
    again = console.http.post("/console/alerts/ack", data={**form, "note": "second"})
    assert again.status_code == 200  # idempotent: redirected to the chain, the first stands
    assert list(console.acks.of_chains([COI_A]).values()) == [ack]
    page = console.page(f"/console/chains/{COI_A}").text
    assert f"acknowledged by <strong>{PATIENT_SITE}</strong>" in page
    assert "logger reviewed with QA" in page
    assert page.count('action="/console/alerts/ack"') == 1  # the other alert is still open
    console.login(AUDITOR)
    assert (
        f"acknowledged by <strong>{PATIENT_SITE}</strong>" in console.page("/console/alerts").text
    )


def test_the_alerts_page_lists_newest_first(console: Console) -> None:
    console.login(PATIENT_SITE)

    html = console.page("/console/alerts").text

    scan, excursion = html.find("identity-mismatch"), html.find("temperature-excursion")
    assert 0 < scan < excursion  # the refused scan (hour 124) came after the excursion


# ------------------------------------------------------------------ live alerts


def read_events(http: TestClient, into: queue.Queue[str], stop: threading.Event) -> None:
    with http.stream("GET", "/console/alerts/stream") as stream:
        into.put(f"status {stream.status_code} {stream.headers['content-type']}")
        for line in stream.iter_lines():
            into.put(line)
            if stop.is_set():
                return


def next_matching(lines: queue.Queue[str], prefix: str, timeout_s: float = 10.0) -> str:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while datetime.now(UTC) < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r}")


def test_the_stream_delivers_a_new_alert_to_a_site_that_reads_the_chain(
    console: Console,
) -> None:
    console.login(PATIENT_SITE)
    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=read_events, args=(console.http, lines, stop), daemon=True)
    reader.start()
    assert next_matching(lines, "status").startswith("status 200 text/event-stream")
    next_matching(lines, ": watching")
    topic, record = refused_bedside_scan(console.chain_a, PATIENT_SITE, 126)
    console.projection.ingest([(topic, 0, 10_000, record)])

    assert console.hub.tick() == 1

    assert next_matching(lines, "event:") == "event: alert"
    data = next_matching(lines, "data:")
    assert f'"coi": "{COI_A}"' in data and '"kind": "identity-mismatch"' in data
    assert '"may_acknowledge": true' in data
    stop.set()
    console.hub.close()  # ends the stream (as at shutdown)
    reader.join(timeout=10)
    assert not reader.is_alive()
    eventually(lambda: not console.hub._watches, "the watch forgotten", timeout_s=5)


def test_the_stream_sends_heartbeats_and_nothing_of_chains_the_site_does_not_read(
    projection: tuple[ChainProjection, HandWrittenChain], pki: Path
) -> None:
    chains, first = projection
    queries = ChainQueries(chains)
    hub = AlertHub(chains)
    router = console_router(
        queries,
        hub,
        SiteTokenVerifier(pki / "ca.crt"),
        StandInIntegrity(queries),
        InMemoryAckStore(),
        heartbeat_s=0.2,
    )
    app = create_app("console", "1")
    app.include_router(router)
    with TestClient(app) as http:
        token = issue_site_token(pki, OTHER_HOSPITAL)
        assert http.post("/console/login", data={"token": token}).status_code == 200
        lines: queue.Queue[str] = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(target=read_events, args=(http, lines, stop), daemon=True)
        reader.start()
        next_matching(lines, ": watching")
        topic, record = refused_bedside_scan(first, PATIENT_SITE, 126)
        chains.ingest([(topic, 0, 10_000, record)])
        assert hub.tick() == 0  # HOSP-C reads nothing of chain A

        next_matching(lines, ": heartbeat")
        next_matching(lines, ": heartbeat")
        stop.set()
        hub.close()
        reader.join(timeout=10)
    assert not any(line.startswith("event:") for line in list(lines.queue))


def test_the_console_is_not_part_of_the_api_document(console: Console) -> None:
    paths = console.http.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path.startswith("/console")]
