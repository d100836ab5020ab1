"""An idle consumer's proof that the cluster still answers.

kafka-python returns empty polls, without raising, while no broker can be reached: a consumer
with nothing to do would look as if it progressed through an outage, and health would say
SERVING while no fact can arrive. So, while polls come back empty, at most every `every_s` the
consumer asks the group coordinator for the committed offset of one partition it owns; when
that does not answer within `timeout_ms`, kafka-python raises KafkaTimeoutError (a KafkaError),
which the consumer's loop treats like any other transient failure: it waits, and a wait longer
than the stall bound makes the service NOT_SERVING (`v2v_platform.health`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

CONTACT_CHECK_S = 10.0
CONTACT_TIMEOUT_MS = 5_000


class ContactCheck:
    def __init__(
        self,
        consumer: Any,
        every_s: float = CONTACT_CHECK_S,
        timeout_ms: int = CONTACT_TIMEOUT_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._every_s = every_s
        self._timeout_ms = timeout_ms
        self._clock = clock
        self._due = clock() + every_s
        self.checks = 0

    def after_poll(self, polled: Mapping[Any, Any]) -> None:
        """Call after every poll: records prove contact; an empty poll may ask for proof."""
        now = self._clock()
        if polled:
            self._due = now + self._every_s
            return
        if now < self._due:
            return
        self._due = now + self._every_s
        owned = self._consumer.assignment()
        if not owned:
            return  # nothing owned yet: the subscription watch asks again
        self.checks += 1
        self._consumer.committed(min(owned), timeout_ms=self._timeout_ms)
