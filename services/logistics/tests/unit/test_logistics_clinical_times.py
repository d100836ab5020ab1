"""Clinical time on every logistics fact (issue 14, item 2): a shipment is created and received
at the times the sites give (default now, never in the future beyond the skew), kept causal
(no scan, offer or handoff before the creation, no receipt before it or the last handoff:
INVALID_ARGUMENT / 422 naming the field, nothing recorded), and the stability window is judged
on when the receipt happened."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from v2v_logistics.adapters.courier_tokens import CourierTokens
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.bootstrap import LogisticsService
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.errors import InvalidInput
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    attempt,
    courier,
    din,
    hand_to_courier,
    kinds,
    new_shipment,
    offer,
    site_scope,
    site_user,
    stored_events,
)

C1 = "courier:C-1"
FROM_SITE = f"site:{ORIGIN}"
TO_SITE = f"site:{DESTINATION}"
GMP = site_user(DESTINATION, "manufacturing", "u-gmp")
NOW = Clock().now
OPERATOR = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}


def created(
    app: LogisticsApplication,
    facts: InMemoryFacts,
    at: datetime | None = None,
    courier_id: str = "C-1",
) -> tuple[str, list[str]]:
    units = [facts.package(din(1))]
    request = replace(new_shipment(units, courier_id=courier_id), created_at=at)
    return app.create_shipment(request, site_user()).shipment_id, units


def events_named(app: LogisticsApplication, name: str) -> list[Any]:
    return [event for event in stored_events(app) if type(event).__name__ == name]


def test_a_shipment_is_created_at_the_clinical_time_given(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    packed = clock() - timedelta(hours=1)
    shipment_id, _ = created(app, facts, packed)
    assert app.shipment(shipment_id, site_scope()).created_at == packed
    assert [e.created_at for e in events_named(app, "Created")] == [packed]


def test_a_shipment_created_without_a_time_is_created_now(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, _ = created(app, facts)
    assert app.shipment(shipment_id, site_scope()).created_at == clock()


def test_a_creation_time_in_the_future_or_without_a_zone_is_invalid(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    with pytest.raises(InvalidInput, match=r"created_at .* is in the future"):
        created(app, facts, clock() + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="created_at must carry a time zone"):
        created(app, facts, clock().replace(tzinfo=None))
    assert kinds(app) == []


def test_no_scan_before_the_shipment_was_created(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, units = created(app, facts)
    before = kinds(app)
    early = attempt(C1, FROM_SITE, clock() - timedelta(minutes=1), units[0])
    with pytest.raises(InvalidInput, match=r"scanned_at .* is before the shipment's creation"):
        app.scan(shipment_id, early, courier())
    assert kinds(app) == before


def test_no_handoff_before_the_shipment_was_created(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, units = created(app, facts)
    app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[0]), courier())
    before = kinds(app)
    early = attempt(C1, FROM_SITE, clock() - timedelta(minutes=1))
    with pytest.raises(InvalidInput, match=r"scanned_at .* is before the shipment's creation"):
        app.hand_over(shipment_id, early, courier())
    assert kinds(app) == before
    assert app.shipment(shipment_id, site_scope()).custodian == FROM_SITE


def test_no_offer_before_the_shipment_was_created(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, _ = created(app, facts, courier_id="")
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"scanned_at .* is before the shipment's creation"):
        offer(app, shipment_id, FROM_SITE, TO_SITE, clock() - timedelta(minutes=1))
    early = attempt(TO_SITE, FROM_SITE, clock() - timedelta(minutes=1))
    with pytest.raises(InvalidInput, match=r"offered_at .* is before the shipment's creation"):
        app.offer_handoff(shipment_id, early, site_user(), "offered_at")
    assert kinds(app) == before
    assert app.shipment(shipment_id, site_scope()).offered_to == ""


def test_no_receipt_before_the_pickup(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, units = created(app, facts, clock() - timedelta(hours=2))
    picked_up = clock() - timedelta(hours=1)
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, picked_up)
    offer(app, shipment_id, C1, TO_SITE, clock())
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"received_at .* is before its last handoff"):
        app.receive_shipment(
            shipment_id, units, C1, None, GMP, received_at=picked_up - timedelta(minutes=1)
        )
    assert kinds(app) == before
    received = picked_up + timedelta(minutes=30)
    view = app.receive_shipment(shipment_id, units, C1, None, GMP, received_at=received)
    assert view.status == "delivered" and view.received_at == received
    assert [e.received_at for e in events_named(app, "Delivered")] == [received]


def test_no_receipt_before_the_shipment_was_created(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, units = created(app, facts, courier_id="")
    offer(app, shipment_id, FROM_SITE, TO_SITE, clock())
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"received_at .* is before the shipment's creation"):
        app.receive_shipment(
            shipment_id, units, FROM_SITE, None, GMP, received_at=clock() - timedelta(minutes=1)
        )
    assert kinds(app) == before
    assert app.shipment(shipment_id, site_scope()).status == "created"


def test_a_receipt_time_in_the_future_is_invalid(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    shipment_id, units = created(app, facts, courier_id="")
    offer(app, shipment_id, FROM_SITE, TO_SITE, clock())
    with pytest.raises(InvalidInput, match=r"received_at .* is in the future"):
        app.receive_shipment(
            shipment_id, units, FROM_SITE, None, GMP, received_at=clock() + timedelta(hours=1)
        )


def test_the_window_is_judged_on_when_the_shipment_was_received(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """A fresh apheresis relay entered after the fact: collected 60 h ago (its 48 h window has
    ended by now), packed an hour later and received 31 h after collection, within it."""
    collected = clock() - timedelta(hours=60)
    units = [facts.package(din(1), window_starts_at=collected)]
    request = replace(new_shipment(units), created_at=collected + timedelta(hours=1))
    shipment_id = app.create_shipment(request, site_user()).shipment_id
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, collected + timedelta(hours=2))
    offer(app, shipment_id, C1, TO_SITE, collected + timedelta(hours=30))
    received = collected + timedelta(hours=31)
    view = app.receive_shipment(shipment_id, units, C1, None, GMP, received_at=received)
    assert view.status == "delivered" and not view.window_breached
    assert "StabilityWindowBreached" not in kinds(app)


# over HTTP: the whole service


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    specs = [f"{ORIGIN}:collection", f"{DESTINATION}:manufacturing", f"{SERVICE_SITE}:courier"]
    init_pki(directory, [parse_site_spec(s) for s in specs])
    return directory


def site(pki: Path, site_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site_id)}"}


def scan_body(at: datetime, **fields: str) -> dict[str, Any]:
    return {"idempotency_key": str(uuid4()), "scanned_at": at.isoformat(), **fields}


def test_a_thirty_hour_courier_relay_is_recorded_as_thirty_hours_over_http(
    client: TestClient,
    service: LogisticsService,
    pki: Path,
    facts: InMemoryFacts,
    tokens: CourierTokens,
) -> None:
    """Packed 30 h ago, carried by a courier and received now (no time given): the shipment
    and its events keep when it was packed and when it arrived."""
    packed = NOW - timedelta(hours=30)
    units = [facts.package(din(1), window_starts_at=packed - timedelta(hours=1))]
    body = {
        "operator": OPERATOR,
        "manifest": units,
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
    picked_up = packed + timedelta(minutes=30)
    assert client.post(
        f"{base}/scans", json=scan_body(picked_up, label=units[0]), headers=me
    ).is_success
    assert client.post(f"{base}/handoff", json=scan_body(picked_up), headers=me).is_success
    to_gmp = scan_body(NOW - timedelta(minutes=10), to_party=TO_SITE)
    assert client.post(f"{base}/offer", json=to_gmp, headers=me).is_success
    receipt = {"operator": OPERATOR, "scanned_labels": units, "from_party": "courier:C-17"}
    path = f"/v1/shipments/{shipment_id}/receipt"
    too_early = {**receipt, "received_at": (picked_up - timedelta(minutes=1)).isoformat()}
    refused = client.post(path, json=too_early, headers=site(pki, DESTINATION))
    assert refused.status_code == 422 and "received_at" in refused.json()["detail"]
    done = client.post(path, json=receipt, headers=site(pki, DESTINATION))
    assert done.status_code == 200, done.text
    shown = done.json()
    assert shown["status"] == "delivered" and not shown["window_breached"]
    assert datetime.fromisoformat(shown["created_at"]) == packed
    assert datetime.fromisoformat(shown["received_at"]) == NOW
    (creation,) = events_named(service.app, "Created")
    (delivery,) = events_named(service.app, "Delivered")
    assert delivery.received_at - creation.created_at == timedelta(hours=30)
