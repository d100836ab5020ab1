"""Whether a service's moving parts are alive and progressing: the truth its health reports.

Every thread a `ServiceRuntime` runs is a *part* (the relay, each consumer, the projection's
alert hub). A part that **stopped** before the service did (its thread died, or it stopped on
purpose at an error it cannot get past, such as a record the broker refuses for good) makes the
service neither ready nor live. A part that reports progress (the relay after each page, a
consumer after each poll: a completed cycle, with or without work) and made none for longer
than the stall bound (`stall_after_s`, V2V_STALL_AFTER_S, default 60 s) makes the service not
ready: a broker or database outage waited out with backoff is not progress. Each reason names
its part: "relay stopped: ...", "facts-consumer: no progress for 75 s: <last error>".

Ready (gRPC health of the server and of its API services, GET /ready) = no part stopped or
stalled. Live (gRPC health service `v2v.liveness`, GET /live) = no part stopped: a dead thread
does not come back inside the process, only a restart helps, whereas a stall (an outage) is
waited out.

Kept free of gRPC and FastAPI imports: `python -m v2v_platform.healthcheck` reads its names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

DEFAULT_STALL_AFTER_S = 60.0
LIVENESS_SERVICE = "v2v.liveness"
"""The gRPC health service name whose status is the liveness (no part stopped)."""
DETAIL_METADATA_KEY = "v2v-health-detail"
"""Trailing metadata of a health Check that is not SERVING: the reasons, one line."""
MAX_ERROR_CHARS = 500

Clock = Callable[[], float]


class Heartbeat(Protocol):
    """What a part's loop tells the health: a completed cycle, or an error it waits out."""

    def progressed(self) -> None: ...

    def waiting(self, error: BaseException) -> None: ...


class PartStopped(Exception):
    """A part stopping on purpose at an error it cannot get past, having logged why: its
    thread ends quietly (no traceback) and the message is the part's health reason."""


def describe_error(error: BaseException) -> str:
    """`Type: message`, the type once (kafka-python's errors name it themselves), bounded."""
    name, text = type(error).__name__, str(error)
    described = text if name in text else f"{name}: {text}" if text else name
    if len(described) > MAX_ERROR_CHARS:
        return described[: MAX_ERROR_CHARS - 3] + "..."
    return described


@dataclass(frozen=True)
class Problem:
    """Why the service is not healthy: `part` stopped, stalled, or the service is stopping.
    `cause` is the reason without what changes by the second (the stall's age)."""

    part: str
    kind: str  # "stopped" | "stalled" | "stopping"
    cause: str
    text: str


@dataclass(frozen=True)
class HealthReport:
    problems: tuple[Problem, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.problems

    @property
    def live(self) -> bool:
        return not any(p.kind == "stopped" for p in self.problems)

    @property
    def reasons(self) -> list[str]:
        return [p.text for p in self.problems]

    @property
    def key(self) -> tuple[tuple[str, str, str], ...]:
        """Equal for two reports that say the same (the stall's growing age aside)."""
        return tuple((p.part, p.kind, p.cause) for p in self.problems)

    def describe(self) -> str:
        return "; ".join(self.reasons) if self.problems else "every part alive and progressing"


class Part:
    """One moving part, written by its own thread (its `Heartbeat`), read by the report."""

    def __init__(self, name: str, clock: Clock, watch_progress: bool) -> None:
        self.name = name
        self.watch_progress = watch_progress
        self._clock = clock
        self._lock = threading.Lock()
        self._last_progress = clock()
        self._last_error = ""
        self._stopped: str | None = None
        self._thread: threading.Thread | None = None

    def progressed(self) -> None:
        with self._lock:
            self._last_progress = self._clock()
            self._last_error = ""

    def waiting(self, error: BaseException) -> None:
        with self._lock:
            self._last_error = describe_error(error)

    def stopped(self, reason: str) -> None:
        with self._lock:
            if self._stopped is None:
                self._stopped = reason

    def runs_in(self, thread: threading.Thread) -> None:
        self._thread = thread

    def problem(self, now: float, stall_after_s: float) -> Problem | None:
        with self._lock:
            stopped, last_error, since = self._stopped, self._last_error, self._last_progress
        thread = self._thread
        if stopped is None and thread is not None and thread.ident and not thread.is_alive():
            stopped = "its thread ended"
        if stopped is not None:
            return Problem(self.name, "stopped", stopped, f"{self.name} stopped: {stopped}")
        age = now - since
        if not self.watch_progress or age <= stall_after_s:
            return None
        text = f"{self.name}: no progress for {age:.0f} s"
        return Problem(
            self.name, "stalled", last_error, f"{text}: {last_error}" if last_error else text
        )


class ServiceHealth:
    """The parts of one service process and the report of their health."""

    def __init__(
        self, stall_after_s: float = DEFAULT_STALL_AFTER_S, clock: Clock = time.monotonic
    ) -> None:
        if stall_after_s <= 0:
            raise ValueError("the stall bound must be positive")
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._parts: list[Part] = []
        self._conditions: list[Callable[[], Iterable[Problem]]] = []
        self._stopping = False

    def part(self, name: str, *, watch_progress: bool = True) -> Part:
        """A new part: alive from now on, progressing (when watched) until the bound passes."""
        part = Part(name, self._clock, watch_progress)
        self._parts.append(part)
        return part

    def condition(self, check: Callable[[], Iterable[Problem]]) -> None:
        """A check outside the parts (e.g. untrustworthy revocation lists) whose problems the
        report includes."""
        self._conditions.append(check)

    def stopping(self) -> None:
        """The service is stopping: not ready (parts end on purpose now), still live."""
        self._stopping = True

    def report(self) -> HealthReport:
        if self._stopping:
            return HealthReport((Problem("service", "stopping", "", "the service is stopping"),))
        now = self._clock()
        found = [part.problem(now, self.stall_after_s) for part in list(self._parts)]
        for check in list(self._conditions):
            found.extend(check())
        return HealthReport(tuple(problem for problem in found if problem is not None))


def stall_bound(settings: object) -> float:
    """The settings' `stall_after_s` (V2V_STALL_AFTER_S) when they declare one, else 60 s."""
    value = getattr(settings, "stall_after_s", None)
    return float(value) if value is not None else DEFAULT_STALL_AFTER_S
