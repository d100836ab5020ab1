"""The relay's signed checkpoints (issue 15 item 1), on in-memory state: chained by sequence
and prev_hash, a root over every head, only the changed heads carried, none when nothing
changed, one when the relay stops, and a checkpoint prepared before a crash published again
byte-identical instead of being rebuilt."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from v2v_platform import telemetry
from v2v_platform.checkpoints.checkpointer import MAX_CHANGED_HEADS, Checkpointer
from v2v_platform.checkpoints.envelopes import (
    CHECKPOINT_EVENT_TYPE,
    CHECKPOINT_TOPIC,
    CheckpointHead,
    checkpoint_stream_id,
    next_checkpoint,
    read_checkpoint,
)
from v2v_platform.checkpoints.merkle import Head, leaves_of, root_of, signature_digest
from v2v_platform.config import ConfigurationError, PublishingServiceSettings, load_settings
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.codec import Actor, encode
from v2v_platform.envelope.headers import HEADER_EVENT_ID, HEADER_EVENT_TYPE
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay, PublishingStopped
from v2v_platform.relay.process import relay_actor
from v2v_platform.relay.publisher import PublishFailed, PublishRefused
from v2v_platform.relay.state import ChainHead
from v2v_platform.relay.topics import V2V_TOPICS
from v2v_platform.service_runtime import relay_settings_for
from v2v_platform.testing.outbox_app import SPEC, ChainApp
from v2v_platform.testing.producing import eventually
from v2v_testkit.golden import envelope as golden

TOPIC = "v2v.intake.events.v1"
COIS = ["CHA123425000017", "CHA123425000025", "CHA123425000033"]
ACTOR = Actor("system", "intake relay", "collection")
AT = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="module")
def tracing() -> None:
    telemetry.setup_tracing("test-relay-checkpoints")


class Broker:
    """Stands in for Kafka: acknowledges; `lose_ack_of_checkpoints` delivers a checkpoint but
    fails before the acknowledgement (the relay dies between publish and mark)."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []
        self.lose_ack_of_checkpoints = False

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)
        if self.lose_ack_of_checkpoints and records[0].topic == CHECKPOINT_TOPIC:
            raise PublishFailed("connection lost before the acknowledgement")

    def on(self, topic: str) -> list[OutboundRecord]:
        return [r for r in self.records if r.topic == topic]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _app() -> ChainApp:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for coi in COIS:
        app.start(coi)
        app.note(coi, 1)
    return app


def _checkpointer(
    state: InMemoryRelayState, broker: Broker, clock: Clock, interval_s: float = 60.0
) -> Checkpointer:
    return Checkpointer(
        state=state,
        publisher=broker,
        signer=golden.golden_signer(),
        topic=TOPIC,
        actor=ACTOR,
        interval_s=interval_s,
        clock=lambda: AT,
        monotonic=clock,
    )


def _relay(
    app: ChainApp, state: InMemoryRelayState, broker: Broker, checkpointer: Checkpointer
) -> OutboxRelay:
    return OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=SPEC.translator,
        signer=golden.golden_signer(),
        state=state,
        publisher=broker,
        topic=TOPIC,
        page_size=4,
        checkpointer=checkpointer,
    )


def _event_heads(broker: Broker) -> dict[str, Head]:
    """Each stream's head as read back from the event records (the last version wins)."""
    heads: dict[str, Head] = {}
    for record in broker.on(TOPIC):
        envelope = decode(record.value)
        heads[envelope.aggregate_id] = Head(envelope.aggregate_version, envelope.hash)
    return heads


def test_checkpoints_chain_commit_to_every_head_and_carry_only_the_changed() -> None:
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    checkpointer = _checkpointer(state, broker, clock)
    relay = _relay(app, state, broker, checkpointer)
    relay.publish_pending()
    assert checkpointer.tick() == []  # the interval has not passed
    clock.now = 60.0
    [first] = checkpointer.tick()
    heads = _event_heads(broker)
    payload = read_checkpoint(first.envelope)
    assert (payload.sequence, first.envelope.prev_hash) == (1, b"")
    assert payload.topic == TOPIC and payload.position == state.position() == 6
    assert {h.aggregate_id: Head(h.version, h.hash) for h in payload.heads} == heads
    assert payload.tree_size == 3 and payload.root == root_of(leaves_of(heads))

    app.note(COIS[1], 2)
    relay.publish_pending()
    clock.now = 119.0
    assert checkpointer.tick() == []
    clock.now = 120.0
    [second] = checkpointer.tick()
    heads = _event_heads(broker)
    payload = read_checkpoint(second.envelope)
    assert payload.sequence == 2 and second.envelope.prev_hash == first.envelope.hash
    changed = [(h.aggregate_id, h.version) for h in payload.heads]
    assert changed == [(decode(broker.on(TOPIC)[-1].value).aggregate_id, 3)]
    assert payload.tree_size == 3 and payload.root == root_of(leaves_of(heads))

    records = broker.on(CHECKPOINT_TOPIC)
    assert len(records) == 2
    verifier = ChainVerifier(golden.golden_key_ring())
    for offset, record in enumerate(records):
        envelope = decode(record.value)
        assert record.key == b"HOSP-A"
        assert dict(record.headers)[HEADER_EVENT_TYPE] == CHECKPOINT_EVENT_TYPE.encode()
        assert dict(record.headers)[HEADER_EVENT_ID] == envelope.event_id.encode()
        assert envelope.aggregate_id == checkpoint_stream_id(TOPIC, "HOSP-A")
        assert (envelope.actor.user_id, envelope.actor.role) == ("system", "collection")
        assert verifier.feed_bytes(record.value, Location(CHECKPOINT_TOPIC, 0, offset)) == []


def test_no_checkpoint_when_nothing_changed() -> None:
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    checkpointer = _checkpointer(state, broker, clock)
    _relay(app, state, broker, checkpointer).publish_pending()
    clock.now = 60.0
    assert len(checkpointer.tick()) == 1
    clock.now = 600.0
    assert checkpointer.tick() == []
    assert checkpointer.checkpoint() == []
    assert len(broker.on(CHECKPOINT_TOPIC)) == 1


def test_the_relay_checkpoints_once_when_it_stops() -> None:
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    checkpointer = _checkpointer(state, broker, clock, interval_s=1e9)
    relay = _relay(app, state, broker, checkpointer)
    stop = threading.Event()
    worker = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_wait_s": 0.01})
    worker.start()
    try:
        while state.position() < 6 and worker.is_alive():
            stop.wait(0.01)
        assert broker.on(CHECKPOINT_TOPIC) == []  # far from the interval
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    [record] = broker.on(CHECKPOINT_TOPIC)
    payload = read_checkpoint(decode(record.value))
    assert payload.sequence == 1 and len(payload.heads) == 3
    assert payload.root == root_of(leaves_of(_event_heads(broker)))


def test_a_checkpoint_prepared_before_a_crash_is_published_again_identical() -> None:
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    crashed = _checkpointer(state, broker, clock)
    _relay(app, state, broker, crashed).publish_pending()
    broker.lose_ack_of_checkpoints = True
    clock.now = 60.0
    with pytest.raises(PublishFailed):
        crashed.tick()
    [sent] = broker.on(CHECKPOINT_TOPIC)
    prepared = state.prepared_checkpoint()
    assert prepared is not None and prepared.envelope == sent.value
    assert state.checkpoint_head().sequence == 0

    # restarted: more events first, then the relay's first turn republishes, not rebuilds
    broker.lose_ack_of_checkpoints = False
    app.note(COIS[0], 2)
    restarted = _checkpointer(state, broker, Clock())
    _relay(app, state, broker, restarted).publish_pending()
    [again] = restarted.tick()
    assert again.republished
    first, second = broker.on(CHECKPOINT_TOPIC)
    assert first == second  # topic, key, value and headers: byte-identical
    assert state.prepared_checkpoint() is None
    assert state.checkpoint_head().sequence == 1
    assert state.checkpoint_head().hash == decode(sent.value).hash

    [following] = restarted.checkpoint()
    payload = read_checkpoint(following.envelope)
    assert payload.sequence == 2 and following.envelope.prev_hash == decode(sent.value).hash
    assert [h.version for h in payload.heads] == [3]  # only the stream that moved since
    assert payload.root == root_of(leaves_of(_event_heads(broker)))


class RefusingBroker(Broker):
    def publish(self, records: Sequence[OutboundRecord]) -> None:
        if records[0].topic == CHECKPOINT_TOPIC:
            from kafka.errors import TopicAuthorizationFailedError

            raise PublishRefused(records[0], TopicAuthorizationFailedError())
        super().publish(records)


def test_a_checkpoint_refused_for_good_stops_the_relay() -> None:
    app, state, broker, clock = _app(), InMemoryRelayState(), RefusingBroker(), Clock()
    relay = _relay(app, state, broker, _checkpointer(state, broker, clock))
    clock.now = 60.0
    with pytest.raises(PublishingStopped, match=r"refused checkpoint of v2v\.intake\.events\.v1"):
        relay.run(threading.Event(), idle_wait_s=0.01)


def test_the_checkpoints_topic_is_created_with_the_others_and_signed_as_the_context() -> None:
    assert V2V_TOPICS[-1] == CHECKPOINT_TOPIC and len(V2V_TOPICS) == 6
    assert relay_actor("release") == Actor("system", "release relay", "qc")
    assert relay_actor("logistics") == Actor("system", "logistics relay", "courier")


def test_the_checkpoint_interval_is_a_validated_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = {
        "site_id": "HOSP-A",
        "pki_dir": tmp_path,
        "grpc_address": "127.0.0.1:0",
        "http_port": 0,
        "kafka_bootstrap": "127.0.0.1:9092",
        "sqlite_path": tmp_path / "events.sqlite",
    }
    assert load_settings(PublishingServiceSettings, **given).checkpoint_interval_s == 60.0
    monkeypatch.setenv("V2V_CHECKPOINT_INTERVAL_S", "0")
    with pytest.raises(ConfigurationError, match="V2V_CHECKPOINT_INTERVAL_S"):
        load_settings(PublishingServiceSettings, **given)
    monkeypatch.setenv("V2V_CHECKPOINT_INTERVAL_S", "2.5")
    settings = load_settings(PublishingServiceSettings, **given)
    key = tmp_path / "sites" / "HOSP-A" / "signing.key"
    key.parent.mkdir(parents=True)
    golden.golden_signer().save(key)
    monkeypatch.delenv("V2V_CHECKPOINT_INTERVAL_S")
    assert relay_settings_for("intake", settings).checkpoint_interval_s == 2.5


def _signature_digests(broker: Broker) -> dict[str, bytes]:
    """Each stream's running digest of its envelope signatures, from the event records."""
    digests: dict[str, bytes] = {}
    for record in broker.on(TOPIC):
        envelope = decode(record.value)
        digests[envelope.aggregate_id] = signature_digest(
            digests.get(envelope.aggregate_id, b""), envelope.signature
        )
    return digests


def test_checkpoint_heads_commit_each_streams_signature_digest() -> None:
    """Signatures are outside the envelope hash: the relay keeps each stream's signature
    digest with its chain head and the checkpoint commits it beside the head (issue 15)."""
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    checkpointer = _checkpointer(state, broker, clock)
    relay = _relay(app, state, broker, checkpointer)
    relay.publish_pending()
    digests = _signature_digests(broker)
    assert {a: h.signatures for a, h in state.all_heads().items()} == digests
    [first] = checkpointer.checkpoint()
    payload = read_checkpoint(first.envelope)
    assert {h.aggregate_id: h.signatures for h in payload.heads} == digests
    # the Merkle leaf stays the head alone (version and hash)
    assert payload.root == root_of(leaves_of(_event_heads(broker)))
    app.note(COIS[1], 2)
    relay.publish_pending()
    [second] = checkpointer.checkpoint()
    digests = _signature_digests(broker)
    [changed] = read_checkpoint(second.envelope).heads
    assert changed.signatures == digests[changed.aggregate_id] != b""


def test_a_head_stored_without_a_digest_keeps_its_stream_without_one() -> None:
    """A head stored before the relay kept digests has none; later heads of that stream stay
    without one (empty in the checkpoint), other streams get theirs."""
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    relay = _relay(app, state, broker, _checkpointer(state, broker, clock))
    relay.publish_pending()
    old, *others = sorted(state.all_heads())
    head = state.all_heads()[old]
    state.advance(state.position(), {old: ChainHead(head.version, head.hash)})
    for coi in COIS:
        app.note(coi, 2)
    relay.publish_pending()
    heads = state.all_heads()
    assert heads[old].signatures is None
    assert all(heads[a].signatures for a in others)
    assert relay.checkpointer is not None
    [published] = relay.checkpointer.checkpoint()
    committed = {h.aggregate_id: h.signatures for h in read_checkpoint(published.envelope).heads}
    digests = _signature_digests(broker)
    assert committed == {old: b"", **{a: digests[a] for a in others}}


def test_a_checkpoint_is_due_before_the_interval_once_enough_events_were_published() -> None:
    """A backlog published over many streams must not wait for the interval and then make one
    checkpoint too large for the broker (which stops the relay): after `max_changed_heads`
    events a checkpoint is due whatever the interval."""
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    checkpointer = Checkpointer(
        state=state,
        publisher=broker,
        signer=golden.golden_signer(),
        topic=TOPIC,
        actor=ACTOR,
        interval_s=1e9,
        clock=lambda: AT,
        monotonic=clock,
        max_changed_heads=4,
    )
    relay = _relay(app, state, broker, checkpointer)  # pages of 4 events
    stop = threading.Event()
    worker = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_wait_s": 0.01})
    worker.start()
    try:
        eventually(lambda: broker.on(CHECKPOINT_TOPIC), "a checkpoint before the interval")
        assert state.position() == 6  # 2 streams changed by page 1, + 2 events of page 2
    finally:
        stop.set()
        worker.join(timeout=10)
    [record] = broker.on(CHECKPOINT_TOPIC)
    payload = read_checkpoint(decode(record.value))
    assert len(payload.heads) == 3 and clock.now == 0.0


def test_a_restarted_checkpointer_counts_the_heads_changed_before_it() -> None:
    app, state, broker, clock = _app(), InMemoryRelayState(), Broker(), Clock()
    _relay(app, state, broker, _checkpointer(state, broker, clock)).publish_pending()
    assert broker.on(CHECKPOINT_TOPIC) == []  # 6 events, 3 streams changed, interval not passed
    restarted = Checkpointer(
        state=state,
        publisher=broker,
        signer=golden.golden_signer(),
        topic=TOPIC,
        actor=ACTOR,
        clock=lambda: AT,
        monotonic=clock,
        max_changed_heads=3,
    )
    [published] = restarted.tick()
    assert len(read_checkpoint(published.envelope).heads) == 3


def test_the_largest_checkpoint_the_bound_allows_is_far_below_the_broker_limit() -> None:
    heads = {
        str(uuid.uuid5(uuid.NAMESPACE_OID, str(n))): Head(1_000_000, bytes(32), bytes(32))
        for n in range(MAX_CHANGED_HEADS + 500)  # the bound, and one full page beyond it
    }
    envelope, _ = next_checkpoint(
        topic=TOPIC,
        committed=heads,
        changed=heads,
        previous=CheckpointHead(),
        position=10**12,
        signer=golden.golden_signer(),
        actor=ACTOR,
        at=AT,
    )
    assert len(encode(envelope)) < 512 * 1024  # the broker refuses above 1 MiB
