"""Handoffs inside one site (issue 14 item 5), on PostgreSQL + Kafka through the real gRPC and
HTTP adapters: an in-house hospital holding every role runs its own logistics service and moves
an apheresis collection from its collection department to its GMP department, then the product
from GMP to its ward by an in-house porter. Every bag is scanned at every handoff, refusals are
recorded, and custody is published per department (`site:SHEBA/<department>`).

Intake and manufacturing are not under test: their signed envelopes (the packaged bags, the
harvested product bags, all signed by SHEBA) are produced onto their topics directly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from google.protobuf.message import Message

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as events
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_logistics.bootstrap import LogisticsService, bootstrap
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

pytestmark = pytest.mark.integration

SHEBA, FIN = "SHEBA", "S1234"
COLLECTION, GMP, QC, WARD = (f"site:{SHEBA}/{d}" for d in ("collection", "gmp", "qc", "ward"))
PORTER = "courier:P-1"
NURSE = Operator(user_id="u-nurse", printed_name="Nora Nurse")
GRACE = Operator(user_id="u-gmp", printed_name="Grace Operator")
WARD_NURSE = Operator(user_id="u-ward", printed_name="Wendy Ward")
M = TypeVar("M", bound=Message)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    spec = f"{SHEBA}:collection,manufacturing,qc,infusion,courier"
    init_pki(tmp_path / "pki", [parse_site_spec(spec)])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[LogisticsService]:
    """The in-house hospital's own logistics service (SHEBA signs what it publishes)."""
    settings = LogisticsSettings(
        site_id=SHEBA,
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"logistics-it-{random.getrandbits(32):08x}")
    yield running
    running.stop()


def stand_in(pki: Path, kafka: str, context: str, role: str) -> SignedEnvelopeProducer:
    """SHEBA's intake or manufacturing relay, as far as logistics can tell."""
    signer = SiteSigningKey.load(SHEBA, pki / "sites" / SHEBA / "signing.key")
    actor = Actor("u-1", "User One", role)
    return SignedEnvelopeProducer(kafka, f"v2v.{context}.events.v1", signer, actor)


def known_at_logistics(
    pki: Path, service: LogisticsService, kafka: str
) -> tuple[str, list[str], list[str]]:
    """A COI with two packaged apheresis bags and two harvested product bags, known here."""
    coi = issue_coi(FIN, 26, random.randint(1, 999_999)).value
    numbers = random.sample(range(1, 999_999), 4)
    bags = [str(issue_din(FIN, 26, n)) for n in numbers[:2]]
    products = [str(issue_din(FIN, 26, n)) for n in numbers[2:]]
    collected = datetime.now(UTC) - timedelta(hours=6)
    collection = stand_in(pki, kafka, "intake", "collection")
    for bag in bags:
        packaged = intake.UnitPackaged(
            coi=coi,
            din=bag,
            condition=Condition.CONDITION_FRESH_COLD,
            window_starts_at=timestamp(collected),
            packaged_at=timestamp(collected + timedelta(hours=1)),
            manufacturing_site_id=SHEBA,
            temperature_c=4.0,
        )
        collection.publish(coi, packaged)
    collection.close()
    gmp = stand_in(pki, kafka, "manufacturing", "manufacturing")
    harvested = manufacturing.ProductUnitsCreated(
        coi=coi,
        batch_id=str(uuid4()),
        product_dins=products,
        input_dins=bags,
        hold_condition=Condition.CONDITION_FRESH_COLD,
        created_at=timestamp(datetime.now(UTC) - timedelta(hours=1)),
    )
    gmp.publish(coi, harvested)
    gmp.close()
    for din in [*bags, *products]:
        eventually(partial(service.app.facts.unit, din[:13]), f"unit {din} known at logistics")
    return coi, bags, products


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def custody_refusal(call: Callable[[], Any]) -> str:
    error = refused(call)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    return str(error.details()).split(":", 1)[0]


class Porter:
    """The hospital's porter: a courier token issued by SHEBA, scanning over HTTP."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, shipment_id: str, what: str, **body: str) -> Any:
        full = {"idempotency_key": str(uuid4()), "scanned_at": now(), **body}
        return self.client.post(
            f"/v1/courier/shipments/{shipment_id}/{what}", json=full, headers=self.headers
        )

    def take(self, shipment_id: str, bags: list[str], giver: str) -> Any:
        for bag in bags:
            scanned = self.post(shipment_id, "scans", from_party=giver, label=bag)
            assert scanned.status_code == 200, scanned.text
        handed = self.post(shipment_id, "handoff", from_party=giver)
        assert handed.status_code == 200, handed.text
        return handed.json()


def now() -> str:
    return datetime.now(UTC).isoformat()


def create(
    stub: Any, units: list[str], origin: str, destination: str, courier_id: str = ""
) -> pb.Shipment:
    request = pb.CreateShipmentRequest(
        operator=NURSE if origin == "collection" else GRACE,
        manifest_dins=units,
        condition=Condition.CONDITION_FRESH_COLD,
        destination_site_id=SHEBA,
        shipper_id="BOX-1",
        data_logger_id="LOGGER-1",
        courier_id=courier_id,
        department=origin,
        destination_department=destination,
    )
    shipment: pb.Shipment = stub.CreateShipment(request, timeout=10).shipment
    return shipment


def receive(
    stub: Any, shipment_id: str, labels: list[str], department: str, operator: Operator
) -> pb.Shipment:
    request = pb.ReceiveShipmentRequest(
        operator=operator, shipment_id=shipment_id, scanned_labels=labels, department=department
    )
    shipment: pb.Shipment = stub.ReceiveShipment(request, timeout=10).shipment
    return shipment


def published(kafka: str, pki: Path, shipment_ids: set[str]) -> list[tuple[Message, Any]]:
    """(payload, envelope) of this run's shipments, until each was delivered."""
    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    records, breaks = read_verified_until(
        kafka,
        "v2v.logistics.events.v1",
        ring,
        keep=lambda envelope: envelope.aggregate_id in shipment_ids,
        done=lambda mine: (
            sum(e.event_type.endswith("ShipmentDelivered") for e in mine) == len(shipment_ids)
        ),
    )
    assert not breaks
    decoded = []
    for _, envelope in records:
        name = envelope.event_type.rsplit(".", 1)[1]
        payload = getattr(events, name).FromString(envelope.payload)
        decoded.append((payload, envelope))
    return decoded


def of(history: list[tuple[Message, Any]], kind: type[M]) -> list[tuple[M, Any]]:
    """The published events of one kind, with their envelopes."""
    return [(payload, envelope) for payload, envelope in history if isinstance(payload, kind)]


def custodians(history: list[tuple[Message, Any]], shipment_id: str) -> list[str]:
    """The shipment's custody as published: its first custodian, then each one who took it."""
    held = []
    for payload, _ in history:
        if getattr(payload, "shipment_id", "") != shipment_id:
            continue
        if isinstance(payload, events.ShipmentCreated):
            held.append(payload.custodian)
        elif isinstance(payload, events.CustodyHandedOver):
            held.append(payload.to_party)
        elif isinstance(payload, events.ShipmentDelivered):
            department = payload.destination_department
            held.append(f"site:{payload.destination_site_id}/{department}")
    return held


def test_an_in_house_site_moves_bags_between_its_departments(
    pki: Path, service: LogisticsService, kafka_bootstrap: str
) -> None:
    coi, bags, products = known_at_logistics(pki, service, kafka_bootstrap)
    assert service.grpc is not None
    channel = secure_channel(
        f"127.0.0.1:{service.grpc.port}", channel_credentials(SiteTlsFiles.for_site(pki, SHEBA))
    )
    client = TestClient(service.http_app, raise_server_exceptions=False)
    porter = Porter(client, service.tokens.issue("P-1", "Paul Porter", SHEBA))
    with channel:
        sheba = pb_grpc.LogisticsServiceStub(channel)

        # collection -> gmp: the collection department offers, the GMP scans every bag
        same = refused(lambda: create(sheba, bags, "collection", "collection"))
        assert same.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "origin department" in str(same.details())
        apheresis = create(sheba, bags, "collection", "gmp")
        assert (apheresis.coi, apheresis.custodian) == (coi, COLLECTION)
        assert (apheresis.origin_party, apheresis.destination_party) == (COLLECTION, GMP)
        first = apheresis.shipment_id
        assert custody_refusal(lambda: receive(sheba, first, bags, "gmp", GRACE)) == "not-offered"
        offered = sheba.OfferHandoff(
            pb.OfferHandoffRequest(
                operator=NURSE,
                shipment_id=first,
                idempotency_key=str(uuid4()),
                offered_at=timestamp(datetime.now(UTC)),
                to_party=GMP,
                department="collection",
            ),
            timeout=10,
        )
        assert (offered.custodian, offered.offered_to) == (COLLECTION, GMP)
        one_bag = custody_refusal(lambda: receive(sheba, first, bags[:1], "gmp", GRACE))
        assert one_bag == "missing-unit"
        at_ward = custody_refusal(lambda: receive(sheba, first, bags, "ward", WARD_NURSE))
        assert at_ward == "wrong-destination"
        delivered = receive(sheba, first, bags, "gmp", GRACE)
        assert (delivered.status, delivered.custodian) == ("delivered", GMP)

        # gmp -> ward by the porter: scanned at the pickup and at the ward
        product = create(sheba, products, "gmp", "ward", courier_id="P-1")
        second = product.shipment_id
        assert (product.custodian, product.offered_to) == (GMP, PORTER)
        assert porter.take(second, products, GMP)["custodian"] == PORTER
        handed = porter.post(second, "offer", to_party=WARD)
        assert handed.status_code == 200 and handed.json()["offered_to"] == WARD, handed.text
        taken = receive(sheba, second, products, "ward", WARD_NURSE)
        assert (taken.status, taken.custodian) == ("delivered", WARD)
        inspected = sheba.InspectReceipt(
            pb.InspectReceiptRequest(
                operator=WARD_NURSE, shipment_id=second, intact=True, temperature_log_reviewed=True
            ),
            timeout=10,
        ).shipment
        assert inspected.status == "receipt-inspected"

    history = published(kafka_bootstrap, pki, {first, second})
    assert custodians(history, first) == [COLLECTION, GMP]
    assert custodians(history, second) == [GMP, PORTER, WARD]
    for _, envelope in history:
        assert envelope.coi == coi and envelope.site_id == SHEBA
    created = {p.shipment_id: p for p, _ in of(history, events.ShipmentCreated)}
    assert (created[first].origin_department, created[first].destination_department) == (
        "collection",
        "gmp",
    )
    assert created[first].origin_site_id == created[first].destination_site_id == SHEBA
    scans = [p for p, _ in of(history, events.UnitScanned)]
    assert sorted(p.din for p in scans) == sorted(products)
    assert {(p.from_party, p.receiving_party) for p in scans} == {(GMP, PORTER)}
    refusals = [p.reason_code for p, _ in of(history, events.ScanMismatchRecorded)]
    assert refusals == ["not-offered", "missing-unit", "wrong-destination"]
    receipts = {p.shipment_id: e.actor.role for p, e in of(history, events.ShipmentDelivered)}
    assert receipts == {first: "manufacturing", second: "infusion"}
