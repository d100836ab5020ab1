"""Untrusted records on every topic of a running consortium (issue 12, proof (b)).

Before any patient is enrolled, every partition of every context topic receives a record that
is not an envelope, and every topic a well-formed envelope signed with a key the consortium
never issued. Then two patients travel the whole system. Every service and the projection
core must stay alive and ready, every chain must complete with exactly the alerts its plan
implies (nothing forged is folded), and the auditor's `v2v audit verify` must report the
planted records, and only them, as breaks.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from google.protobuf.struct_pb2 import Struct
from kafka import KafkaProducer

from v2v_platform.envelope import encode
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_simulator.audit import verify
from v2v_simulator.runner import run_journeys
from v2v_simulator.running import RunningConsortium
from v2v_simulator.scenarios import plan_patients
from v2v_simulator.summary import settled

pytestmark = pytest.mark.integration
CONTEXTS = ("intake", "manufacturing", "logistics", "release", "infusion")
PARTITIONS = 6
PATIENTS = 2
NOT_AN_ENVELOPE = b"\x00\xffnot an envelope"
LOCATION = re.compile(r"v2v\.[a-z]+\.events\.v1\[\d+\]@\d+")


def forged(context: str) -> bytes:
    """A well-formed envelope claiming to come from a real site, signed by a stranger's key."""
    stranger = SiteSigningKey.generate("GMP-1")
    content = EnvelopeContent(
        coi=issue_coi("Z9999", 26, 1).value,
        aggregate_type="Forged",
        aggregate_id="00000000-0000-4000-8000-00000000f00d",
        aggregate_version=1,
        payload=Struct(),
        schema_version=1,
        recorded_at=datetime.now(UTC),
        site_id="GMP-1",
        actor=Actor("u-x", "Mallory", context),
    )
    return encode(build_envelope(content, b"", stranger))


def plant(bootstrap: str) -> set[str]:
    """Bad records on every partition of every topic (the services created the topics when
    they started); where each landed, as `topic[partition]@offset`."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    planted: set[str] = set()
    try:
        for context in CONTEXTS:
            topic = f"v2v.{context}.events.v1"
            partitions = sorted(producer.partitions_for(topic) or ())
            assert len(partitions) == PARTITIONS, f"{topic}: partitions {partitions}"
            records = [(NOT_AN_ENVELOPE, p) for p in partitions] + [(forged(context), 0)]
            for value, partition in records:
                sent = producer.send(topic, value, partition=partition).get(timeout=30)
                planted.add(f"{topic}[{sent.partition}]@{sent.offset}")
    finally:
        producer.close()
    return planted


def test_untrusted_records_on_every_topic_change_nothing_and_stop_nobody(
    consortium_system: RunningConsortium,
) -> None:
    running = consortium_system
    planted = plant(running.bootstrap)

    plans = plan_patients(running.system.consortium, PATIENTS, seed=12)
    result = run_journeys(running.world, plans, show_progress=False)

    assert result.failure is None, f"{result.failure}\n{running.system.deaths()}"
    running.system.check_alive()
    auditor = running.system.consortium.auditor_site
    for process in running.system.services.values():
        assert process.healthy(running.system.pki, auditor), f"{process.name} is not ready"
    chains = settled(running.clients, result.journeys, timeout_s=120)
    assert {chain.stage for chain in chains.values()} == {"infused"}

    verdict = verify(running.system.pki, running.bootstrap)
    assert not verdict.clean
    assert verdict.last_line.startswith("BREAKS FOUND")
    broken = set(LOCATION.findall(verdict.output))
    assert broken == planted, verdict.output[-3000:]
