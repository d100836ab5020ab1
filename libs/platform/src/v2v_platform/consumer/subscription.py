"""Keeping a kafka-python group member from staying without partitions.

kafka-python can join its group before the topics' partition metadata is known (a fresh
broker, or one just restarted) and then stay with no partitions assigned. `SubscriptionWatch`
subscribes again when nothing was assigned for a while, backing off so that a legitimately idle
member (more members than partitions) does not churn the group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

RESUBSCRIBE_AFTER_S = 15.0
MAX_RESUBSCRIBE_AFTER_S = 300.0


class SubscriptionWatch:
    def __init__(
        self,
        consumer: Any,
        subscribe: Callable[[], None],
        what: str,
        after_s: float = RESUBSCRIBE_AFTER_S,
    ) -> None:
        self._consumer = consumer
        self._subscribe = subscribe
        self._what = what
        self._first_after_s = after_s
        self._after_s = after_s
        self._unassigned_since = time.monotonic()

    def check(self) -> None:
        """Call before each poll: cheap while partitions are assigned."""
        if self._consumer.assignment():
            self._unassigned_since = time.monotonic()
            self._after_s = self._first_after_s
            return
        if time.monotonic() - self._unassigned_since < self._after_s:
            return
        log.warning(
            "no partition of %s assigned after %.0fs: subscribing again", self._what, self._after_s
        )
        self._consumer.unsubscribe()
        self._subscribe()
        self._unassigned_since = time.monotonic()
        self._after_s = min(self._after_s * 2, MAX_RESUBSCRIBE_AFTER_S)
