"""The projection core without Kafka: ingest into a SQLite store (atomic with offsets,
idempotent across redeliveries and restarts), the reads and who may see what (HTTP), and
live alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from v2v.intake.events.v1 import events_pb2 as intake
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.scope import Scope
from v2v_projection.adapters.http_api import create_http_app
from v2v_projection.alert_watch import AlertHub, Watch
from v2v_projection.chain_projection import ChainProjection, Record
from v2v_projection.queries import ChainQueries
from v2v_projection.store import Offsets, Quarantined, Row, SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history
from v2v_testkit.synthetic.consortium import key_ring, site_signers
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

SITES = ("HOSP-A:collection,infusion", "GMP-B:manufacturing", "AUDIT-1:auditor")
VERIFIER = InlineVerifier(EnvelopeGate(key_ring(site_signers(11))))  # the keys of seed 11


@pytest.fixture(scope="module")
def generated() -> GeneratedHistory:
    return generate_history(11, 6)


def records_of(generated: GeneratedHistory) -> list[Record]:
    return [(topic, 0, offset, value) for topic, offset, value in generated.all_records()]


def chains_json(projection: ChainProjection) -> str:
    return json.dumps(projection.chains(), sort_keys=True)


def test_batches_are_stored_once_with_their_offsets_and_survive_a_restart(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    records = records_of(generated)
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=VERIFIER)
    half = len(records) // 2

    assert projection.ingest(records[:half]) == half
    assert projection.ingest(records[half - 50 :]) == len(records) - half  # a redelivered overlap

    assert projection.store.count() == generated.event_count
    last = {topic: len(values) for topic, values in generated.by_topic.items()}
    assert projection.offsets() == {(topic, 0): end for topic, end in last.items()}
    restarted = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=VERIFIER)
    assert restarted.load() == generated.event_count
    assert chains_json(restarted) == chains_json(projection)
    assert restarted.ingest(records) == 0  # everything again: nothing new
    assert restarted.store.count() == generated.event_count


class FailingOnce(SqliteProjectionStore):
    failed = False

    def save(self, rows: Sequence[Row], offsets: Offsets, quarantined: Quarantined = ()) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        super().save(rows, offsets, quarantined)


def test_a_failed_store_rebuilds_the_fold_so_the_retried_batch_is_not_lost(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    records = records_of(generated)
    projection = ChainProjection(FailingOnce(tmp_path / "p.sqlite"), verifier=VERIFIER)

    with pytest.raises(OSError, match="disk full"):
        projection.ingest(records)
    assert projection.fold.events_applied == 0 and projection.store.count() == 0

    assert projection.ingest(records) == generated.event_count


def test_rebuild_forgets_the_state_and_the_offsets(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=VERIFIER)
    projection.ingest(records_of(generated))

    projection.rebuild()

    assert (projection.store.count(), projection.offsets(), projection.chains()) == (0, {}, [])


def test_a_record_that_is_not_an_envelope_is_quarantined_and_counted(tmp_path: Path) -> None:
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=VERIFIER)

    assert projection.ingest([("v2v.intake.events.v1", 0, 0, b"\xff\xfe")]) == 0

    assert projection.undecodable == 1
    assert projection.offsets() == {("v2v.intake.events.v1", 0): 1}
    (row,) = projection.quarantined_records()
    assert (row.reasons, row.raw) == (("decode",), b"\xff\xfe")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def client(
    tmp_path: Path, pki: Path, generated: GeneratedHistory
) -> Iterator[tuple[TestClient, ChainProjection]]:
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=VERIFIER)
    projection.ingest(records_of(generated))
    app = create_http_app(ChainQueries(projection), SiteTokenVerifier(pki / "ca.crt"))
    with TestClient(app) as test_client:
        yield test_client, projection


def get(client: TestClient, pki: Path, site: str, path: str) -> Any:
    token = issue_site_token(pki, site)
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_a_site_lists_only_the_chains_it_takes_part_in(
    client: tuple[TestClient, ChainProjection], pki: Path, generated: GeneratedHistory
) -> None:
    http, projection = client
    views = {view["coi"]: view for view in projection.chains()}
    for site in ("HOSP-A", "GMP-B", "AUDIT-1"):
        listed = get(http, pki, site, "/v1/chains").json()["chains"]
        expected = sorted(c for c, v in views.items() if site == "AUDIT-1" or site in v["sites"])
        assert [chain["coi"] for chain in listed] == expected
    assert len(get(http, pki, "AUDIT-1", "/v1/chains").json()["chains"]) == len(generated.cois)


def test_a_chain_of_other_sites_is_not_found(
    client: tuple[TestClient, ChainProjection], pki: Path
) -> None:
    http, projection = client
    foreign = next(v["coi"] for v in projection.chains() if "HOSP-A" not in v["sites"])
    own = next(v["coi"] for v in projection.chains() if "HOSP-A" in v["sites"])

    refused = get(http, pki, "HOSP-A", f"/v1/chains/{foreign}")
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert get(http, pki, "HOSP-A", f"/v1/chains/{own}").json()["coi"] == own
    custody = get(http, pki, "HOSP-A", f"/v1/chains/{own}/custody").json()
    assert custody["units"][0]["custody"][0]["custodian"] == "site:HOSP-A"
    assert get(http, pki, "AUDIT-1", f"/v1/chains/{foreign}").status_code == 200


def test_filters_paging_kpis_and_alerts(
    client: tuple[TestClient, ChainProjection], pki: Path
) -> None:
    http, projection = client
    everything = get(http, pki, "AUDIT-1", "/v1/chains?stage=infused").json()["chains"]
    assert everything and all(chain["stage"] == "infused" for chain in everything)
    first = get(http, pki, "AUDIT-1", "/v1/chains?limit=2").json()
    second = get(http, pki, "AUDIT-1", f"/v1/chains?limit=2&after={first['next_after']}").json()
    assert [c["coi"] for c in first["chains"] + second["chains"]] == projection.fold.cois()[:4]
    later = (datetime.now(UTC) + timedelta(days=3650)).isoformat().replace("+00:00", "Z")
    assert get(http, pki, "AUDIT-1", f"/v1/chains?updated_since={later}").json()["chains"] == []
    naive = get(http, pki, "AUDIT-1", "/v1/chains?updated_since=2025-01-01T00:00:00")
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
    assert get(http, pki, "AUDIT-1", "/v1/kpis").json()["consortium"]["chains"] == 6
    gmp_chains = sum("GMP-B" in view["sites"] for view in projection.chains())
    assert get(http, pki, "GMP-B", "/v1/kpis").json()["consortium"]["chains"] == gmp_chains
    alerts = get(http, pki, "AUDIT-1", "/v1/alerts").json()["alerts"]
    assert len(alerts) == sum(len(v["alerts"]) for v in projection.chains())


def test_a_token_is_required(client: tuple[TestClient, ChainProjection]) -> None:
    http, _ = client
    assert http.get("/v1/chains").status_code == 401


def test_a_watch_receives_new_alerts_of_chains_it_may_read(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=VERIFIER)
    projection.ingest(records_of(generated))
    hub = AlertHub(projection)
    auditor_site = CallerIdentity("AUDIT-1", frozenset({Role.AUDITOR}))
    auditor = Watch(Scope.of(auditor_site), kinds=frozenset({"identity-mismatch"}))
    stranger = Watch(Scope.of(CallerIdentity("GMP-Z", frozenset({Role.MANUFACTURING}))))
    hub.watch(auditor, include_existing=False)
    hub.watch(stranger, include_existing=False)
    coi = generated.cois[0]

    mismatch = intake.LabelMismatchRecorded(coi=coi, reason_code="din-mismatch")
    writer = EnvelopeWriter(11)
    record = writer.write(coi, f"Mismatch:{coi}", mismatch, datetime(2026, 1, 1, tzinfo=UTC))
    projection.ingest([("v2v.intake.events.v1", 0, 10_000, record)])

    assert hub.tick() == 1
    alert = auditor.inbox.get_nowait()
    assert (alert["coi"], alert["kind"]) == (coi, "identity-mismatch")
    assert stranger.inbox.empty()
    assert hub.tick() == 0
