"""The console in headless Chromium against the real running system (issue 16 item 4), black
box, on PostgreSQL and Kafka: a hospital logs in with its site token; the chains list; a chain
whose apheresis shipment had a temperature excursion (its chart rendered with the excursion
shaded); a live alert on /console/alerts within 2 s of the upload that raises it (the page
is opened first); the programme's KPI charts; another hospital's chain neither listed nor
readable (404).

Screenshots of the list, chain, programme and alerts pages at desktop (1280x800) and tablet
(768x1024) sizes are written to test-artifacts/console/ at the repository root (with the
measured alert latency in latency.json), for a person to look at.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from v2v.logistics.v1 import logistics_service_pb2 as logistics_pb
from v2v.projection.v1 import projection_service_pb2 as projection_pb
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.collection import collect, enrol
from v2v_simulator.journey.context import Journey
from v2v_simulator.journey.flow import apheresis_leg, run_journey
from v2v_simulator.journey.shipping import (
    Leg,
    hand_to_courier,
    hand_to_destination,
    logger_id,
    readings,
    relay_couriers,
)
from v2v_simulator.runner import open_slots
from v2v_simulator.running import RunningConsortium
from v2v_simulator.scenarios import PatientPlan

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
TABLET: ViewportSize = {"width": 768, "height": 1024}
LIVE_ALERT_WITHIN_S = 2.0


def journeys(running: RunningConsortium, *plans: PatientPlan) -> list[Journey]:
    now = datetime.now(UTC)
    made = [Journey(plan, running.world, plan_calendar(plan, now)) for plan in plans]
    open_slots(running.world, made)
    return made


def known_to_projection(journey: Journey) -> None:
    projection = journey.world.clients.projection()

    def chain() -> bool:
        try:
            call(projection.GetChain, projection_pb.GetChainRequest(coi=journey.coi))
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    journey.poll(chain, f"the projection to know {journey.coi}")


def to_destination(journey: Journey, leg: Leg) -> str:
    """The shipment of `leg` created, carried and offered to its destination: what remains
    is the upload of the logger's readings (as `shipping.ship` does up to there)."""
    times = journey.calendar.cycles[0].shipment
    (courier,) = relay_couriers(journey, leg, 1)
    create = logistics_pb.CreateShipmentRequest(
        operator=leg.origin_operator,
        manifest_dins=leg.dins,
        condition=leg.condition,
        destination_site_id=leg.destination,
        shipper_id=f"BOX-{journey.plan.number}",
        data_logger_id=logger_id(journey, leg),
        courier_id=courier,
        created_at=timestamp(times.created),
    )
    origin = journey.world.clients.logistics(leg.origin)
    shipment = journey.once_known(
        lambda: call(origin.CreateShipment, create).shipment, "logistics to know the bag"
    )
    hand_to_courier(journey, leg, shipment.shipment_id, courier, leg.giver, times.picked_up)
    hand_to_destination(journey, leg, shipment.shipment_id, courier, times.arrived)
    return str(shipment.shipment_id)


@pytest.fixture
def contexts(browser: Browser) -> Iterator[dict[str, BrowserContext]]:
    made = {
        "desktop": browser.new_context(viewport=DESKTOP),
        "tablet": browser.new_context(viewport=TABLET, has_touch=True),
    }
    for context in made.values():
        context.set_default_timeout(15_000)
    try:
        yield made
    finally:
        for context in made.values():
            context.close()


def log_in(page: Page, base: str, pki: Path, site_id: str) -> None:
    page.goto(f"{base}/console/")
    expect(page.locator("#login-form")).to_be_visible()  # redirected to the login
    page.fill("#token-input", "not a token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-message")).to_contain_text("does not open the console")
    page.fill("#token-input", issue_site_token(pki, site_id))
    page.click("#login-form button[type=submit]")
    expect(page.locator("#who-site")).to_have_text(site_id)
    expect(page.locator("#chains-table")).to_be_visible()


def shoot(page: Page, name: str, size: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)


def test_the_console_in_a_browser(
    consortium_system: RunningConsortium, contexts: dict[str, BrowserContext], browser: Browser
) -> None:
    running = consortium_system
    consortium = running.system.consortium
    first, second = consortium.hospitals
    base = running.system.http_base("projection", consortium.auditor_site)
    pki = running.system.pki
    ours, theirs = journeys(
        running,
        PatientPlan(1, first, cryo=False, apheresis_bags=1),
        PatientPlan(2, second, cryo=False, apheresis_bags=1),
    )
    run_journey(theirs)  # the other hospital's patient, enrolment to infusion (KPIs)
    enrol(ours)
    collect(ours, 1)
    leg = apheresis_leg(ours, excursion=True)
    shipment_id = to_destination(ours, leg)
    known_to_projection(ours)
    known_to_projection(theirs)

    desktop = contexts["desktop"].new_page()
    log_in(desktop, base, pki, first.site_id)
    desktop.goto(f"{base}/console/alerts")
    expect(desktop.locator("#live-status")).to_have_attribute("data-state", "live")
    row = desktop.locator(f'tr[data-coi="{ours.coi}"][data-kind="temperature-excursion"]')
    expect(row).to_have_count(0)

    upload = readings(ours, leg, shipment_id, ours.calendar.cycles[0].shipment.readings)
    destination = running.clients.logistics(leg.destination)
    started = time.monotonic()
    recorded = call(destination.UploadTemperatureReadings, upload)
    row.wait_for(state="visible", timeout=15_000)
    latency_s = time.monotonic() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "latency.json").write_text(
        json.dumps({"live_alert_after_upload_s": round(latency_s, 3)}) + "\n"
    )
    assert recorded.excursions, "the upload recorded no excursion"
    assert latency_s <= LIVE_ALERT_WITHIN_S, f"the live alert took {latency_s:.2f} s"
    row.locator("input[name=note]").fill("logger reviewed with QA")
    row.locator("button", has_text="Acknowledge").click()  # a same-origin form post
    acknowledged = desktop.locator(f'tr[data-coi="{ours.coi}"][data-kind="temperature-excursion"]')
    expect(acknowledged).to_contain_text(f"acknowledged by {first.site_id}")
    expect(acknowledged).to_contain_text("logger reviewed with QA")

    for size, context in contexts.items():
        page = desktop if size == "desktop" else context.new_page()
        if size != "desktop":
            log_in(page, base, pki, first.site_id)

        page.goto(f"{base}/console/")
        expect(page.locator(f'tr[data-coi="{ours.coi}"]')).to_have_count(1)
        expect(page.locator(f'tr[data-coi="{theirs.coi}"]')).to_have_count(0)
        shoot(page, "chains", size)

        page.goto(f"{base}/console/chains/{ours.coi}")
        shipment = page.locator(f'[data-shipment-id="{shipment_id}"]')
        expect(shipment.locator("svg")).to_have_count(1)
        expect(shipment.locator('svg [id="readings"]')).to_have_count(1)
        expect(shipment.locator('svg [id="excursion-0"]')).to_have_count(1)
        expect(shipment.locator("table.excursions tbody tr")).to_have_count(1)
        expect(page.locator("#integrity-verdict")).to_be_visible()
        shoot(page, "chain", size)

        page.goto(f"{base}/console/programme")
        for chart in ("vein-to-vein", "stage-times", "manufacturing-success", "rates-over-time"):
            expect(page.locator(f"#chart-{chart} svg")).to_be_visible()
        shoot(page, "programme", size)

        page.goto(f"{base}/console/alerts")
        expect(page.locator(f'tr[data-coi="{ours.coi}"]').first).to_be_visible()
        expect(page.locator(f'tr[data-coi="{theirs.coi}"]')).to_have_count(0)
        shoot(page, "alerts", size)

        refused = page.goto(f"{base}/console/chains/{theirs.coi}")
        assert refused is not None and refused.status == 404

    auditor = browser.new_context(viewport=DESKTOP)
    try:
        page = auditor.new_page()
        log_in(page, base, pki, consortium.auditor_site)
        expect(page.locator(f'tr[data-coi="{theirs.coi}"]')).to_have_count(1)  # reads all
        page.goto(f"{base}/console/programme")
        expect(page.locator('#chart-vein-to-vein svg [id="bars"]')).to_have_count(1)
        shoot(page, "programme-auditor", "desktop")
    finally:
        auditor.close()
