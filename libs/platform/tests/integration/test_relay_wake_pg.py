"""A relay running as its own process on PostgreSQL wakes when another process saves
(LISTEN on its outbox's channel; the recorder NOTIFYs in the save's transaction): with its
fallback poll at 60 s, every save is published long before the poll would find it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from v2v_platform.config import EventStoreSettings
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.testing.outbox_app import SITE_ID, ChainApp
from v2v_platform.testing.producing import eventually

pytestmark = pytest.mark.integration

SPEC_REFERENCE = "v2v_platform.testing.outbox_app:SPEC"
FALLBACK_POLL_S = "60"
WITHIN_S = 20.0  # well inside the fallback poll: only a wake-up can publish this soon


def _position(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute(
                "SELECT position FROM v2v_relay_position WHERE relay = 'intake-outbox'"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def _reached(dsn: str, position: int) -> bool:
    return _position(dsn) >= position


def test_a_relay_process_on_postgresql_wakes_when_another_process_saves(
    kafka_bootstrap: str, postgres_database: Any, tmp_path: Path
) -> None:
    dsn = postgres_database.dsn
    SiteSigningKey.generate(SITE_ID).save(tmp_path / "signing.key")
    app = ChainApp(env=EventStoreSettings(postgres_dsn=dsn).eventsourcing_env())
    coi = str(issue_coi("A1234", 26, random.randrange(1, 999_000)))
    app.start(coi)
    env = {
        **os.environ,
        "V2V_CONTEXT": "intake",
        "V2V_SITE_ID": SITE_ID,
        "V2V_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "V2V_POSTGRES_DSN": dsn,
        "V2V_RELAY_FALLBACK_POLL_S": FALLBACK_POLL_S,
    }
    log = tmp_path / "relay.log"
    with log.open("wb") as sink:
        relay = subprocess.Popen(
            [sys.executable, "-m", "v2v_platform.cli", "relay", "--spec", SPEC_REFERENCE],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(lambda: _position(dsn) >= 1 or relay.poll() is not None, "the first page")
        assert relay.poll() is None, log.read_text()[-4000:]
        channel = app.recorder.channel_name  # type: ignore[attr-defined]
        assert f"PostgreSQL NOTIFY {channel}" in log.read_text()
        for seq in range(3):  # each save after the relay went idle
            app.note(coi, seq)
            last = int(app.recorder.max_notification_id() or 0)
            eventually(partial(_reached, dsn, last), f"save {seq} published", WITHIN_S)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)
        app.close()
    assert relay.returncode == 0, log.read_text()[-4000:]
