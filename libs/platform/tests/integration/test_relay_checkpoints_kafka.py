"""Signed checkpoints end to end (issue 15 item 1): a relay wired as a service wires it (its
settings, PostgreSQL state, real Kafka) publishes its events, then checkpoints of them on
v2v.checkpoints.v1; read back from the broker, the checkpoints verify (signature with the key
ring, hash chain, sequence) and each root is recomputed from the heads of the events read back
from the event topic. Also: the checkpoint state on PostgreSQL, written ahead, additive."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from v2v_platform.checkpoints.envelopes import (
    CHECKPOINT_TOPIC,
    CheckpointHead,
    checkpoint_stream_id,
    fold_heads,
    read_checkpoint,
)
from v2v_platform.checkpoints.merkle import Head, leaves_of, root_of, signature_digest
from v2v_platform.envelope import ChainVerifier, KeyRing, SiteSigningKey, decode
from v2v_platform.ids import issue_coi
from v2v_platform.relay import (
    ChainHead,
    CheckpointStateError,
    PostgresRelayState,
    PreparedCheckpoint,
)
from v2v_platform.relay.process import RelaySettings, build_relay
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.outbox_app import SITE_ID, SPEC, Chain, ChainApp
from v2v_platform.testing.producing import eventually

pytestmark = pytest.mark.integration
TOPIC = "v2v.intake.events.v1"
H1, H2, H3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def test_checkpoints_on_kafka_verify_against_the_events_read_back(
    kafka_bootstrap: str, postgres_database: Any, tmp_path: Path
) -> None:
    signer = SiteSigningKey.generate(SITE_ID)  # this test's own key: its checkpoints are ours
    signer.save(tmp_path / "signing.key")
    settings = RelaySettings(
        context="intake",
        site_id=SITE_ID,
        signing_key_file=tmp_path / "signing.key",
        kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_database.dsn,
        relay_page_size=25,
        checkpoint_interval_s=1.0,
    )
    runtime = build_relay(SPEC, settings)
    app: ChainApp = runtime.application
    checkpointer = runtime.relay.checkpointer
    assert checkpointer is not None
    fin = f"{random.choice('ABCDEFGHJKLMN')}{random.randrange(10_000):04d}"
    cois = [str(issue_coi(fin, 25, n)) for n in range(1, 41)]
    for coi in cois:
        app.start(coi)
        app.note(coi, 1)
    stop = threading.Event()
    worker = threading.Thread(target=runtime.relay.run, args=(stop,))
    worker.start()
    try:
        eventually(
            lambda: checkpointer.published_total >= 1 and not runtime.state.changed_heads(),
            "a first checkpoint of every stream",
        )
        for coi in cois[::3]:
            app.note(coi, 2)
        eventually(
            lambda: checkpointer.published_total >= 2 and not runtime.state.changed_heads(),
            "a checkpoint of the streams that moved",
        )
    finally:
        stop.set()
        worker.join(timeout=60)
        runtime.close()
    assert not worker.is_alive()

    ours = {str(Chain.create_id(coi)) for coi in cois}
    ring = KeyRing()
    ring.add(SITE_ID, signer.public_key)
    event_verifier = ChainVerifier(ring)
    events: dict[tuple[str, int], bytes] = {}
    signatures: dict[tuple[str, int], bytes] = {}
    for location, record in read_topic(kafka_bootstrap, TOPIC):
        envelope = decode(record.value)
        if envelope.aggregate_id in ours:
            assert event_verifier.feed(envelope, location) == []
            events[(envelope.aggregate_id, envelope.aggregate_version)] = envelope.hash
            signatures[(envelope.aggregate_id, envelope.aggregate_version)] = envelope.signature
    final_heads: dict[str, Head] = {}
    for (aggregate_id, version), digest in sorted(events.items()):
        # each head also commits the running digest of its stream's signatures (issue 15)
        before = final_heads[aggregate_id].signatures if version > 1 else b""
        final_heads[aggregate_id] = Head(
            version, digest, signature_digest(before, signatures[(aggregate_id, version)])
        )
    assert len(final_heads) == 40 and len(events) == 40 * 2 + len(cois[::3])

    mine = [
        (location, decode(record.value))
        for location, record in read_topic(kafka_bootstrap, CHECKPOINT_TOPIC)
        if record.key == SITE_ID.encode() and decode(record.value).signing_key_id == signer.key_id
    ]
    assert len(mine) >= 2
    verifier = ChainVerifier(ring)
    committed: dict[str, Head] = {}
    previous = CheckpointHead()
    for location, envelope in mine:
        assert verifier.feed(envelope, location) == []  # hash, signature, prev_hash chain
        if envelope.aggregate_version <= previous.sequence:
            continue  # a republished copy (written ahead): identical, already checked
        checkpoint = read_checkpoint(envelope)
        assert envelope.aggregate_id == checkpoint_stream_id(TOPIC, SITE_ID)
        assert checkpoint.sequence == previous.sequence + 1
        assert envelope.prev_hash == previous.hash
        committed = fold_heads(committed, checkpoint)
        for head in checkpoint.heads:  # every head carried is an event on the topic
            assert events[(head.aggregate_id, head.version)] == head.hash
        assert checkpoint.tree_size == len(committed)
        assert checkpoint.root == root_of(leaves_of(committed))
        previous = CheckpointHead(checkpoint.sequence, envelope.hash)
    assert committed == final_heads  # the last checkpoint commits to every stream's head
    assert read_checkpoint(mine[-1][1]).root == root_of(leaves_of(final_heads))
    assert {h.aggregate_id for h in read_checkpoint(mine[-1][1]).heads} <= {
        str(Chain.create_id(coi)) for coi in cois[::3]
    }


def test_postgres_checkpoint_state_is_written_ahead_and_additive(postgres_database: Any) -> None:
    dsn = postgres_database.dsn
    with psycopg.connect(dsn, autocommit=True) as connection:  # a store made before issue 15
        connection.execute(
            "CREATE TABLE v2v_relay_position (relay text PRIMARY KEY, position bigint NOT NULL)"
        )
        connection.execute(
            "CREATE TABLE v2v_relay_chain_head (relay text NOT NULL, aggregate_id text NOT NULL,"
            " version bigint NOT NULL, hash bytea NOT NULL, PRIMARY KEY (relay, aggregate_id))"
        )
        connection.execute("INSERT INTO v2v_relay_position VALUES ('intake-outbox', 4)")
        connection.execute(
            "INSERT INTO v2v_relay_chain_head VALUES ('intake-outbox', 'a', 4, %s)", (H1,)
        )
    state = PostgresRelayState(dsn, "intake-outbox")
    assert state.position() == 4 and state.changed_heads() == {"a": ChainHead(4, H1)}
    assert state.checkpoint_head() == CheckpointHead() and state.prepared_checkpoint() is None
    state.advance(6, {"b": ChainHead(1, H2)})
    first = PreparedCheckpoint(1, H3, b"envelope-1", {"a": 4, "b": 1})
    state.prepare_checkpoint(first)
    state.advance(7, {"b": ChainHead(2, H3)})
    with pytest.raises(CheckpointStateError):
        state.prepare_checkpoint(PreparedCheckpoint(2, H1, b"envelope-2", {}))
    state.close()

    reopened = PostgresRelayState(dsn, "intake-outbox")  # a crash before the acknowledgement
    assert reopened.prepared_checkpoint() == first
    reopened.checkpoint_done(first)
    assert reopened.prepared_checkpoint() is None
    assert reopened.checkpoint_head() == CheckpointHead(1, H3)
    assert reopened.changed_heads() == {"b": ChainHead(2, H3)}
    assert reopened.all_heads() == {"a": ChainHead(4, H1), "b": ChainHead(2, H3)}
    with pytest.raises(CheckpointStateError):
        reopened.checkpoint_done(first)
    reopened.advance(8, {"a": ChainHead(5, H2)})
    assert set(reopened.changed_heads()) == {"a", "b"}
    reopened.close()
    other = PostgresRelayState(dsn, "other-outbox")
    assert other.checkpoint_head() == CheckpointHead() and other.all_heads() == {}
    other.close()
