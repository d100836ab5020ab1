"""`v2v audit` against a real Kafka broker: a generated history is published (keyed by COI,
as the relays do) to five topics of this test run, exported, verified and replayed.

The topics are unique to the run (`v2v.audit-<run>-<context>.events.v1`, passed with
--topics), so the export holds exactly the records produced here even on a shared broker.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner, Result

from v2v_platform.envelope.codec import decode
from v2v_platform.relay.publisher import ensure_topics
from v2v_projection.audit.cli import app
from v2v_projection.history_file import read_history
from v2v_testkit.audit import write_key_ring
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

pytestmark = [pytest.mark.integration]

SEED = 63_000
PATIENTS = 5
PARTITIONS = 3


@dataclass(frozen=True)
class Published:
    bootstrap: str
    generated: GeneratedHistory
    topics: dict[str, str]  # generated topic -> this run's topic
    keys: Path

    @property
    def topic_option(self) -> str:
        return ",".join(self.topics.values())


@pytest.fixture(scope="module")
def published(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Published:
    run = uuid.uuid4().hex[:10]
    generated = generate_history(SEED, PATIENTS)
    topics = {topic: topic.replace("v2v.", f"v2v.audit-{run}-", 1) for topic in generated.by_topic}
    ensure_topics(kafka_bootstrap, topics.values(), PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        futures = [
            producer.send(topics[topic], key=decode(value).coi.encode(), value=value)
            for topic, values in generated.by_topic.items()
            for value in values
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()
    keys = write_key_ring(tmp_path_factory.mktemp("audit-kafka") / "pki", generated.keys)
    return Published(kafka_bootstrap, generated, topics, keys)


def _run(published: Published, *args: str) -> Result:
    env = {"V2V_KAFKA_BOOTSTRAP": published.bootstrap, "COLUMNS": "240"}
    return CliRunner().invoke(app, [*args, "--topics", published.topic_option], env=env)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_export_verify_and_replay_a_published_history(published: Published, tmp_path: Path) -> None:
    out = tmp_path / "history.v2v"
    result = _run(published, "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "total" in result.stdout and str(published.generated.event_count) in result.stdout

    header, records = read_history(out)
    assert header.source == f"kafka://{published.bootstrap}"
    assert sorted(header.topics) == sorted(published.topics.values())
    assert len(header.extents) == 5 * PARTITIONS
    assert sum(1 for _ in records) == published.generated.event_count

    result = _run(published, "verify", "--file", str(out), "--keys", str(published.keys))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"clean: {published.generated.event_count} records")

    coi = published.generated.cois[0]
    from_file = _json(_run(published, "replay", "--file", str(out), "--coi", coi, "--json"))
    from_kafka = _json(_run(published, "replay", "--coi", coi, "--json"))
    assert from_file["coi"] == coi
    assert from_file == from_kafka


def test_verify_reads_kafka_directly(published: Published) -> None:
    result = _run(published, "verify", "--keys", str(published.keys))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"clean: {published.generated.event_count} records")


def test_replay_from_kafka_lists_every_chain_produced(published: Published) -> None:
    document = _json(_run(published, "replay", "--json"))
    assert sorted(c["coi"] for c in document["chains"]) == sorted(published.generated.cois)


def test_report_from_kafka(published: Published, tmp_path: Path) -> None:
    coi = published.generated.cois[-1]
    out = tmp_path / "report.html"
    result = _run(published, "report", "--coi", coi, "--out", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<svg" in html and coi in html and f"kafka://{published.bootstrap}" in html


def test_an_unknown_topic_is_an_input_error(published: Published) -> None:
    result = CliRunner().invoke(
        app,
        ["verify", "--keys", str(published.keys), "--topics", "v2v.nothing-here.events.v1"],
        env={"V2V_KAFKA_BOOTSTRAP": published.bootstrap},
    )
    assert result.exit_code == 2
    assert "topic(s) not on the broker" in result.stderr
    assert "v2v.nothing-here.events.v1" in result.stderr
