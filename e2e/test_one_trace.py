"""One trace across the system: a courier's scan over HTTP, the logistics event store write,
the relay's Kafka publish and the projection core's update all carry the trace id the
courier's device sent (W3C traceparent). Logistics and the projection core run as separate
processes exporting OTLP/HTTP to a collector stand-in served by this test (it decodes the
real OTLP protobuf requests)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.processes import ServiceProcess, fresh_database, start_service
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

pytestmark = pytest.mark.integration
HOSPITAL, COURIERS, AUDIT = "HOSP-A", "LOGI-1", "AUDIT"
TRACE_ID = f"{random.getrandbits(128):032x}"


class Collector:
    """Spans received over OTLP/HTTP: (service.name, span name, trace id hex)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.receive(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                service = attributes.get("service.name", "")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((service, span.name, span.trace_id.hex()))

    def in_trace(self, trace_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(service, name) for service, name, tid in self.spans if tid == trace_id]


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.server.shutdown()


@pytest.fixture
def services(
    tmp_path: Path, kafka_bootstrap: str, postgres_database: PostgresDatabase, collector: Collector
) -> Iterator[tuple[Path, ServiceProcess, ServiceProcess]]:
    pki = tmp_path / "pki"
    sites = [f"{HOSPITAL}:collection,infusion", f"{COURIERS}:courier", f"{AUDIT}:auditor"]
    init_pki(pki, [parse_site_spec(spec) for spec in sites])
    common = {
        "V2V_PKI_DIR": str(pki),
        "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "V2V_SPAN_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    name = postgres_database.dbname
    logistics = start_service(
        "v2v_logistics",
        {
            **common,
            "V2V_SITE_ID": COURIERS,
            "V2V_POSTGRES_DSN": fresh_database(postgres_database.dsn, f"{name}_log"),
        },
        tmp_path,
    )
    projection = start_service(
        "v2v_projection",
        {
            **common,
            "V2V_SITE_ID": AUDIT,
            "V2V_POSTGRES_DSN": fresh_database(postgres_database.dsn, f"{name}_proj"),
            "V2V_CONSUMER_GROUP": f"trace-test-{uuid4()}",
        },
        tmp_path,
    )
    try:
        for process in (logistics, projection):
            eventually(lambda p=process: p.healthy(pki, HOSPITAL), f"{process.module} to serve")  # type: ignore[misc]
        yield pki, logistics, projection
    finally:
        logistics.stop()
        projection.stop()


def _packaged_units(pki: Path, kafka: str, coi: str, dins: list[str]) -> None:
    signer = SiteSigningKey.load(HOSPITAL, pki / "sites" / HOSPITAL / "signing.key")
    relay = SignedEnvelopeProducer(
        kafka, "v2v.intake.events.v1", signer, Actor("n-1", "Nurse One", "collection")
    )
    collected = datetime.now(UTC) - timedelta(hours=2)
    for din in dins:
        relay.publish(
            coi,
            intake.UnitPackaged(
                coi=coi,
                din=din,
                condition=Condition.CONDITION_FRESH_COLD,
                window_starts_at=timestamp(collected),
                packaged_at=timestamp(collected + timedelta(minutes=30)),
                manufacturing_site_id="GMP-B",
                temperature_c=4.0,
            ),
        )
    relay.close()


def test_one_courier_scan_is_one_trace_from_request_to_projection(
    services: tuple[Path, ServiceProcess, ServiceProcess],
    kafka_bootstrap: str,
    collector: Collector,
) -> None:
    pki, logistics, projection = services
    coi = issue_coi("A1234", 26, random.randint(1, 999_999)).value
    din = str(issue_din("A1234", 26, random.randint(1, 999_999)))
    _packaged_units(pki, kafka_bootstrap, coi, [din])
    channel = secure_channel(
        logistics.grpc_target, channel_credentials(SiteTlsFiles.for_site(pki, HOSPITAL))
    )
    site = pb_grpc.LogisticsServiceStub(channel)
    create = pb.CreateShipmentRequest(
        operator=Operator(user_id="n-1", printed_name="Nurse One"),
        manifest_dins=[din],
        condition=Condition.CONDITION_FRESH_COLD,
        destination_site_id="GMP-B",
        shipper_id="SHIPPER-1",
        data_logger_id="LOGGER-1",
        courier_id="C-1",
    )

    def created() -> Any:
        try:
            return site.CreateShipment(create, timeout=5).shipment
        except grpc.RpcError as error:
            if (error.details() or "").startswith("unknown-unit"):
                return None  # not projected from intake's topic yet
            raise

    shipment = eventually(created, "the packaged unit at logistics")
    reader = {"Authorization": f"Bearer {issue_site_token(pki, AUDIT)}"}
    eventually(
        lambda: (
            httpx.get(f"{projection.http_base}/v1/chains/{coi}", headers=reader).status_code == 200
        ),
        "the shipment in the projection",
    )

    command = [sys.executable, "-m", "v2v_logistics", "issue-courier-token"]
    command += ["--courier", "C-1", "--name", "Kim Courier", "--site", HOSPITAL]
    env = {**os.environ, **logistics.env}
    token = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    token_text = token.stdout.strip()
    scan = httpx.post(
        f"{logistics.http_base}/v1/courier/shipments/{shipment.shipment_id}/scans",
        headers={
            "Authorization": f"Bearer {token_text}",
            "traceparent": f"00-{TRACE_ID}-{random.getrandbits(64):016x}-01",
        },
        json={
            "idempotency_key": str(uuid4()),
            "scanned_at": datetime.now(UTC).isoformat(),
            "from_party": f"site:{HOSPITAL}",
            "label": din,
        },
    )
    assert scan.status_code == 200, scan.text

    def whole_trace() -> list[tuple[str, str]]:
        spans = collector.in_trace(TRACE_ID)
        names = " | ".join(name for _, name in spans)
        wanted = (
            "POST /v1/courier",
            "event store write",
            "logistics.events.v1 publish",
            "projection process",
        )
        return spans if all(part in names for part in wanted) else []

    spans = eventually(whole_trace, f"every span of trace {TRACE_ID}", 30)
    services_seen = {service for service, _ in spans}
    print(f"\ntrace {TRACE_ID}: " + "; ".join(f"{s}: {n}" for s, n in spans))
    assert any("logistics" in s for s in services_seen), services_seen
    assert any("projection" in s for s in services_seen), services_seen
