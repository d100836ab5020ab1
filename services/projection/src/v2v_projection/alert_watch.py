"""Live alerts for WatchAlerts: while someone watches, the chains changed since the last tick
are derived and their alerts compared with what was known; new ones go to every watcher whose
`Scope` sees the chain (the same rule as the reads). Nothing is derived while nobody watches
(the consumer stays fast). The alerts themselves are decided by the derivation (chain/)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from v2v_platform.scope import Scope
from v2v_projection.chain_projection import ChainProjection

AlertKey = tuple[str, str, str, str]
_CLOSED = object()


def key(alert: dict[str, Any]) -> AlertKey:
    return (alert["kind"], alert["at"], alert["event_id"], alert["detail"])


@dataclass(eq=False)
class Watch:
    scope: Scope
    coi: str = ""
    kinds: frozenset[str] = frozenset()
    inbox: queue.Queue[Any] = field(default_factory=queue.Queue)

    def wants(self, view: dict[str, Any], alert: dict[str, Any]) -> bool:
        if self.coi and view["coi"] != self.coi:
            return False
        if self.kinds and alert["kind"] not in self.kinds:
            return False
        return self.scope.sees(view["sites"])

    def alerts(self, poll_s: float, active: Any) -> Iterator[dict[str, Any]]:
        """Alerts as they come, until the hub closes or `active()` turns false."""
        while active():
            try:
                item = self.inbox.get(timeout=poll_s)
            except queue.Empty:
                continue
            if item is _CLOSED:
                return
            yield item


class AlertHub:
    def __init__(self, projection: ChainProjection) -> None:
        self._projection = projection
        self._lock = threading.Lock()
        self._watches: list[Watch] = []
        self._known: dict[str, set[AlertKey]] | None = None

    def watch(self, watch: Watch, include_existing: bool) -> Watch:
        with self._projection.lock:
            if self._known is None:
                self._projection.read(lambda fold: fold.take_changed())
                self._known = {
                    v["coi"]: {key(a) for a in v["alerts"]} for v in self._projection.chains()
                }
            if include_existing:
                for view in self._projection.chains([watch.coi] if watch.coi else None):
                    for alert in view["alerts"]:
                        if watch.wants(view, alert):
                            watch.inbox.put({**alert, "coi": view["coi"]})
            with self._lock:
                self._watches.append(watch)
        return watch

    def forget(self, watch: Watch) -> None:
        with self._projection.lock, self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
            if not self._watches:
                self._known = None

    def tick(self) -> int:
        """Publish the alerts raised since the last tick; returns how many were sent."""
        with self._projection.lock:
            if self._known is None:
                return 0
            changed = self._projection.read(lambda fold: fold.take_changed())
            raised = []
            for view in self._projection.chains(changed):
                known = self._known.setdefault(view["coi"], set())
                for alert in view["alerts"]:
                    if key(alert) not in known:
                        known.add(key(alert))
                        raised.append((view, alert))
        return self._deliver(raised)

    def _deliver(self, raised: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
        sent = 0
        with self._lock:
            watches = list(self._watches)
        for view, alert in raised:
            for watch in watches:
                if watch.wants(view, alert):
                    watch.inbox.put({**alert, "coi": view["coi"]})
                    sent += 1
        return sent

    def run(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        while not stop.wait(interval_s):
            self.tick()

    def close(self) -> None:
        with self._projection.lock, self._lock:
            for watch in self._watches:
                watch.inbox.put(_CLOSED)
            self._watches.clear()
            self._known = None
