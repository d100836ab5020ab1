"""What the release application needs from outside, each with its null object.

`ReleaseFacts`: what release knows from manufacturing's and intake's events (its own
projection, `adapters.facts_projection`); release never calls those services.
"""

from __future__ import annotations

from typing import Protocol

from v2v_release.domain.values import BatchFact


class ReleaseFacts(Protocol):
    """The batches manufacturing started (and harvested or gave up) and the COIs' treating
    sites, as release learned them from Kafka."""

    def batch(self, batch_id: str) -> BatchFact | None: ...
    def treating_site(self, coi: str) -> str | None: ...


class NoReleaseFacts:
    """Knows no batch (for processes that only relay)."""

    def batch(self, batch_id: str) -> BatchFact | None:
        return None

    def treating_site(self, coi: str) -> str | None:
        return None
