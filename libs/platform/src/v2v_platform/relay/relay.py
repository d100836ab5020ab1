"""The outbox relay: follows an application's notification log and publishes envelopes.

For each page of notifications: translate each stored event, chain it to its aggregate's
previous envelope, sign it, publish the page, wait for every acknowledgement, and only then
advance the recorded position and chain heads (atomically). A chain head also keeps the
running digest of its stream's signatures, which the checkpoints commit. Delivery is at-least-once;
republished envelopes are byte-identical, so consumers dedupe on (aggregate id, version).

An event the broker refuses for good stops the relay (`PublishingStopped`, logged as an ERROR
naming the event and its size): retrying cannot succeed, and skipping it would break its
aggregate's hash chain. The service then reports NOT_SERVING with that reason.

With a `Checkpointer` (issue 15), `run` also publishes the service's signed checkpoints between
pages: a prepared one left over first, then every checkpoint interval when heads changed, and
once more when it stops. A checkpoint the broker refuses for good stops the relay too: a relay
that cannot commit to its heads would leave its streams' tails unprotected.

Waiting (issue 18): with a `WakeSignal` (`relay.wake`) an idle relay waits for a save to its
outbox (in-process signal; PostgreSQL LISTEN/NOTIFY from other processes), at most
`fallback_poll_s`; without one it sleeps `idle_wait_s` between empty reads (the old way).

Sealing (issue 18): a page's envelopes are built once, hashed in chain order and signed on
signing threads meanwhile (`relay.sealing`), the same bytes `codec.build_envelope` and
`codec.encode` make; the publisher is librdkafka's or kafka-python's (`relay.process`).

Tracing: one PRODUCER span per published page, continuing the first traced event's recorded
trace and linking the others. Each record's Kafka headers carry its own trace: the page span's
context when the event belongs to the page span's trace (or recorded none), else the event's
recorded traceparent, so every consumer continues the trace of the request that stored it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from eventsourcing.persistence import OperationalError as EventStoreOperationalError
from kafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from v2v_platform import telemetry
from v2v_platform.checkpoints.merkle import signature_digest
from v2v_platform.envelope.codec import GENESIS_PREV_HASH, event_id_for
from v2v_platform.envelope.from_domain import EventTranslator, OutboundEvent
from v2v_platform.envelope.headers import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
    HEADER_TRACEPARENT,
)
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.health import Heartbeat, PartStopped
from v2v_platform.relay.publisher import OutboundRecord, PublishFailed, PublishRefused
from v2v_platform.relay.sealing import PageSealer, sealed_bytes
from v2v_platform.relay.state import ChainHead, RelayStateStore
from v2v_platform.relay.wake import DEFAULT_FALLBACK_POLL_S, WakeSignal

if TYPE_CHECKING:  # the checkpointer imports the relay package (publisher, state)
    from v2v_platform.checkpoints.checkpointer import Checkpointer

log = logging.getLogger(__name__)

MAX_SPAN_LINKS = 128  # traces a page span links beyond the one it continues

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    PublishFailed,
    KafkaError,
    psycopg.OperationalError,
    EventStoreOperationalError,
)


class NotificationSource(Protocol):
    """The part of an eventsourcing ApplicationRecorder the relay reads."""

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Any]: ...


class DomainEventMapper(Protocol):
    def to_domain_event(self, stored_event: Any) -> Any: ...


class Publisher(Protocol):
    def publish(self, records: Sequence[OutboundRecord]) -> None: ...


class ChainBroken(RuntimeError):
    """The event store holds an aggregate version the recorded chain head cannot precede."""


class PublishingStopped(PartStopped):
    """The broker refused an event for good: the relay publishes nothing more (later events
    would follow a gap in their hash chains). Events of the same page may have reached the
    broker already; they are published again, byte-identical, once the relay goes on."""


class _Unwatched:
    """The heartbeat of a relay nobody watches (the `v2v relay` process)."""

    def progressed(self) -> None:
        """Nobody to tell."""

    def waiting(self, error: BaseException) -> None:
        """Nobody to tell (the relay logs it)."""


@dataclass(frozen=True)
class PageResult:
    notifications: int
    published: int
    position: int


class OutboxRelay:
    def __init__(
        self,
        *,
        source: NotificationSource,
        mapper: DomainEventMapper,
        translator: EventTranslator,
        signer: SiteSigningKey,
        state: RelayStateStore,
        publisher: Publisher,
        topic: str,
        page_size: int = 500,
        checkpointer: Checkpointer | None = None,
        wake: WakeSignal | None = None,
        fallback_poll_s: float = DEFAULT_FALLBACK_POLL_S,
    ) -> None:
        self._source = source
        self._mapper = mapper
        self._translator = translator
        self._signer = signer
        self._sealer = PageSealer(signer)
        self._state = state
        self._publisher = publisher
        self._topic = topic
        self._page_size = page_size
        self._checkpointer = checkpointer
        self._wake = wake
        self._fallback_poll_s = fallback_poll_s
        self.published_total = 0

    @property
    def checkpointer(self) -> Checkpointer | None:
        return self._checkpointer

    def publish_page(self) -> PageResult:
        """Publish the next page of notifications; returns what was done."""
        if self._wake is not None:
            self._wake.clear()  # a save committed from now on wakes the next wait
        position = self._state.position()
        notifications = self._source.select_notifications(
            position, self._page_size, inclusive_of_start=False
        )
        if not notifications:
            return PageResult(0, 0, position)
        outbound = [self._translate(n) for n in notifications]
        with self._page_span(outbound) as span:
            records, heads = self._seal(outbound, span)
            try:
                self._publisher.publish(records)
            except PublishRefused as refused:
                raise PublishingStopped(_refusal(refused, records, outbound)) from refused
        last = int(notifications[-1].id)
        self._state.advance(last, heads)
        self.published_total += len(records)
        return PageResult(len(notifications), len(records), last)

    def publish_pending(self) -> int:
        """Publish until the log is exhausted; returns the number of envelopes published."""
        total = 0
        while (result := self.publish_page()).notifications:
            total += result.published
        return total

    def run(
        self,
        stop: threading.Event,
        idle_wait_s: float = 0.05,
        max_backoff_s: float = 5.0,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        """Publish until `stop` is set, telling `heartbeat` of each page done (with or without
        work) and each error waited out. A broker or database outage is waited out with backoff
        (nothing was advanced, so nothing is lost); a broken chain, an unmappable event or an
        event the broker refuses for good stops the relay, because skipping it would break the
        hash chain. An empty read is followed by a wait for the relay's wake signal (at most
        its fallback poll), or by a sleep of `idle_wait_s` for a relay without one. With a
        checkpointer, checkpoints are published between pages and once more after `stop` is
        set (a failure then is logged; the prepared checkpoint is published when the relay
        starts again)."""
        beat = heartbeat or _Unwatched()
        backoff = idle_wait_s
        while not stop.is_set():
            try:
                published = self.publish_page().notifications
                self._checkpoint(final=False, published=published)
            except TRANSIENT_ERRORS as error:
                beat.waiting(error)
                backoff = min(max(backoff * 2, 0.1), max_backoff_s)
                log.warning("relay to %s waiting %.1fs after: %s", self._topic, backoff, error)
                stop.wait(backoff)
                continue
            except PublishingStopped as stopped:
                log.error("relay to %s stopped: %s", self._topic, stopped)
                raise
            beat.progressed()
            backoff = idle_wait_s
            if not published:
                if self._wake is not None:
                    self._wake.wait(self._fallback_poll_s, stop)
                else:
                    stop.wait(idle_wait_s)
        try:
            self._checkpoint(final=True)
        except TRANSIENT_ERRORS as error:
            log.warning("relay to %s stopped without its last checkpoint: %s", self._topic, error)

    def _checkpoint(self, *, final: bool, published: int = 0) -> None:
        """The checkpointer's turn (none without one); a refusal for good stops the relay."""
        if self._checkpointer is None:
            return
        try:
            if final:
                self._checkpointer.checkpoint()
            else:
                self._checkpointer.tick(published)
        except PublishRefused as refused:
            raise PublishingStopped(
                f"the broker refused checkpoint of {self._topic} ({len(refused.record.value)}"
                f" bytes) on {refused.record.topic} for good: {refused.reason}; the relay"
                " publishes nothing more until it is resolved"
            ) from refused

    def _translate(self, notification: Any) -> OutboundEvent:
        event = self._mapper.to_domain_event(notification)
        outbound = self._translator.translate(event)
        if outbound is None:
            raise ChainBroken(
                f"notification {notification.id} ({type(event).__qualname__}) has no payload"
                " mapping; every stored event must be published to keep hash chains continuous"
            )
        return outbound

    @contextmanager
    def _page_span(self, outbound: list[OutboundEvent]) -> Iterator[Span]:
        """One PRODUCER span for a page: continues the first traced event's trace, links the
        traces of the others (at most MAX_SPAN_LINKS)."""
        traces: list[Span] = []
        seen: set[int] = set()
        for item in outbound:
            recorded = _recorded_span(item.traceparent)
            if recorded is not None and recorded.get_span_context().trace_id not in seen:
                seen.add(recorded.get_span_context().trace_id)
                traces.append(recorded)
                if len(traces) > MAX_SPAN_LINKS:
                    break
        parent = trace.set_span_in_context(traces[0]) if traces else None
        with telemetry.tracer().start_as_current_span(
            f"{self._topic} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            links=[Link(span.get_span_context()) for span in traces[1:]],
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self._topic,
                "messaging.operation.type": "publish",
                "messaging.batch.message_count": len(outbound),
            },
        ) as span:
            yield span

    def _seal(
        self, outbound: list[OutboundEvent], span: Span
    ) -> tuple[list[OutboundRecord], dict[str, ChainHead]]:
        """The page's records, sealed (`relay.sealing`: the bytes `codec.build_envelope` and
        `codec.encode` make), and the chain heads they lead to. Hashes are chained here in page
        order; the signatures are made meanwhile on the signing threads."""
        ids = {o.content.aggregate_id for o in outbound}
        before = self._state.heads(ids)
        heads = dict(before)
        bodies: list[tuple[bytes, bytes, str]] = []
        signing = self._sealer.signatures(())
        for item in outbound:
            content = item.content
            head = heads.get(content.aggregate_id)
            prev_hash = self._prev_hash(head, content.aggregate_id, content.aggregate_version)
            event_id = event_id_for(content.aggregate_id, content.aggregate_version)
            body, digest = self._sealer.body(content, prev_hash, event_id)
            heads[content.aggregate_id] = ChainHead(content.aggregate_version, digest)
            bodies.append((body, digest, event_id))
            signing.add(digest)
        signatures = signing.result()
        changed: dict[str, ChainHead] = {}
        records = []
        page_trace = span.get_span_context().trace_id
        page_headers = telemetry.inject_headers()  # the page span's context
        topic = self._topic
        for item, (body, digest, event_id), signature in zip(
            outbound, bodies, signatures, strict=True
        ):
            content = item.content
            aggregate_id = content.aggregate_id
            head = changed.get(aggregate_id) or before.get(aggregate_id)
            changed[aggregate_id] = ChainHead(
                content.aggregate_version, digest, _signatures(head, signature)
            )
            headers = [
                (HEADER_EVENT_TYPE, content.payload.DESCRIPTOR.full_name.encode()),
                (HEADER_SCHEMA_VERSION, str(content.schema_version).encode()),
                (HEADER_EVENT_ID, event_id.encode()),
                *_trace_headers(item.traceparent, page_trace, page_headers),
            ]
            records.append(
                OutboundRecord(
                    topic, content.coi.encode(), sealed_bytes(body, digest, signature), headers
                )
            )
        return records, changed

    @staticmethod
    def _prev_hash(head: ChainHead | None, aggregate_id: str, version: int) -> bytes:
        expected = (head.version if head else 0) + 1
        if version != expected:
            raise ChainBroken(
                f"aggregate {aggregate_id} version {version} follows recorded head"
                f" version {expected - 1}"
            )
        return head.hash if head else GENESIS_PREV_HASH


def _recorded_span(traceparent: str | None) -> Span | None:
    """The (non-recording) span a recorded traceparent names; None without a valid one."""
    context = telemetry.context_from_traceparent(traceparent)
    if context is None:
        return None
    span = trace.get_current_span(context)
    return span if span.get_span_context().is_valid else None


def _trace_headers(
    traceparent: str | None, page_trace: int, page_headers: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """A record's trace headers: the page span's context when the event is of the page span's
    trace or recorded none, else its recorded traceparent as it was recorded."""
    recorded = _recorded_span(traceparent)
    if traceparent is None or recorded is None:
        return page_headers
    if recorded.get_span_context().trace_id == page_trace:
        return page_headers
    return [(HEADER_TRACEPARENT, traceparent.encode())]


def _signatures(head: ChainHead | None, signature: bytes) -> bytes | None:
    """The stream's signature digest after `signature` (`merkle.signature_digest`); unknown
    (None) when the head before it has none (stored before the relay kept digests)."""
    if head is None:
        return signature_digest(b"", signature)
    if head.signatures is None:
        return None
    return signature_digest(head.signatures, signature)


def _refusal(
    refused: PublishRefused, records: list[OutboundRecord], outbound: list[OutboundEvent]
) -> str:
    """The refused event by type, aggregate, version and size, and the broker's reason."""
    index = next(i for i, record in enumerate(records) if record is refused.record)
    content = outbound[index].content
    return (
        f"the broker refused {content.payload.DESCRIPTOR.full_name} of {content.aggregate_type}"
        f" {content.aggregate_id} version {content.aggregate_version}"
        f" ({len(refused.record.value)} bytes) for good: {refused.reason}; the relay publishes"
        " nothing more until it is resolved"
    )
