"""Browser-test fixtures: Debian's Chromium driven by Playwright (`browser`, from
`v2v_testkit.browser`, shared with the console's browser tests), and a live HTTP server."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, ViewportSize

from v2v_logistics.bootstrap import bootstrap
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.testing.infra import PostgresDatabase
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    SERVICE_SITE,
    InMemoryFacts,
    new_shipment,
    site_user,
)

from .scenario import CourierScenario

PASSWORD = "kim's courier password"
PHONE: ViewportSize = {"width": 390, "height": 844}
START_TIMEOUT_S = 20.0


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A fresh phone-sized browser context (own localStorage) and its page."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


class LiveServer:
    """Serves an ASGI app with uvicorn on a free local port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture
def courier_scenario(
    tmp_path: Path, postgres_database: PostgresDatabase
) -> Iterator[CourierScenario]:
    """The real logistics service on PostgreSQL, serving its HTTP API and the courier page.

    Which units exist comes from other contexts' events; here the unit-facts PORT is filled in
    memory (the page and the courier API are under test, not the Kafka projection, which the
    logistics integration test covers).
    """
    pki = tmp_path / "pki"
    init_pki(pki, [parse_site_spec(f"{SERVICE_SITE}:courier")])
    fin = f"{random.choice('ABCDEFGHJKLMN')}{random.randrange(10_000):04d}"
    coi, other_coi = issue_coi(fin, 25, 1).value, issue_coi(fin, 25, 2).value
    manifest = [str(issue_din(fin, 25, n)) for n in (1, 2)]
    other = str(issue_din(fin, 25, 3))
    collected = datetime.now(UTC) - timedelta(hours=2)
    facts = InMemoryFacts()
    for unit in manifest:
        facts.package(unit, coi, window_starts_at=collected)
    facts.package(other, other_coi, window_starts_at=collected)
    settings = LogisticsSettings(
        site_id=SERVICE_SITE, pki_dir=pki, postgres_dsn=postgres_database.dsn
    )
    service = bootstrap(settings, facts=facts)
    try:
        token = service.tokens.issue("C-17", "Kim Courier", ORIGIN, PASSWORD)
        shipment = service.app.create_shipment(
            new_shipment(manifest, courier_id="C-17"), site_user()
        )
        with LiveServer(service.http_app) as server:
            yield CourierScenario(
                server.url,
                token,
                "C-17",
                "Kim Courier",
                shipment.shipment_id,
                ORIGIN,
                manifest,
                other,
                DESTINATION,
                PASSWORD,
                coi,
            )
    finally:
        service.stop()
