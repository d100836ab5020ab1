"""Logistics on PostgreSQL + Kafka: a fresh apheresis shipment learned from intake's events
passes three couriers (site -> C1 -> C2 -> C3 -> destination site) through the courier HTTP API
and the site gRPC API, each holder offering it to the next, with one temperature excursion,
delivery and receipt inspection; the logistics events are published as verifiable signed
chains keyed by the COI.

Intake is not under test: signed intake envelopes are produced onto its topic directly.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Condition, Operator
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_logistics.bootstrap import LogisticsService
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import Coi, issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

HOSPITAL, GMP, LOGISTICS = "HOSP-A", "GMP-B", "LOGI-1"
NURSE = Operator(user_id="u-nurse", printed_name="Nora Nurse")
GRACE = Operator(user_id="u-gmp", printed_name="Grace Operator")
T = TypeVar("T")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    sites = [f"{HOSPITAL}:collection,infusion", f"{GMP}:manufacturing", f"{LOGISTICS}:courier"]
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in sites])
    return tmp_path / "pki"


def intake_stand_in(pki: Path, kafka: str) -> SignedEnvelopeProducer:
    """Intake's relay, as far as logistics can tell (intake is not under test here)."""
    signer = SiteSigningKey.load(HOSPITAL, pki / "sites" / HOSPITAL / "signing.key")
    actor = Actor("u-nurse", "Nora Nurse", "collection")
    return SignedEnvelopeProducer(kafka, "v2v.intake.events.v1", signer, actor)


def package(intake_relay: SignedEnvelopeProducer, coi: str, din: str, collected: datetime) -> None:
    intake_relay.publish(
        coi,
        intake.UnitPackaged(
            coi=coi,
            din=din,
            condition=Condition.CONDITION_FRESH_COLD,
            window_starts_at=timestamp(collected),
            packaged_at=timestamp(collected + timedelta(hours=1)),
            manufacturing_site_id=GMP,
            temperature_c=4.0,
        ),
    )


def stub(pki: Path, service: LogisticsService, site: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.LogisticsServiceStub(channel), channel


class Courier:
    """A courier's phone: scans every unit over HTTP, then confirms the handoff."""

    def __init__(self, client: TestClient, token: str, courier_id: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.party = f"courier:{courier_id}"

    def post(self, shipment_id: str, what: str, **body: str) -> Any:
        full = {
            "idempotency_key": str(uuid4()),
            "scanned_at": datetime.now(UTC).isoformat(),
            **body,
        }
        path = f"/v1/courier/shipments/{shipment_id}/{what}"
        return self.client.post(path, json=full, headers=self.headers)

    def offer(self, shipment_id: str, to_party: str) -> None:
        offered = self.post(shipment_id, "offer", to_party=to_party)
        assert offered.status_code == 200, offered.text
        assert offered.json()["offered_to"] == to_party

    def take(self, shipment_id: str, units: list[str], giver: str) -> Any:
        [listed] = self.client.get("/v1/courier/shipments", headers=self.headers).json()[
            "shipments"
        ]
        assert listed["shipment_id"] == shipment_id and listed["custodian"] == giver
        for unit in units:
            assert self.post(shipment_id, "scans", from_party=giver, label=unit).status_code == 200
        handed = self.post(shipment_id, "handoff", from_party=giver)
        assert handed.status_code == 200, handed.text
        return handed.json()


def published(kafka: str, pki: Path, shipment_id: str) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """This run's logistics (record, envelope) pairs, read until the receipt inspection."""
    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    return read_verified_until(
        kafka,
        "v2v.logistics.events.v1",
        ring,
        keep=lambda envelope: envelope.aggregate_id == shipment_id,
        done=lambda mine: any(e.event_type.endswith("ReceiptInspected") for e in mine),
    )


@pytest.mark.integration
def test_a_fresh_shipment_passes_three_couriers_with_one_excursion(
    pki: Path, service: LogisticsService, kafka_bootstrap: str
) -> None:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    other_coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    units = [str(issue_din("A1234", 25, random.randint(1, 999_999))) for _ in range(2)]
    stranger = str(issue_din("A1234", 25, random.randint(1, 999_999)))
    collected = datetime.now(UTC) - timedelta(hours=6)
    stand_in = intake_stand_in(pki, kafka_bootstrap)
    for unit in units:
        package(stand_in, coi, unit, collected)
    package(stand_in, other_coi, stranger, collected)
    stand_in.close()
    facts = service.app.facts
    for din in [*units, stranger]:
        eventually(partial(facts.unit, din[:13]), f"intake's unit {din} to be projected")

    client = TestClient(service.http_app, raise_server_exceptions=False)
    couriers = {
        name: Courier(client, service.tokens.issue(name, f"Courier {name}", HOSPITAL), name)
        for name in ("C-1", "C-2", "C-3")
    }
    hospital, hospital_channel = stub(pki, service, HOSPITAL)
    gmp, gmp_channel = stub(pki, service, GMP)
    with hospital_channel, gmp_channel:
        created = hospital.CreateShipment(
            pb.CreateShipmentRequest(
                operator=NURSE,
                manifest_dins=units,
                condition=Condition.CONDITION_FRESH_COLD,
                destination_site_id=GMP,
                shipper_id="DEWAR-9",
                data_logger_id="LOGGER-5",
                courier_id="C-1",
            ),
            timeout=10,
        ).shipment
        shipment_id = created.shipment_id
        window_ends_at = created.window_ends_at.ToDatetime(tzinfo=UTC)
        assert created.coi == coi
        assert abs(window_ends_at - (collected + timedelta(hours=48))) < timedelta(seconds=1)

        stop = couriers["C-1"].post(
            shipment_id, "scans", from_party=f"site:{HOSPITAL}", label=stranger
        )
        assert stop.status_code == 409 and stop.json()["reason_code"] == "other-coi"
        assert couriers["C-1"].take(shipment_id, units, f"site:{HOSPITAL}")["status"] == "picked-up"
        for giver, taker in (("C-1", "C-2"), ("C-2", "C-3")):
            hospital.AssignCourier(
                pb.AssignCourierRequest(operator=NURSE, shipment_id=shipment_id, courier_id=taker),
                timeout=10,
            )
            couriers[giver].offer(shipment_id, f"courier:{taker}")
            handed = couriers[taker].take(shipment_id, units, f"courier:{giver}")
            assert handed == {
                "outcome": "accepted",
                "custodian": f"courier:{taker}",
                "status": "in-transit",
            }

        start = datetime.now(UTC) - timedelta(hours=2)
        temperatures = [4.0, 5.0, 9.5, 10.5, 6.0, 4.5]
        upload = hospital.UploadTemperatureReadings(
            pb.UploadTemperatureReadingsRequest(
                operator=NURSE,
                shipment_id=shipment_id,
                readings=[
                    pb.TemperatureReading(
                        measured_at=timestamp(start + timedelta(minutes=15 * n)),
                        temperature_c=t,
                        device_id="LOGGER-5",
                    )
                    for n, t in enumerate(temperatures)
                ],
            ),
            timeout=10,
        )
        [excursion] = upload.excursions
        assert (excursion.min_c, excursion.max_c, excursion.duration_seconds) == (9.5, 10.5, 900)

        couriers["C-3"].offer(shipment_id, f"site:{GMP}")
        delivered = gmp.ReceiveShipment(
            pb.ReceiveShipmentRequest(
                operator=GRACE,
                shipment_id=shipment_id,
                scanned_labels=units,
                from_party="courier:C-3",
            ),
            timeout=10,
        ).shipment
        assert (delivered.status, delivered.custodian) == ("delivered", f"site:{GMP}")
        inspected = gmp.InspectReceipt(
            pb.InspectReceiptRequest(
                operator=GRACE, shipment_id=shipment_id, intact=True, temperature_log_reviewed=True
            ),
            timeout=10,
        ).shipment
        assert inspected.status == "receipt-inspected" and len(inspected.excursions) == 1

    records, breaks = published(kafka_bootstrap, pki, shipment_id)
    assert not breaks
    envelopes = [envelope for _, envelope in records]
    for record, envelope in records:
        assert Coi.parse(envelope.coi).value == envelope.coi == coi
        assert record.key == coi.encode()
        assert envelope.site_id == LOGISTICS
    types = [e.event_type.rsplit(".", 1)[1] for e in envelopes]
    assert types.count("CustodyHandedOver") == 3 and types.count("UnitScanned") == 6
    assert types.count("HandoffOffered") == 3
    assert {
        "ShipmentCreated",
        "ScanMismatchRecorded",
        "CourierAssigned",
        "TemperatureReadingsRecorded",
        "TemperatureExcursionRecorded",
        "ShipmentDelivered",
        "ReceiptInspected",
    } <= set(types)
    [mismatch] = [e for e in envelopes if e.event_type.endswith("ScanMismatchRecorded")]
    assert mismatch.actor.user_id == "C-1" and mismatch.actor.role == "courier"


@pytest.mark.integration
def test_oversized_input_is_refused_at_the_api_and_the_relay_keeps_publishing(
    pki: Path, service: LogisticsService, kafka_bootstrap: str
) -> None:
    """Issue 12's jamming cases: none reaches the event store, the one refusal that must be on
    record is recorded small, and what comes after is published."""
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    unit = str(issue_din("A1234", 25, random.randint(1, 999_999)))
    collected = datetime.now(UTC) - timedelta(hours=2)
    stand_in = intake_stand_in(pki, kafka_bootstrap)
    package(stand_in, coi, unit, collected)
    stand_in.close()
    eventually(partial(service.app.facts.unit, unit[:13]), "intake's unit to be projected")
    client = TestClient(service.http_app, raise_server_exceptions=False)
    courier = Courier(client, service.tokens.issue("C-9", "Courier C-9", HOSPITAL), "C-9")
    hospital, channel = stub(pki, service, HOSPITAL)
    with channel:
        shipment_id = hospital.CreateShipment(
            pb.CreateShipmentRequest(
                operator=NURSE,
                manifest_dins=[unit],
                condition=Condition.CONDITION_FRESH_COLD,
                destination_site_id=GMP,
                shipper_id="DEWAR-1",
                data_logger_id="LOGGER-1",
                courier_id="C-9",
            ),
            timeout=10,
        ).shipment.shipment_id

        huge = courier.post(shipment_id, "scans", from_party=f"site:{HOSPITAL}", label="X" * 10**7)
        assert huge.status_code == 413
        long_label = courier.post(
            shipment_id, "scans", from_party=f"site:{HOSPITAL}", label="Y" * 300
        )
        assert long_label.status_code == 409 and len(long_label.text) < 4_000

        def readings(count: int) -> pb.UploadTemperatureReadingsRequest:
            start = datetime.now(UTC) - timedelta(hours=1)
            return pb.UploadTemperatureReadingsRequest(
                operator=NURSE,
                shipment_id=shipment_id,
                readings=[
                    pb.TemperatureReading(
                        measured_at=timestamp(start + timedelta(seconds=n)),
                        temperature_c=4.0,
                        device_id="LOGGER-1",
                    )
                    for n in range(count)
                ],
            )

        with pytest.raises(grpc.RpcError) as too_many:
            hospital.UploadTemperatureReadings(readings(60_000), timeout=30)
        assert too_many.value.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert hospital.UploadTemperatureReadings(readings(10), timeout=10).recorded == 10

    ring = KeyRing.from_json((pki / "signing-keys.json").read_text())
    records, breaks = read_verified_until(
        kafka_bootstrap,
        "v2v.logistics.events.v1",
        ring,
        keep=lambda envelope: envelope.aggregate_id == shipment_id,
        done=lambda mine: any(e.event_type.endswith("TemperatureReadingsRecorded") for e in mine),
    )
    assert not breaks
    sizes = {e.event_type.rsplit(".", 1)[1]: len(r.value) for r, e in records}
    assert {"ShipmentCreated", "ScanMismatchRecorded", "TemperatureReadingsRecorded"} <= set(sizes)
    assert max(sizes.values()) < 16_384, sizes
