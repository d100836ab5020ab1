"""The local single-node Kafka broker, through `infra/kafka/kafka.sh` with its state under a
directory of our own (`V2V_STATE_DIR`), so the demo's or a test's broker never mixes its
topics with another one's. `down` then `up` reuses the same data and ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from v2v_platform.kafka_security import environment_options
from v2v_platform.relay.topics import V2V_TOPICS
from v2v_platform.testing.infra import find_repo_root

TOPIC_PARTITIONS = 6  # the services' default (V2V_TOPIC_PARTITIONS)
TOPICS_TIMEOUT_S = 60.0
UP_TIMEOUT_S = 900.0  # the first start may fetch the broker's jars
DOWN_TIMEOUT_S = 120.0


class BrokerError(RuntimeError):
    """kafka.sh failed; the message carries the end of its output."""


def kafka_script() -> Path:
    root = find_repo_root(Path.cwd(), Path(__file__))
    if root is None:
        raise BrokerError("infra/kafka/kafka.sh not found above the working directory")
    return root / "infra" / "kafka" / "kafka.sh"


@dataclass(frozen=True)
class LocalBroker:
    """The broker whose state lives in `state_dir/kafka`."""

    state_dir: Path

    def up(self) -> str:
        """Start it (or find it running); its bootstrap address."""
        output = self._run("up", UP_TIMEOUT_S)
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if not lines:
            raise BrokerError("kafka.sh up printed no bootstrap address")
        return lines[-1]

    def down(self) -> None:
        self._run("down", DOWN_TIMEOUT_S)

    def running(self) -> bool:
        script = kafka_script()
        status = subprocess.run(
            ["bash", str(script), "status"],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return status.returncode == 0

    def _env(self) -> dict[str, str]:
        return {**os.environ, "V2V_STATE_DIR": str(self.state_dir.resolve())}

    def _run(self, command: str, timeout_s: float) -> str:
        script = kafka_script()
        try:
            done = subprocess.run(
                ["bash", str(script), command],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerError(f"kafka.sh {command} did not finish within {timeout_s:g}s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-20:])
            raise BrokerError(f"kafka.sh {command} exited {done.returncode}:\n{tail}")
        return done.stdout


def prepare_topics(bootstrap: str, partitions: int = TOPIC_PARTITIONS) -> None:
    """Create every v2v topic once, before the services start, and wait until the broker
    describes each with all its partitions: services starting together on a fresh broker
    would otherwise race to create them. An external broker's V2V_KAFKA_* security settings
    (from the environment, as the services get them) apply."""
    wanted = list(V2V_TOPICS)  # the five event topics and v2v.checkpoints.v1
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="v2v-simulator-topics", **environment_options()
    )
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        deadline = time.monotonic() + TOPICS_TIMEOUT_S
        while _partition_counts(admin, wanted) != dict.fromkeys(wanted, partitions):
            if time.monotonic() > deadline:
                counts = _partition_counts(admin, wanted)
                raise BrokerError(f"topics not ready after {TOPICS_TIMEOUT_S:g}s: {counts}")
            time.sleep(0.2)
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    return {str(d["name"]): len(d.get("partitions") or []) for d in admin.describe_topics(topics)}
