"""Test helpers: signed envelopes onto a topic as another context's relay would put them, and
waiting on a condition until a deadline (never a fixed sleep)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import Message
from kafka import KafkaProducer

from v2v_platform.envelope import Actor, EnvelopeContent, SiteSigningKey, build_envelope, encode
from v2v_platform.envelope.headers import HEADER_EVENT_TYPE

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0) -> T:
    """The probe's first truthy answer; AssertionError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


class SignedEnvelopeProducer:
    """Publishes chained, signed envelopes on `topic` (one aggregate stream per COI), for tests
    in which that context's own service is not the thing under test. `client_options`: how
    it authenticates to the broker (`v2v_platform.kafka_security.client_options`)."""

    def __init__(
        self,
        kafka: str,
        topic: str,
        signer: SiteSigningKey,
        actor: Actor,
        aggregate_type: str = "Therapy",
        client_options: Mapping[str, object] | None = None,
    ) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=kafka, acks="all", **dict(client_options or {})
        )
        self._topic = topic
        self._signer = signer
        self._actor = actor
        self._aggregate_type = aggregate_type
        self._run = f"{random.getrandbits(64):016x}"
        self._heads: dict[str, tuple[int, bytes]] = {}

    def publish(self, coi: str, payload: Message) -> None:
        aggregate_id = f"{self._aggregate_type.lower()}-{self._run}-{coi}"
        version, prev_hash = self._heads.get(aggregate_id, (0, b""))
        content = EnvelopeContent(
            coi=coi,
            aggregate_type=self._aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version + 1,
            payload=payload,
            schema_version=1,
            recorded_at=datetime.now(UTC),
            site_id=self._signer.site_id,
            actor=self._actor,
        )
        envelope = build_envelope(content, prev_hash, self._signer)
        self._heads[aggregate_id] = (version + 1, envelope.hash)
        headers = [(HEADER_EVENT_TYPE, envelope.event_type.encode())]
        future = self._producer.send(
            self._topic, key=coi.encode(), value=encode(envelope), headers=headers
        )
        future.get(timeout=30)

    def close(self) -> None:
        self._producer.close()
