"""`v2v audit` with signed checkpoints against a real Kafka broker (issue 15): a generated
history and its services' checkpoints (keyed by site id) published to topics of this run,
then exported, verified, pulled to an external copy, verified against it, and proven."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner, Result

from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.envelope.codec import decode
from v2v_platform.relay.publisher import ensure_topics
from v2v_projection.audit.cli import app
from v2v_projection.history_file import read_history
from v2v_testkit.audit import write_key_ring
from v2v_testkit.checkpointed import with_checkpoints
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

pytestmark = [pytest.mark.integration]

SEED = 63_015
PATIENTS = 3
PARTITIONS = 3


@dataclass(frozen=True)
class Published:
    bootstrap: str
    generated: GeneratedHistory
    topics: list[str]
    checkpoint_topic: str
    checkpoints: int
    keys: Path


@pytest.fixture(scope="module")
def published(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Published:
    run = uuid.uuid4().hex[:10]
    generated = generate_history(SEED, PATIENTS)
    renamed = {
        topic.replace("v2v.", f"v2v.audit-{run}-", 1): values
        for topic, values in generated.by_topic.items()
    }
    by_topic = with_checkpoints(renamed, generated.signers)
    checkpoint_topic = f"v2v.audit-{run}-checkpoints.v1"
    by_topic[checkpoint_topic] = by_topic.pop(CHECKPOINT_TOPIC)
    ensure_topics(kafka_bootstrap, list(by_topic), PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        futures = []
        for topic, values in by_topic.items():
            for value in values:
                envelope = decode(value)
                key = envelope.site_id if topic == checkpoint_topic else envelope.coi
                futures.append(producer.send(topic, key=key.encode(), value=value))
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()
    keys = write_key_ring(
        tmp_path_factory.mktemp("audit-checkpoints-kafka") / "pki", generated.keys
    )
    checkpoints = len(by_topic[checkpoint_topic])
    return Published(
        kafka_bootstrap, generated, list(by_topic), checkpoint_topic, checkpoints, keys
    )


def _run(published: Published, *args: str, topics: list[str] | None = None) -> Result:
    env = {"V2V_KAFKA_BOOTSTRAP": published.bootstrap, "COLUMNS": "240"}
    option = ",".join(topics or published.topics)
    return CliRunner().invoke(app, [*args, "--topics", option], env=env)


def test_export_verify_pull_and_prove_with_checkpoints(
    published: Published, tmp_path: Path
) -> None:
    events = published.generated.event_count
    out = tmp_path / "history.v2v"
    exported = _run(published, "export", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    header, records = read_history(out)
    assert published.checkpoint_topic in header.topics
    assert sum(1 for _ in records) == events + published.checkpoints

    clean = f"clean: {events + published.checkpoints} records"
    for source in (["--file", str(out)], []):
        result = _run(published, "verify", *source, "--keys", str(published.keys))
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(clean)
        assert f" {published.checkpoints} checkpoints, 0 breaks" in result.stdout

    copy = tmp_path / "checkpoints.v2v"
    pulled = _run(
        published, "checkpoints", "pull", "--out", str(copy), topics=[published.checkpoint_topic]
    )
    assert pulled.exit_code == 0, pulled.output
    assert f"{published.checkpoints} checkpoints in {copy}" in pulled.stdout
    checked = _run(published, "verify", "--keys", str(published.keys), "--checkpoints", str(copy))
    assert checked.exit_code == 0, checked.output

    coi = published.generated.cois[0]
    proven = _run(published, "prove", "--coi", coi, "--keys", str(published.keys), "--json")
    assert proven.exit_code == 0, proven.output
    proofs = json.loads(proven.stdout.split("\nproven: ")[0])["proofs"]
    assert proofs and all(p["verified"] for p in proofs)

    replayed = _run(published, "replay", "--json")
    assert replayed.exit_code == 0, replayed.output
    chains = json.loads(replayed.stdout)["chains"]
    assert sorted(c["coi"] for c in chains) == sorted(published.generated.cois)
