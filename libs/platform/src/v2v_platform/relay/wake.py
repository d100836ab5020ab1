"""Wake-on-write for the outbox relay: the relay waits for a save instead of a fixed sleep.

- In the service's process, every save of its published application (`TracedApplication.save`,
  after the write committed) calls `saved(<application name>)`, which sets the `WakeSignal` of
  every relay following that outbox in this process.
- On PostgreSQL, the eventsourcing recorder NOTIFYs channel `<events table>` in the very
  transaction of each write (PostgreSQL delivers it at commit); a `PostgresWakeListener` LISTENs
  on its own connection and sets the relay's signal, so a relay running as its own process
  (`v2v relay`) wakes too. One channel per outbox (its events table).
- SQLite in another process has no such channel: that relay wakes by its fallback poll only.

A relay clears its signal *before* it reads a page and waits on it only after a page came back
empty, so a save committed after the read sets it again and nothing waits needlessly. A missed
signal only delays: the relay reads again after `fallback_poll_s` (V2V_RELAY_FALLBACK_POLL_S)
at the latest. A spurious one costs one empty read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DEFAULT_FALLBACK_POLL_S = 1.0
STOP_CHECK_S = 0.1  # how soon a waiting relay notices that it must stop
LISTEN_TIMEOUT_S = 0.5  # how soon a listener notices that it must close

_lock = threading.Lock()
_signals: dict[str, set[WakeSignal]] = {}


def saved(outbox: str) -> None:
    """An application named `outbox` committed a write: wake its relays in this process."""
    with _lock:
        signals = tuple(_signals.get(outbox, ()))
    for signal in signals:
        signal.set()


class WakeSignal:
    """What one relay waits on: set by saves to its outbox (this process) and by its listener."""

    def __init__(self, outbox: str) -> None:
        self.outbox = outbox
        self._event = threading.Event()
        self._closers: list[Callable[[], None]] = []
        with _lock:
            _signals.setdefault(outbox, set()).add(self)

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Forget earlier wake-ups: called before reading the page they announced."""
        self._event.clear()

    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        """Wait until set, `stop` is set or `timeout_s` passed; True when woken by a write."""
        remaining = timeout_s
        while remaining > 0 and not stop.is_set():
            slice_s = min(remaining, STOP_CHECK_S)
            if self._event.wait(slice_s):
                return True
            remaining -= slice_s
        return self._event.is_set()

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        """Stop listening (if a listener was attached) and leave this process's registry."""
        with _lock:
            members = _signals.get(self.outbox)
            if members is not None:
                members.discard(self)
                if not members:
                    del _signals[self.outbox]
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()


class PostgresWakeListener:
    """LISTENs on `channel` on its own connection and sets `signal` at each notification.

    A lost connection is logged and opened again (backoff up to 5 s); meanwhile the relay's
    fallback poll covers."""

    def __init__(self, dsn: str, channel: str, signal: WakeSignal) -> None:
        self._dsn = dsn
        self._channel = channel
        self._signal = signal
        self._closing = threading.Event()
        self.listening = threading.Event()  # set once LISTEN is in effect (tests wait for it)
        self._thread = threading.Thread(
            target=self._run, name=f"relay-listen-{channel}", daemon=True
        )
        self._thread.start()
        signal.on_close(self.close)

    def _run(self) -> None:
        backoff = 0.1
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening.set()
                    self._signal.set()  # writes made while not listening are read now
                    backoff = 0.1
                    while not self._closing.is_set():
                        for _ in conn.notifies(timeout=LISTEN_TIMEOUT_S, stop_after=1):
                            self._signal.set()
            except psycopg.Error as error:
                self.listening.clear()
                if self._closing.is_set():
                    return
                log.warning(
                    "relay listener on %s lost (%s); again in %.1fs", self._channel, error, backoff
                )
                self._closing.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=LISTEN_TIMEOUT_S * 4)
