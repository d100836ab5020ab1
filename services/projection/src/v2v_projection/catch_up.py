"""Ready only once caught up: the readiness of a full read replica (ADR 0011).

A projection replica answers every read from its own fold, so it must not take reads before
the fold holds the history: GET /ready and gRPC health stay NOT_SERVING (a `catch-up` health
problem, not ready but live) from the moment its consumer starts until, for EVERY partition of
the topics it reads, the end offset minus the next offset its store holds (the partition's
beginning when it holds none) is at most `max_lag` records (V2V_CATCH_UP_MAX_LAG, default 100).
The start-up load from the store is done before (bootstrap); this is what came after it.

Every partition of the topics, not only those assigned to the replica's consumer: a replica is
a full read replica or it is not ready. Two replicas wrongly sharing one consumer group (each
assigned part of the partitions) are therefore never ready, instead of answering partially.

The measuring runs in a thread of its own (`run`, a part of the runtime's health watched for
liveness), beside the consume loop rather than in it: a broker that does not answer delays a
measurement, never a poll. Every `interval_s` (0.5 s) it measures, through a librdkafka admin
client of its own without a group (`KafkaEndOffsets`: ListOffsets needs no group, so no ACL
beyond the topics' read; read_committed, as the consumer reads), the beginning and end
offsets of every partition in one request each, and through the projection its stored offsets.
Once caught up the replica stays ready (a burst of new events later is lag, not a reason to
take every replica out of the Service at once; a stalled consumer is the stall bound's job),
the client is closed and the thread waits for the service to stop. A failed measurement keeps the
replica not ready, says why, and is tried again at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka.admin import AdminClient

from v2v_platform.health import Problem, describe_error
from v2v_platform.service_runtime import TRANSIENT
from v2v_projection.kafka_client import offsets_of, open_admin
from v2v_projection.writer_process import StoreWriteFailed

log = logging.getLogger("v2v.projection")
PART = "catch-up"
KIND = "catching-up"
DEFAULT_INTERVAL_S = 0.5
OFFSETS_TIMEOUT_S = 10.0  # a broker that does not answer: a failed measurement

Partition = tuple[str, int]
Offsets = Mapping[Partition, int]


class TopicOffsets(Protocol):
    """The beginning and end offsets of every partition of the topics read."""

    def measure(self) -> tuple[Offsets, Offsets]: ...

    def close(self) -> None: ...


class KafkaEndOffsets:
    """`TopicOffsets` from the broker, through a librdkafka admin client (opened on the first
    measure; an unreachable broker is a measurement that failed, with its reason, raised as a
    kafka-python KafkaError). `client_options`: librdkafka options
    (`kafka_security.librdkafka_options`; kafka-python's security names are renamed)."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        client_options: Mapping[str, object] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = list(topics)
        self._options = dict(client_options or {})
        self._admin: AdminClient | None = None

    def measure(self) -> tuple[Offsets, Offsets]:
        if self._admin is None:
            self._admin = open_admin(self._bootstrap, self._options)
        return offsets_of(self._admin, self._topics, OFFSETS_TIMEOUT_S)

    def close(self) -> None:
        self._admin = None  # an admin client has nothing to close: its threads end with it


@dataclass(frozen=True)
class Lag:
    """How far the stored offsets are behind the end offsets."""

    records: int  # summed over the partitions
    behind: int  # partitions more than the bound behind
    partitions: int
    worst: int  # the largest lag of one partition

    def within(self, max_lag: int) -> bool:
        return self.worst <= max_lag


def lag_of(beginning: Offsets, end: Offsets, stored: Offsets, max_lag: int) -> Lag:
    """The lag of `stored` (next offsets) behind `end`, a partition without a stored offset
    counting from its beginning."""
    lags = [
        max(0, last - max(stored.get(partition, 0), beginning.get(partition, 0)))
        for partition, last in end.items()
    ]
    return Lag(sum(lags), sum(1 for lag in lags if lag > max_lag), len(lags), max(lags, default=0))


class CatchUp:
    """Whether the replica has caught up: a health condition (`problems`) that `run` (or each
    `check`) brings up to date."""

    def __init__(
        self,
        offsets: TopicOffsets,
        stored: Callable[[], Offsets],
        *,
        max_lag: int = 100,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self._offsets = offsets
        self._stored = stored
        self.max_lag = max_lag
        self.interval_s = interval_s
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._caught_up = False
        self._state = "lag not measured yet"
        self.lag: Lag | None = None

    @property
    def caught_up(self) -> bool:
        return self._caught_up

    def run(self, stop: threading.Event) -> None:
        """Check every `interval_s` until caught up, then wait for `stop` (a part that ends
        before the service stops would make it unhealthy)."""
        try:
            while not stop.is_set() and not self.check():
                stop.wait(self.interval_s)
        finally:
            self.close()
        stop.wait()

    def check(self) -> bool:
        """Measure the lag now, latch once caught up; whether the replica is caught up. A
        broker or store it cannot reach is no error: its reason is kept for the report."""
        if self._caught_up:
            return True
        try:
            beginning, end = self._offsets.measure()
            lag = lag_of(beginning, end, self._stored(), self.max_lag)
        except (*TRANSIENT, StoreWriteFailed) as error:
            with self._lock:
                self._state = f"lag not measured: {describe_error(error)}"
            return False
        with self._lock:
            self.lag = lag
            if lag.within(self.max_lag):
                self._caught_up = True
            else:
                self._state = (
                    f"{lag.records} records behind, {lag.behind} of {lag.partitions} partitions "
                    f"more than {self.max_lag} behind"
                )
        if self._caught_up:
            log.info(
                "caught up in %.1f s: %d partitions, at most %d records behind (bound %d)",
                time.monotonic() - self._started,
                lag.partitions,
                lag.worst,
                self.max_lag,
            )
        return self._caught_up

    def problems(self) -> Iterable[Problem]:
        """The `catch-up` problem while not caught up: not ready, still live."""
        if self._caught_up:
            return ()
        with self._lock:
            state = self._state
        cause = "catching up with the topics before taking reads"
        return (Problem(PART, KIND, cause, f"{PART}: {cause}: {state}"),)

    def close(self) -> None:
        try:
            self._offsets.close()
        except TRANSIENT as error:
            log.warning("closing the catch-up offsets client: %s", describe_error(error))
