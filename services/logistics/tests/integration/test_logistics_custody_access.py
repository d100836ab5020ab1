"""Issue 13 at logistics, on PostgreSQL + Kafka through the real gRPC and HTTP adapters: only
the parties of a shipment (origin, destination, the assigned courier or, in its courier role,
that courier's company, and the holder) scan, take, offer, receive, upload readings to or
read it; custody passes only from the holder who offered it; a shipper ships only units
verified facts relate to it. To anyone else a shipment does not exist, and their refused
calls leave no record on its chain.

Intake is not under test: signed intake envelopes are produced onto its topic directly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
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
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope.codec import Actor
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.proto_values import timestamp
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually
from v2v_testkit.logistics import kinds

pytestmark = pytest.mark.integration

HOSP_A, HOSP_B, GMP, LOGISTICS = "HOSP-A", "HOSP-B", "GMP-B", "LOGI-1"
OTHER_COMPANY, AUDITOR = "COURIER-2", "AUDIT"
SITES = [
    f"{HOSP_A}:collection,infusion",
    f"{HOSP_B}:collection,infusion",
    f"{GMP}:manufacturing",
    f"{LOGISTICS}:courier",
    f"{OTHER_COMPANY}:courier",
    f"{AUDITOR}:auditor",
]
NURSE = Operator(user_id="u-nurse", printed_name="Nora Nurse")
GRACE = Operator(user_id="u-gmp", printed_name="Grace Operator")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    init_pki(tmp_path / "pki", [parse_site_spec(s) for s in SITES])
    return tmp_path / "pki"


@dataclass
class World:
    """HOSP-A's units known at logistics, gRPC stubs per site, couriers' HTTP clients."""

    pki: Path
    service: LogisticsService
    client: TestClient
    stubs: dict[str, Any]
    units: list[str]
    coi: str

    def shipment(self, units: list[str], courier_id: str = "C-1") -> str:
        created = self.stubs[HOSP_A].CreateShipment(
            pb.CreateShipmentRequest(
                operator=NURSE,
                manifest_dins=units,
                condition=Condition.CONDITION_FRESH_COLD,
                destination_site_id=GMP,
                shipper_id="DEWAR-9",
                data_logger_id="LOGGER-5",
                courier_id=courier_id,
            ),
            timeout=10,
        )
        return str(created.shipment.shipment_id)

    def courier(self, courier_id: str) -> Courier:
        token = self.service.tokens.issue(courier_id, f"Courier {courier_id}", LOGISTICS)
        return Courier(self.client, token)

    def read(self, shipment_id: str, site: str = HOSP_A) -> Any:
        request = pb.GetShipmentRequest(shipment_id=shipment_id)
        return self.stubs[site].GetShipment(request, timeout=10).shipment

    def site_token(self, site: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_site_token(self.pki, site)}"}


class Courier:
    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, shipment_id: str, what: str, **body: str) -> Any:
        full = {"idempotency_key": str(uuid4()), "scanned_at": now(), **body}
        path = f"/v1/courier/shipments/{shipment_id}/{what}"
        return self.client.post(path, json=full, headers=self.headers)

    def take(self, shipment_id: str, units: list[str], **claim: str) -> Any:
        for unit in units:
            scanned = self.post(shipment_id, "scans", label=unit, **claim)
            assert scanned.status_code == 200, scanned.text
        return self.post(shipment_id, "handoff", **claim)


def now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
def world(pki: Path, service: LogisticsService, kafka_bootstrap: str) -> Iterator[World]:
    coi = issue_coi("A1234", 25, random.randint(1, 999_999)).value
    units = [str(issue_din("A1234", 25, random.randint(1, 999_999))) for _ in range(4)]
    signer = SiteSigningKey.load(HOSP_A, pki / "sites" / HOSP_A / "signing.key")
    actor = Actor("u-nurse", "Nora Nurse", "collection")
    relay = SignedEnvelopeProducer(kafka_bootstrap, "v2v.intake.events.v1", signer, actor)
    collected = datetime.now(UTC) - timedelta(hours=6)
    for unit in units:
        relay.publish(
            coi,
            intake.UnitPackaged(
                coi=coi,
                din=unit,
                condition=Condition.CONDITION_FRESH_COLD,
                window_starts_at=timestamp(collected),
                packaged_at=timestamp(collected + timedelta(hours=1)),
                manufacturing_site_id=GMP,
                temperature_c=4.0,
            ),
        )
    relay.close()
    for unit in units:
        eventually(partial(service.app.facts.unit, unit[:13]), f"intake's unit {unit}")
    assert service.grpc is not None
    channels, stubs = [], {}
    for site in (HOSP_A, HOSP_B, GMP, LOGISTICS, OTHER_COMPANY, AUDITOR):
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
        channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
        channels.append(channel)
        stubs[site] = pb_grpc.LogisticsServiceStub(channel)
    client = TestClient(service.http_app, raise_server_exceptions=False)
    try:
        yield World(pki, service, client, stubs, units, coi)
    finally:
        for channel in channels:
            channel.close()


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def not_found(call: Callable[[], Any]) -> None:
    assert refused(call).code() == grpc.StatusCode.NOT_FOUND


def scan_request(shipment_id: str, label: str) -> pb.RecordScanRequest:
    return pb.RecordScanRequest(
        operator=NURSE,
        shipment_id=shipment_id,
        idempotency_key=str(uuid4()),
        scanned_at=timestamp(datetime.now(UTC)),
        from_party=f"site:{HOSP_A}",
        label=label,
    )


def handoff_request(shipment_id: str) -> pb.ConfirmHandoffRequest:
    return pb.ConfirmHandoffRequest(
        operator=NURSE,
        shipment_id=shipment_id,
        idempotency_key=str(uuid4()),
        scanned_at=timestamp(datetime.now(UTC)),
        from_party=f"site:{HOSP_A}",
    )


def offer_request(shipment_id: str, to_party: str) -> pb.OfferHandoffRequest:
    return pb.OfferHandoffRequest(
        operator=NURSE,
        shipment_id=shipment_id,
        idempotency_key=str(uuid4()),
        offered_at=timestamp(datetime.now(UTC)),
        to_party=to_party,
    )


def test_no_stranger_scans_or_takes_custody_of_a_shipment(world: World) -> None:
    """HOSP-B, a courier-role certificate of another company, and courier C-3 on a shipment
    assigned to C-1 each scanned and confirmed a handoff on HOSP-A's shipment."""
    unit = world.units[0]
    shipment_id = world.shipment([unit])
    world.courier("C-1")  # LOGI-1 is C-1's company; COURIER-2 is not
    before = kinds(world.service.app)
    for site in (HOSP_B, OTHER_COMPANY):
        stub = world.stubs[site]
        not_found(partial(stub.RecordScan, scan_request(shipment_id, unit), timeout=10))
        not_found(partial(stub.ConfirmHandoff, handoff_request(shipment_id), timeout=10))
        offer = offer_request(shipment_id, f"site:{site}")
        not_found(partial(stub.OfferHandoff, offer, timeout=10))
    c3 = world.courier("C-3")
    giver = f"site:{HOSP_A}"
    answers = [
        c3.post(shipment_id, "scans", from_party=giver, label=unit),
        c3.post(shipment_id, "handoff", from_party=giver),
        c3.post(shipment_id, "offer", to_party="courier:C-3"),
    ]
    assert [answer.status_code for answer in answers] == [404, 404, 404], answers[0].text
    assert kinds(world.service.app) == before  # nothing recorded that names them
    assert world.read(shipment_id).custodian == f"site:{HOSP_A}"


def test_custody_passes_only_from_the_holder_who_offered_it(
    world: World, kafka_bootstrap: str
) -> None:
    """`from_party` was a claim: a courier took a shipment "from" a holder who never
    authenticated. Now the holder offers it by its own call first."""
    units = world.units[:2]
    shipment_id = world.shipment(units)
    c1, c3 = world.courier("C-1"), world.courier("C-3")
    # offered to C-1 by HOSP-A when it created the shipment (the claim names HOSP-A, rightly)
    taken = c1.take(shipment_id, units, from_party=f"site:{HOSP_A}")
    assert taken.json()["custodian"] == "courier:C-1", taken.text
    world.stubs[HOSP_A].AssignCourier(
        pb.AssignCourierRequest(operator=NURSE, shipment_id=shipment_id, courier_id="C-3"),
        timeout=10,
    )
    claimed = c3.take(shipment_id, units, from_party="courier:C-1")
    assert claimed.status_code == 409 and claimed.json()["reason_code"] == "not-offered"
    assert world.read(shipment_id).custodian == "courier:C-1"

    offered = c1.post(shipment_id, "offer", to_party="courier:C-3")
    assert offered.json()["offered_to"] == "courier:C-3", offered.text
    assert c3.post(shipment_id, "handoff").json()["custodian"] == "courier:C-3"

    def receive() -> Any:
        return world.stubs[GMP].ReceiveShipment(
            pb.ReceiveShipmentRequest(
                operator=GRACE, shipment_id=shipment_id, scanned_labels=units
            ),
            timeout=10,
        )

    early = refused(receive)
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (early.details() or "").startswith("not-offered: courier:C-3 has not handed")
    assert c3.post(shipment_id, "offer", to_party=f"site:{GMP}").status_code == 200
    assert receive().shipment.custodian == f"site:{GMP}"

    ring = KeyRing.from_json((world.pki / "signing-keys.json").read_text())
    records, breaks = read_verified_until(
        kafka_bootstrap,
        "v2v.logistics.events.v1",
        ring,
        keep=lambda envelope: envelope.aggregate_id == shipment_id,
        done=lambda mine: any(e.event_type.endswith("ShipmentDelivered") for e in mine),
    )
    assert not breaks
    types = [e.event_type.rsplit(".", 1)[1] for _, e in records]
    assert types.count("HandoffOffered") == 2 and types.count("CustodyHandedOver") == 2
    offers = [e for _, e in records if e.event_type.endswith("HandoffOffered")]
    assert [(e.actor.user_id, e.actor.role) for e in offers] == [
        ("C-1", "courier"),
        ("C-3", "courier"),
    ]


def test_only_parties_upload_readings_and_read_a_shipment(world: World) -> None:
    """Anyone uploaded readings to any shipment (false excursions), and the logistics
    operator's site read every shipment; the assigned courier's company now reads its own."""
    world.courier("C-1")  # LOGI-1 is C-1's company
    ours = world.shipment(world.units[:1])
    theirs = world.shipment(world.units[1:2], courier_id="C-9")  # C-9 works for nobody here
    start = datetime.now(UTC) - timedelta(minutes=30)

    def upload(site: str, shipment_id: str) -> Any:
        request = pb.UploadTemperatureReadingsRequest(
            operator=NURSE,
            shipment_id=shipment_id,
            readings=[
                pb.TemperatureReading(
                    measured_at=timestamp(start + timedelta(minutes=n)),
                    temperature_c=30.0,
                    device_id="LOGGER-5",
                )
                for n in range(3)
            ],
        )
        return world.stubs[site].UploadTemperatureReadings(request, timeout=10)

    before = kinds(world.service.app)
    for site, shipment_id in ((HOSP_B, ours), (OTHER_COMPANY, ours), (LOGISTICS, theirs)):
        not_found(partial(upload, site, shipment_id))
        not_found(partial(world.read, shipment_id, site))
        http = world.client.get(f"/v1/shipments/{shipment_id}", headers=world.site_token(site))
        assert http.status_code == 404, (site, http.text)
    assert kinds(world.service.app) == before
    assert len(upload(LOGISTICS, ours).excursions) == 1
    for site in (HOSP_A, GMP, LOGISTICS, AUDITOR):
        assert world.read(ours, site).shipment_id == ours
        http = world.client.get(f"/v1/shipments/{ours}", headers=world.site_token(site))
        assert http.status_code == 200, (site, http.text)


def test_a_stranger_neither_ships_nor_manages_another_sites_shipment(world: World) -> None:
    """CreateShipment with another site's units named their custodian (now NOT_FOUND, exactly
    like a unit nobody knows); assigning a courier, receiving, inspecting and recording an
    exception were PERMISSION_DENIED or recorded (now NOT_FOUND, nothing recorded)."""
    shipment_id = world.shipment(world.units[:1])
    hosp_b = world.stubs[HOSP_B]
    unknown = str(issue_din("A1234", 25, random.randint(1, 999_999)))

    def create(unit: str) -> grpc.RpcError:
        request = pb.CreateShipmentRequest(
            operator=NURSE,
            manifest_dins=[unit],
            condition=Condition.CONDITION_FRESH_COLD,
            destination_site_id=GMP,
            shipper_id="BOX-1",
            data_logger_id="LOGGER-1",
        )
        return refused(lambda: hosp_b.CreateShipment(request, timeout=10))

    theirs, nobodys = create(world.units[3]), create(unknown)
    assert theirs.code() == nobodys.code() == grpc.StatusCode.NOT_FOUND
    assert theirs.details() == (nobodys.details() or "").replace(unknown, world.units[3])
    assert (theirs.details() or "").startswith("unknown-unit: ")
    body = {
        "operator": {"user_id": "u-b", "printed_name": "Bo"},
        "manifest": [world.units[3]],
        "condition": "fresh-cold",
        "destination_site_id": GMP,
        "shipper_id": "BOX-1",
        "data_logger_id": "LOGGER-1",
    }
    over_http = world.client.post("/v1/shipments", json=body, headers=world.site_token(HOSP_B))
    assert over_http.status_code == 404 and over_http.json()["reason_code"] == "unknown-unit"

    before = kinds(world.service.app)
    not_found(
        lambda: hosp_b.AssignCourier(
            pb.AssignCourierRequest(operator=NURSE, shipment_id=shipment_id, courier_id="C-7"),
            timeout=10,
        )
    )
    not_found(
        lambda: hosp_b.ReceiveShipment(
            pb.ReceiveShipmentRequest(
                operator=NURSE, shipment_id=shipment_id, scanned_labels=world.units[:1]
            ),
            timeout=10,
        )
    )
    not_found(
        lambda: hosp_b.InspectReceipt(
            pb.InspectReceiptRequest(
                operator=NURSE, shipment_id=shipment_id, intact=True, temperature_log_reviewed=True
            ),
            timeout=10,
        )
    )
    not_found(
        lambda: hosp_b.RecordException(
            pb.RecordExceptionRequest(
                operator=NURSE, shipment_id=shipment_id, kind="lost", reason="gone"
            ),
            timeout=10,
        )
    )
    base = f"/v1/shipments/{shipment_id}"
    as_b = world.site_token(HOSP_B)
    operator = {"user_id": "u-b", "printed_name": "Bo"}
    assign = {"operator": operator, "courier_id": "C-7"}
    receipt = {"operator": operator, "scanned_labels": world.units[:1]}
    for path, body in ((f"{base}/courier", assign), (f"{base}/receipt", receipt)):
        assert world.client.post(path, json=body, headers=as_b).status_code == 404, path
    assert kinds(world.service.app) == before
    view = world.read(shipment_id)
    assert (view.status, view.assigned_courier_id) == ("created", "C-1")
