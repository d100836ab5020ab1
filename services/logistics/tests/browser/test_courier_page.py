"""The courier page in headless Chromium on a phone-sized screen (issue 4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from .scenario import CourierScenario

pytestmark = [pytest.mark.integration]


def log_in(page: Page, scenario: CourierScenario) -> None:
    page.goto(f"{scenario.url}/courier")
    page.fill("#token-input", scenario.token)
    page.fill("#password-input", scenario.password)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#who-name")).to_have_text(scenario.courier_name)


def open_shipment(page: Page, scenario: CourierScenario) -> None:
    page.click(f"[data-shipment-id='{scenario.shipment_id}']")
    expect(page.locator("#from-party")).to_have_value(scenario.origin_party)
    expect(page.locator("#scan-input")).to_be_focused()


def scan(page: Page, label: str) -> None:
    """As a keyboard-wedge scanner does: the label's characters, then Enter."""
    page.locator("#scan-input").focus()
    page.keyboard.type(label)
    page.keyboard.press("Enter")


def dismiss(page: Page) -> None:
    page.click("#result-dismiss")
    expect(page.locator("#result")).to_be_hidden()


def server_shipment(scenario: CourierScenario) -> dict[str, object]:
    answer = httpx.get(
        f"{scenario.url}/v1/courier/shipments",
        headers={"Authorization": f"Bearer {scenario.token}"},
        timeout=5,
    )
    answer.raise_for_status()
    by_id = {s["shipment_id"]: s for s in answer.json()["shipments"]}
    shipment: dict[str, object] = by_id[scenario.shipment_id]
    return shipment


def test_the_page_asks_the_couriers_password_at_login_only(
    phone: Page, courier_scenario: CourierScenario
) -> None:
    """Issue 13: the token names the courier; the password proves the person, once."""
    me = f"{courier_scenario.url}/v1/courier/me"
    token = {"Authorization": f"Bearer {courier_scenario.token}"}
    phone.goto(f"{courier_scenario.url}/courier")
    phone.fill("#token-input", courier_scenario.token)
    phone.fill("#password-input", "not my password")
    phone.click("#login-form button[type=submit]")
    expect(phone.locator("#login-error")).to_have_text(
        "This courier token or password is not valid (wrong, revoked or expired)."
    )
    expect(phone.locator("#courier-view")).to_be_hidden()
    assert httpx.get(me, headers=token, timeout=5).status_code == 401  # not signed in

    log_in(phone, courier_scenario)
    assert httpx.get(me, headers=token, timeout=5).status_code == 200
    open_shipment(phone, courier_scenario)
    scan(phone, courier_scenario.manifest[0])
    expect(phone.locator("#result-title")).to_have_text("ACCEPTED")
    expect(phone.locator("input[type=password]:visible")).to_have_count(0)


def test_a_courier_scans_every_bag_and_takes_custody(
    phone: Page, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    log_in(phone, courier_scenario)
    open_shipment(phone, courier_scenario)
    result = phone.locator("#result")
    for index, din in enumerate(courier_scenario.manifest):
        scan(phone, din)
        expect(result).to_have_class("result accepted")
        expect(phone.locator("#result-title")).to_have_text("ACCEPTED")
        expect(phone.locator("#result-message")).to_contain_text(f"Bag {din} checked")
        if index == 0:
            phone.screenshot(path=tmp_path / "accepted.png")
        dismiss(phone)
    expect(phone.locator("#result-message")).to_contain_text("Every bag is scanned")

    phone.click("#handoff")

    expect(result).to_have_class("result accepted")
    expect(phone.locator("#result-message")).to_have_text(
        "Handoff confirmed: you now hold this shipment."
    )
    expect(phone.locator("#shipment-custodian")).to_have_text(courier_scenario.courier_party)
    assert server_shipment(courier_scenario)["custodian"] == courier_scenario.courier_party


def test_the_courier_holding_a_shipment_hands_it_over_to_its_destination(
    phone: Page, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    """Issue 13: custody passes only from the holder who offered it, by the holder's own call."""
    log_in(phone, courier_scenario)
    open_shipment(phone, courier_scenario)
    expect(phone.locator("#offer-form")).to_be_hidden()
    for din in courier_scenario.manifest:
        scan(phone, din)
        dismiss(phone)
    phone.click("#handoff")
    dismiss(phone)

    destination = f"site:{courier_scenario.destination_site_id}"
    expect(phone.locator("#offer-form")).to_be_visible()
    expect(phone.locator("#scan-form")).to_be_hidden()
    expect(phone.locator("#offer-to")).to_have_value(destination)
    phone.click("#offer-form button[type=submit]")

    expect(phone.locator("#result")).to_have_class("result accepted")
    expect(phone.locator("#result-title")).to_have_text("HANDED OVER")
    expect(phone.locator("#result-message")).to_have_text(
        f"Handed over to {destination}: they take it by scanning every bag."
    )
    phone.screenshot(path=tmp_path / "handed-over.png")
    dismiss(phone)
    expect(phone.locator("#offered-note")).to_have_text(f"Handed over to {destination}.")
    shipment = server_shipment(courier_scenario)
    assert (shipment["custodian"], shipment["offered_to"]) == (
        courier_scenario.courier_party,
        destination,
    )


def test_a_bag_of_another_patient_shows_a_full_screen_stop(
    phone: Page, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    log_in(phone, courier_scenario)
    open_shipment(phone, courier_scenario)

    scan(phone, courier_scenario.other_coi_din)

    result = phone.locator("#result")
    expect(result).to_have_class("result stop")
    expect(phone.locator("#result-title")).to_have_text("STOP")
    expect(phone.locator("#result-message")).to_have_text(
        "STOP — this bag belongs to another patient (other COI). Do not take it."
    )
    phone.screenshot(path=tmp_path / "stop.png")
    box = result.bounding_box()
    assert box is not None
    screen = phone.evaluate("() => [window.innerWidth, window.innerHeight]")
    assert [round(box["width"]), round(box["height"])] == screen  # covers the whole screen
    expect(phone.locator("#result-dismiss")).to_be_focused()
    dismiss(phone)
    expect(phone.locator("#scan-input")).to_be_focused()
    assert server_shipment(courier_scenario)["scanned"] == []


def test_scans_made_offline_are_sent_once_when_the_connection_returns(
    phone: Page, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    log_in(phone, courier_scenario)
    open_shipment(phone, courier_scenario)
    phone.context.set_offline(True)
    expect(phone.locator("#connection")).to_contain_text("Offline")

    for din in courier_scenario.manifest:
        scan(phone, din)
        expect(phone.locator("#result-title")).to_have_text("SAVED — NOT YET CHECKED")
        dismiss(phone)

    count = len(courier_scenario.manifest)
    expect(phone.locator("#pending-title")).to_have_text(f"Pending ({count})")
    expect(phone.locator("#pending-list li")).to_have_count(count)
    phone.screenshot(path=tmp_path / "offline.png")
    assert server_shipment(courier_scenario)["scanned"] == []

    phone.context.set_offline(False)

    expect(phone.locator("#pending-title")).to_have_text("Pending (0)")
    expect(phone.locator("#connection")).to_have_text("Online")
    expect(phone.locator("#synced-list li.done")).to_have_count(count)
    expect(phone.locator("#result-message")).to_have_text(
        f"{count} saved scan(s) sent and accepted."
    )
    assert server_shipment(courier_scenario)["scanned"] == courier_scenario.manifest
