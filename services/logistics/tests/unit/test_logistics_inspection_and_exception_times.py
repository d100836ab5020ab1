"""Clinical time on the destination's inspection and on exceptions (issue 14, item 2): a receipt
inspection happened at `inspected_at` and an exception at `occurred_at` (optional, default now,
never in the future beyond the skew), stored on their events apart from when they were
recorded; no inspection before the receipt, no exception before the shipment's creation
(INVALID_ARGUMENT / 422 naming the field, nothing recorded). And a fresh apheresis relay
entered after the fact (collected and packed 30 h ago, picked up at hour 1, received at hour
30, its logger read meanwhile) is judged, at every step, on when things happened."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Operator
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_logistics.adapters import payloads
from v2v_logistics.adapters.courier_tokens import CourierTokens
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.bootstrap import LogisticsService, bootstrap
from v2v_logistics.domain.values import ExceptionKind, Reading
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.attribution import Attribution
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.errors import InvalidInput
from v2v_platform.proto_values import timestamp
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    din,
    hand_to_courier,
    kinds,
    new_shipment,
    offer,
    site_user,
    stored_events,
)

C1 = "courier:C-1"
FROM_SITE = f"site:{ORIGIN}"
TO_SITE = f"site:{DESTINATION}"
GMP = site_user(DESTINATION, "manufacturing", "u-gmp")
OPERATOR = {"user_id": "u-gmp", "printed_name": "Grace Operator"}


def events_named(app: LogisticsApplication, name: str) -> list[Any]:
    return [event for event in stored_events(app) if type(event).__name__ == name]


def delivered(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock, received: datetime
) -> str:
    """A shipment packed 3 h ago, picked up 2 h ago and received at `received`."""
    units = [facts.package(din(1))]
    request = replace(new_shipment(units), created_at=clock() - timedelta(hours=3))
    shipment_id = app.create_shipment(request, site_user()).shipment_id
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock() - timedelta(hours=2))
    offer(app, shipment_id, C1, TO_SITE, received)
    app.receive_shipment(shipment_id, units, C1, None, GMP, received_at=received)
    return shipment_id


def reporter(site: str = ORIGIN) -> Attribution:
    return replace(site_user(site), reason="the dewar fell off the trolley")


# the application


def test_a_receipt_is_inspected_at_the_clinical_time_given(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    received = clock() - timedelta(hours=1)
    shipment_id = delivered(app, facts, clock, received)
    inspected = received + timedelta(minutes=20)
    view = app.inspect_receipt(shipment_id, True, True, "", GMP, inspected_at=inspected)
    assert view.status == "receipt-inspected"
    (event,) = events_named(app, "ReceiptInspected")
    assert event.inspected_at == inspected
    assert event.timestamp >= clock() - timedelta(seconds=1)  # recorded now, apart


def test_an_inspection_without_a_time_is_now(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id = delivered(app, facts, clock, clock() - timedelta(hours=1))
    app.inspect_receipt(shipment_id, True, True, "", GMP)
    assert [e.inspected_at for e in events_named(app, "ReceiptInspected")] == [clock()]


def test_no_inspection_before_the_receipt(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    received = clock() - timedelta(hours=1)
    shipment_id = delivered(app, facts, clock, received)
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"inspected_at .* is before the receipt"):
        app.inspect_receipt(
            shipment_id, True, True, "", GMP, inspected_at=received - timedelta(minutes=1)
        )
    with pytest.raises(InvalidInput, match=r"inspected_at .* is in the future"):
        app.inspect_receipt(
            shipment_id, True, True, "", GMP, inspected_at=clock() + timedelta(hours=1)
        )
    assert kinds(app) == before


def test_an_exception_is_recorded_at_when_it_occurred(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    units = [facts.package(din(1))]
    packed = clock() - timedelta(hours=2)
    request = replace(new_shipment(units), created_at=packed)
    shipment_id = app.create_shipment(request, site_user()).shipment_id
    occurred = packed + timedelta(minutes=30)
    view = app.record_exception(shipment_id, ExceptionKind.DAMAGED, reporter(), occurred)
    assert view.exception_kind == "damaged"
    (event,) = events_named(app, "ExceptionRecorded")
    assert (event.occurred_at, event.recorded_at) == (occurred, clock())


def test_an_exception_without_a_time_occurred_now(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    units = [facts.package(din(1))]
    shipment_id = app.create_shipment(new_shipment(units), site_user()).shipment_id
    app.record_exception(shipment_id, ExceptionKind.LOST, reporter())
    (event,) = events_named(app, "ExceptionRecorded")
    assert event.occurred_at == event.recorded_at == clock()


def test_no_exception_before_the_shipment_was_created(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    units = [facts.package(din(1))]
    packed = clock() - timedelta(hours=2)
    request = replace(new_shipment(units), created_at=packed)
    shipment_id = app.create_shipment(request, site_user()).shipment_id
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"occurred_at .* is before the shipment's creation"):
        app.record_exception(
            shipment_id, ExceptionKind.DAMAGED, reporter(), packed - timedelta(minutes=1)
        )
    with pytest.raises(InvalidInput, match=r"occurred_at .* is in the future"):
        app.record_exception(
            shipment_id, ExceptionKind.DAMAGED, reporter(), clock() + timedelta(hours=1)
        )
    assert kinds(app) == before


# over HTTP and gRPC


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    specs = [f"{ORIGIN}:collection", f"{DESTINATION}:manufacturing", f"{SERVICE_SITE}:courier"]
    init_pki(directory, [parse_site_spec(s) for s in specs])
    return directory


def site(pki: Path, site_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site_id)}"}


def test_inspection_and_exception_times_over_http(
    client: TestClient, service: LogisticsService, pki: Path, facts: InMemoryFacts
) -> None:
    now = Clock().now
    received = now - timedelta(hours=1)
    shipment_id = delivered(service.app, facts, Clock(), received)
    path = f"/v1/shipments/{shipment_id}/inspection"
    body = {"operator": OPERATOR, "intact": True, "temperature_log_reviewed": True}
    early = {**body, "inspected_at": (received - timedelta(minutes=1)).isoformat()}
    refused = client.post(path, json=early, headers=site(pki, DESTINATION))
    assert refused.status_code == 422 and "inspected_at" in refused.json()["detail"]
    inspected = received + timedelta(minutes=5)
    done = client.post(
        path,
        json={**body, "inspected_at": inspected.isoformat()},
        headers=site(pki, DESTINATION),
    )
    assert done.status_code == 200, done.text
    assert [e.inspected_at for e in events_named(service.app, "ReceiptInspected")] == [inspected]

    units = [facts.package(din(2))]
    packed = now - timedelta(hours=2)
    other = service.app.create_shipment(
        replace(new_shipment(units), created_at=packed), site_user()
    ).shipment_id
    path = f"/v1/shipments/{other}/exception"
    body = {"operator": OPERATOR, "kind": "damaged", "reason": "dropped"}
    early = {**body, "occurred_at": (packed - timedelta(minutes=1)).isoformat()}
    refused = client.post(path, json=early, headers=site(pki, ORIGIN))
    assert refused.status_code == 422 and "occurred_at" in refused.json()["detail"]
    occurred = packed + timedelta(minutes=10)
    done = client.post(
        path, json={**body, "occurred_at": occurred.isoformat()}, headers=site(pki, ORIGIN)
    )
    assert done.status_code == 200, done.text
    (event,) = events_named(service.app, "ExceptionRecorded")
    assert event.occurred_at == occurred


def stub(pki: Path, service: LogisticsService, site_id: str) -> tuple[Any, Any]:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site_id))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    return pb_grpc.LogisticsServiceStub(channel), channel


def test_inspection_and_exception_times_over_grpc(
    service: LogisticsService, pki: Path, facts: InMemoryFacts
) -> None:
    service.start_grpc("127.0.0.1:0")
    now = Clock().now
    received = now - timedelta(hours=1)
    shipment_id = delivered(service.app, facts, Clock(), received)
    operator = Operator(user_id="u-gmp", printed_name="Grace Operator")
    gmp, channel = stub(pki, service, DESTINATION)
    with channel:
        with pytest.raises(grpc.RpcError) as refused:
            gmp.InspectReceipt(
                pb.InspectReceiptRequest(
                    operator=operator,
                    shipment_id=shipment_id,
                    intact=True,
                    temperature_log_reviewed=True,
                    inspected_at=timestamp(received - timedelta(minutes=1)),
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "inspected_at" in refused.value.details()
        inspected = received + timedelta(minutes=5)
        gmp.InspectReceipt(
            pb.InspectReceiptRequest(
                operator=operator,
                shipment_id=shipment_id,
                intact=True,
                temperature_log_reviewed=True,
                inspected_at=timestamp(inspected),
            ),
            timeout=10,
        )
    assert [e.inspected_at for e in events_named(service.app, "ReceiptInspected")] == [inspected]
    units = [facts.package(din(2))]
    packed = now - timedelta(hours=2)
    other = service.app.create_shipment(
        replace(new_shipment(units), created_at=packed), site_user()
    ).shipment_id
    hospital, channel = stub(pki, service, ORIGIN)
    with channel:
        request = pb.RecordExceptionRequest(
            operator=operator, shipment_id=other, kind="lost", reason="not at the relay point"
        )
        with pytest.raises(grpc.RpcError) as refused:
            early = timestamp(packed - timedelta(minutes=1))
            hospital.RecordException(
                pb.RecordExceptionRequest(occurred_at=early, **fields_of(request)), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "occurred_at" in refused.value.details()
        occurred = packed + timedelta(minutes=10)
        hospital.RecordException(
            pb.RecordExceptionRequest(occurred_at=timestamp(occurred), **fields_of(request)),
            timeout=10,
        )
    (event,) = events_named(service.app, "ExceptionRecorded")
    assert event.occurred_at == occurred


def fields_of(request: pb.RecordExceptionRequest) -> dict[str, Any]:
    return {
        "operator": request.operator,
        "shipment_id": request.shipment_id,
        "kind": request.kind,
        "reason": request.reason,
    }


# a fresh apheresis relay entered after the fact, through the whole service


def test_a_thirty_hour_fresh_relay_entered_afterwards_is_judged_on_its_clinical_times(
    pki: Path, facts: InMemoryFacts, tokens: CourierTokens
) -> None:
    """Collected an hour before it was packed; the courier scanned and took it at hour 1,
    relayed it, its logger read 4 C every 6 h, the destination received it at hour 30 and
    inspected it: everything entered 72 h after the packing (on the server's clock the 48 h
    window has ended), courier scans included. Nothing breaches the window, nothing is late,
    no excursion, and each event keeps its clinical time."""
    clock = Clock(Clock().now + timedelta(days=3))
    entered = clock()
    packed = entered - timedelta(hours=72)
    unit = facts.package(din(1), window_starts_at=packed - timedelta(hours=1))
    settings = LogisticsSettings(site_id=SERVICE_SITE, pki_dir=pki)
    service = bootstrap(settings, facts=facts, tokens=tokens, clock=clock)
    try:
        client = TestClient(service.http_app, raise_server_exceptions=False)
        body = {
            "operator": OPERATOR,
            "manifest": [unit],
            "condition": "fresh-cold",
            "destination_site_id": DESTINATION,
            "shipper_id": "DEWAR-9",
            "data_logger_id": "LOGGER-5",
            "courier_id": "C-17",
            "created_at": packed.isoformat(),
        }
        made = client.post("/v1/shipments", json=body, headers=site(pki, ORIGIN))
        assert made.status_code == 201, made.text
        shipment_id = made.json()["shipment_id"]
        me = {"Authorization": f"Bearer {tokens.issue('C-17', 'Kim Courier', ORIGIN)}"}
        base = f"/v1/courier/shipments/{shipment_id}"
        picked_up = packed + timedelta(hours=1)
        for path, fields in (
            ("scans", {"label": unit}),
            ("handoff", {}),
            ("offer", {"to_party": TO_SITE}),
        ):
            at = picked_up if path != "offer" else packed + timedelta(hours=29, minutes=50)
            sent = {"idempotency_key": str(uuid4()), "scanned_at": at.isoformat(), **fields}
            answer = client.post(f"{base}/{path}", json=sent, headers=me)
            assert answer.status_code == 200, (path, answer.text)
            assert not answer.json().get("late", False)
        readings = [
            {
                "measured_at": (packed + timedelta(hours=h)).isoformat(),
                "temperature_c": 4.0,
                "device_id": "LOGGER-5",
            }
            for h in range(0, 31, 6)
        ]
        uploaded = client.post(
            f"/v1/shipments/{shipment_id}/temperature-readings",
            json={"operator": OPERATOR, "readings": readings},
            headers=site(pki, ORIGIN),
        )
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json() == {"recorded": len(readings), "excursions": []}
        received = packed + timedelta(hours=30)
        receipt = {
            "operator": OPERATOR,
            "scanned_labels": [unit],
            "from_party": "courier:C-17",
            "received_at": received.isoformat(),
        }
        gmp = site(pki, DESTINATION)
        done = client.post(f"/v1/shipments/{shipment_id}/receipt", json=receipt, headers=gmp)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "delivered" and not done.json()["window_breached"]
        inspection = {
            "operator": OPERATOR,
            "intact": True,
            "temperature_log_reviewed": True,
            "inspected_at": (received + timedelta(minutes=15)).isoformat(),
        }
        inspected = client.post(
            f"/v1/shipments/{shipment_id}/inspection", json=inspection, headers=gmp
        )
        assert inspected.status_code == 200, inspected.text
        history = stored_events(service.app)
        names = [type(event).__name__ for event in history]
        assert "StabilityWindowBreached" not in names and "ScanMismatchRecorded" not in names
        assert not any(getattr(event, "late", False) for event in history)
        (handoff,) = [e for e in history if type(e).__name__ == "CustodyHandedOver"]
        (delivery,) = [e for e in history if type(e).__name__ == "Delivered"]
        (inspection_event,) = [e for e in history if type(e).__name__ == "ReceiptInspected"]
        assert handoff.scanned_at - packed == timedelta(hours=1)
        assert delivery.received_at - packed == timedelta(hours=30)
        assert inspection_event.inspected_at - delivery.received_at == timedelta(minutes=15)
        assert all(event.timestamp >= entered - timedelta(seconds=1) for event in history)
    finally:
        service.stop()


def test_readings_are_kept_at_when_they_were_measured(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    units = [facts.package(din(1))]
    packed = clock() - timedelta(hours=2)
    shipment_id = app.create_shipment(
        replace(new_shipment(units), created_at=packed), site_user()
    ).shipment_id
    measured = [packed + timedelta(minutes=m) for m in (0, 30, 60)]
    readings = [Reading(at, 4.0, "LOGGER-5") for at in measured]
    app.upload_readings(shipment_id, readings, site_user())
    (event,) = events_named(app, "TemperatureReadingsRecorded")
    assert [row["measured_at"] for row in event.readings] == measured


def test_a_delivery_publishes_the_units_it_delivered_and_exceptions_when_they_occurred(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """The wards learn from `ShipmentDelivered` which units arrived at their site, and when."""
    received = clock() - timedelta(hours=1)
    shipment_id = delivered(app, facts, clock, received)
    (delivery,) = events_named(app, "Delivered")
    published = payloads.delivered(delivery)
    assert list(published.manifest_dins) == [din(1)]
    assert published.destination_site_id == DESTINATION
    assert published.received_at.ToDatetime(UTC) == received
    occurred = received + timedelta(minutes=5)
    app.record_exception(shipment_id, ExceptionKind.DAMAGED, reporter(DESTINATION), occurred)
    (exception,) = events_named(app, "ExceptionRecorded")
    assert payloads.exception_recorded(exception).occurred_at.ToDatetime(UTC) == occurred


def test_each_envelope_carries_its_clinical_time_apart_from_when_it_was_recorded(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """Entered now, published with when it happened: packing, courier scan, pickup, offer,
    receipt, inspection, exception."""
    received = clock() - timedelta(hours=1)
    shipment_id = delivered(app, facts, clock, received)
    app.inspect_receipt(
        shipment_id, True, True, "", GMP, inspected_at=received + timedelta(minutes=3)
    )
    units = [facts.package(din(2))]
    other = app.create_shipment(
        replace(new_shipment(units), created_at=clock() - timedelta(hours=4)), site_user()
    ).shipment_id
    app.record_exception(
        other, ExceptionKind.LOST, reporter(), clock() - timedelta(hours=3, minutes=30)
    )
    expected = {
        "Created": {clock() - timedelta(hours=3), clock() - timedelta(hours=4)},
        "UnitScanned": {clock() - timedelta(hours=2)},
        "CustodyHandedOver": {clock() - timedelta(hours=2)},
        "HandoffOffered": {received},
        "Delivered": {received},
        "ReceiptInspected": {received + timedelta(minutes=3)},
        "ExceptionRecorded": {clock() - timedelta(hours=3, minutes=30)},
    }
    seen: dict[str, set[datetime | None]] = {}
    for event in stored_events(app):
        outbound = payloads.TRANSLATOR.translate(event)
        assert outbound is not None
        seen.setdefault(type(event).__name__, set()).add(outbound.content.occurred_at)
    assert seen == expected
