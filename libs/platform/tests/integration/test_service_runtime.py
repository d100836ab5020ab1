"""A service's consumer thread survives a failed batch: the batch comes again, nothing skipped."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.protobuf.struct_pb2 import Struct

from v2v_platform.auth.identity import Role
from v2v_platform.consumer import Delivered, EnvelopeConsumer
from v2v_platform.envelope import Actor, AuthorshipPolicy, EnvelopeGate, KeyRing, SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.relay import ensure_topics
from v2v_platform.service_runtime import ServiceRuntime
from v2v_platform.testing.producing import SignedEnvelopeProducer, eventually

pytestmark = pytest.mark.integration
TOPIC = "v2v.intake.events.v1"


class FailsOnce:
    """A projection whose first write fails as a dropped database connection would."""

    def __init__(self, ours: set[str]) -> None:
        self.ours = ours
        self.failed = False
        self.applied: list[tuple[str, int]] = []

    def __call__(self, unit: Any, delivered: Delivered) -> None:
        envelope = delivered.envelope
        if envelope.coi not in self.ours:
            return
        if not self.failed:
            self.failed = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        self.applied.append((envelope.coi, envelope.aggregate_version))


def _publish(kafka: str, cois: list[str], signer: SiteSigningKey) -> None:
    producer = SignedEnvelopeProducer(kafka, TOPIC, signer, Actor("u-1", "Test User", "collection"))
    for coi in cois:
        payload = Struct()
        payload.update({"coi": coi})
        producer.publish(coi, payload)
    producer.close()


def test_a_failed_batch_is_delivered_again(
    kafka_bootstrap: str, postgres_database: Any, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap, [TOPIC], 6)
    fin = f"{random.choice('ABCDEFGHJKLMN')}{random.randrange(10_000):04d}"
    cois = [str(issue_coi(fin, 25, n)) for n in range(1, 11)]
    signer = SiteSigningKey.generate("HOSP-A")
    _publish(kafka_bootstrap, cois, signer)
    ring = KeyRing()
    ring.add("HOSP-A", signer.public_key, [Role.COLLECTION])
    gate = EnvelopeGate(ring, AuthorshipPolicy(event_packages={TOPIC: "google.protobuf"}))
    runtime = ServiceRuntime("intake", "HOSP-A", tmp_path)
    store = runtime.consumer_store("runtime-test", postgres_database.dsn, None, lambda c: None)
    projection = FailsOnce(set(cois))
    consumer = EnvelopeConsumer(
        bootstrap=kafka_bootstrap,
        group_id=f"runtime-test-{fin}",
        topics=[TOPIC],
        store=store,
        apply=projection,
        gate=gate,
        max_poll_records=500,
    )
    runtime.start_consumer("test-consumer", consumer)
    try:
        eventually(lambda: len(projection.applied) >= len(cois), "the batch to be applied")
    finally:
        runtime.stop()
    assert projection.failed
    assert sorted(projection.applied) == sorted((coi, 1) for coi in cois)
