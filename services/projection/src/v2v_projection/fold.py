"""The projection core's fold: serialized envelopes of every context -> one chain per COI.

Hot path (`apply_bytes`): decode the envelope (upb protobuf, no eventsourcing mapper), take
each aggregate's versions exactly once and in order: a duplicate (version already taken) is
skipped, a version that arrives before its predecessor is parked and taken when the
predecessor arrives. A taken version's prev_hash must be its predecessor's hash (else an
integrity break is noted for its chain); its bytes go into its COI's bucket and the COI is
marked dirty. Each aggregate stream keeps the author site of the first of its envelopes the
fold saw: an envelope by another site is not taken (`apply_bytes` returns the stream's author,
the caller quarantines it). Nothing else happens per event.

Read path (`chain`, `chains`, `kpis`): a dirty chain's view is derived from its bucket (see
chain/derive.py) in (occurred_at, event_id) order, so the view depends only on the SET of
events, never on their arrival order. Views are cached until the chain changes; treat the
returned dicts as read-only.

Not verified here: envelope hashes, Ed25519 signatures and authorship. The projection's gate
checks every record before it reaches the fold (chain_projection.py; envelopes rebuilt from
the store were checked when they were stored); a replay of an export is checked by
`v2v audit verify`. Nor forks (a second, different envelope for a version already taken by
the same site is skipped as a duplicate). Checked: prev_hash linkage, version continuity (open
gaps are integrity-break alerts of their chain) and one author site per stream. Records the
gate refused are noted per COI (`distrust`) and raised as `untrusted-record` alerts.

Across chains (I1): every taken envelope of an event type that binds a unit to its COI
(chain/identity.py `BINDERS`, about one event in sixteen: only their payloads are decoded
here) goes into a DIN -> COI index, and infusions into a second one. A DIN bound to (or
infused under) a second COI marks every chain it is bound to as changed; their derivations
raise `identity-conflict` (or `double-infusion`) alerts from the index.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from google.protobuf.message import DecodeError

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_projection.chain.alerts import CrossChain, UntrustedMark
from v2v_projection.chain.checks import ChainBreak
from v2v_projection.chain.derive import derive_chain
from v2v_projection.chain.identity import BINDERS, INFUSED, DinIndex
from v2v_projection.chain.kpis import summarize
from v2v_projection.chain.times import datetime_ns, stamp_ns
from v2v_projection.forked_derivation import PARALLEL_MINIMUM, derive_in_processes
from v2v_projection.gc_pause import gc_paused

_decode = Envelope.FromString


class UndecodableEnvelope(ValueError):
    """The bytes given to the fold are not a v2v.events.v1.Envelope."""


class ChainFold:
    """Folds envelopes into chain views. Not thread-safe: one writer, reads in between."""

    def __init__(self, as_of: datetime | None = None) -> None:
        """`as_of`: ignore events recorded after this time (what was known then)."""
        self.as_of = as_of
        self._as_of_ns = datetime_ns(as_of) if as_of is not None else None
        # Per aggregate stream: the last version taken and its hash, and the versions parked
        # until their predecessor arrives. Plain dicts of ints and bytes: a million streams
        # add no objects for the cycle collector to scan.
        self._taken: dict[str, int] = {}
        self._heads: dict[str, bytes] = {}
        self._parked: dict[str, dict[int, tuple[str, bytes]]] = {}
        self._breaks: dict[str, list[ChainBreak]] = {}
        self._buckets: dict[str, list[bytes]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._seen: dict[str, tuple[int, int, int, int, int]] = {}  # what take_changed() last saw
        self._gapped: dict[str, set[str]] = {}
        self._authors: dict[str, str] = {}  # aggregate stream -> its author site
        self._untrusted: dict[str, dict[str, UntrustedMark]] = {}  # COI -> location -> mark
        self._bound = DinIndex()  # DIN -> the COIs facts bind it to (I1, across chains)
        self._infused = DinIndex()  # DIN -> the COIs it was infused under
        self._crossed: dict[str, int] = {}  # COI -> changes of its cross-chain conflicts
        self.events_applied = 0
        self.wrong_authors = 0
        self.duplicates_skipped = 0
        self.events_parked = 0
        self.events_after_as_of = 0

    def apply_all(self, records: Iterable[bytes]) -> None:
        """`apply_bytes` for every record (a replay, a rebuild from the store); an envelope
        not by its stream's author is not taken (counted in `wrong_authors`)."""
        apply = self.apply_bytes
        with gc_paused():
            for data in records:
                apply(data)

    def apply(self, envelope: Envelope) -> None:
        self.apply_bytes(envelope.SerializeToString(deterministic=True))

    def apply_bytes(self, data: bytes) -> str | None:
        """Take one serialized Envelope (a duplicate is counted and skipped). Returns None,
        or, when the envelope's site is not its stream's author site, that author site (the
        envelope is then not taken)."""
        try:
            envelope = _decode(data)
        except DecodeError as error:
            raise UndecodableEnvelope(f"not a v2v envelope ({len(data)} bytes): {error}") from None
        if self._as_of_ns is not None and stamp_ns(envelope.recorded_at) > self._as_of_ns:
            self.events_after_as_of += 1
            return None
        aggregate_id = envelope.aggregate_id
        author = self._authors.get(aggregate_id)
        if author is None:
            self._authors[aggregate_id] = sys.intern(envelope.site_id)
        elif author != envelope.site_id:
            self.wrong_authors += 1
            return author
        version = envelope.aggregate_version
        taken = self._taken.get(aggregate_id, 0)
        if version == taken + 1:
            self._taken[aggregate_id] = version
            coi = envelope.coi
            if envelope.prev_hash != self._heads.get(aggregate_id, b""):
                self._broken_link(coi, envelope)
            self._heads[aggregate_id] = envelope.hash
            bucket = self._buckets.get(coi)
            if bucket is None:
                bucket = self._buckets[coi] = []
            bucket.append(data)
            self._dirty.add(coi)
            self.events_applied += 1
            event_type = envelope.event_type
            if event_type in BINDERS:
                self._bind(envelope, coi, event_type)
            if aggregate_id in self._parked:
                self._take_parked(aggregate_id)
        elif version <= taken:
            self.duplicates_skipped += 1
        else:
            self._park(aggregate_id, version, envelope.coi, data)
        return None

    def _park(self, aggregate_id: str, version: int, coi: str, data: bytes) -> None:
        parked = self._parked.setdefault(aggregate_id, {})
        if version in parked:
            self.duplicates_skipped += 1
            return
        parked[version] = (coi, data)
        self.events_parked += 1
        self._gapped.setdefault(coi, set()).add(aggregate_id)
        self._dirty.add(coi)
        self._buckets.setdefault(coi, [])

    def _take_parked(self, aggregate_id: str) -> None:
        parked = self._parked[aggregate_id]
        drained: set[str] = set()
        while self._taken[aggregate_id] + 1 in parked:
            version = self._taken[aggregate_id] = self._taken[aggregate_id] + 1
            coi, data = parked.pop(version)
            envelope = _decode(data)
            if envelope.prev_hash != self._heads[aggregate_id]:
                self._broken_link(coi, envelope)
            self._heads[aggregate_id] = envelope.hash
            self._buckets[coi].append(data)
            self._dirty.add(coi)
            drained.add(coi)
            event_type = envelope.event_type
            if event_type in BINDERS:
                self._bind(envelope, coi, event_type)
            self.events_parked -= 1
            self.events_applied += 1
        if not parked:
            del self._parked[aggregate_id]
            for coi in drained:
                self._gapped.get(coi, set()).discard(aggregate_id)

    def _bind(self, envelope: Envelope, coi: str, event_type: str) -> None:
        """Index the DINs a taken envelope binds to its COI (and infuses under it)."""
        occurred = envelope.occurred_at
        at_ns = occurred.seconds * 1_000_000_000 + occurred.nanos
        event_id, site_id = envelope.event_id, envelope.site_id
        changed: tuple[str, ...] = ()
        for din in BINDERS[event_type](envelope.payload):
            if din:
                changed += self._bound.bind(din, coi, at_ns, event_id, site_id)
                if event_type == INFUSED:
                    changed += self._infused.bind(din, coi, at_ns, event_id, site_id)
        for crossed in changed:
            self._dirty.add(crossed)
            self._crossed[crossed] = self._crossed.get(crossed, 0) + 1

    def _broken_link(self, coi: str, envelope: Envelope) -> None:
        """The version does not name its predecessor's hash (an integrity break)."""
        version = envelope.aggregate_version
        detail = (
            f"{envelope.aggregate_id} v{version}: prev_hash does not match the hash of"
            f" {'the genesis (empty)' if version == 1 else f'v{version - 1}'}"
        )
        recorded = stamp_ns(envelope.recorded_at)
        self._breaks.setdefault(coi, []).append(ChainBreak(detail, envelope.event_id, recorded))

    def distrust(self, coi: str, mark: UntrustedMark) -> bool:
        """Note a quarantined record naming `coi` (its chain shows it as an `untrusted-record`
        alert, now or once the chain has verified events); False when its location is known."""
        marks = self._untrusted.setdefault(coi, {})
        if mark.location in marks:
            return False
        marks[mark.location] = mark
        self._dirty.add(coi)
        return True

    def cois(self) -> list[str]:
        return sorted(self._buckets)

    def event_count(self, coi: str) -> int:
        """How many of the COI's events were taken (parked ones not included)."""
        return len(self._buckets.get(coi, ()))

    def take_changed(self) -> set[str]:
        """The COIs that took or parked events since the last call (for alert watchers; a
        scan of every COI, so the hot path pays nothing for it)."""
        now = {
            coi: (
                len(bucket),
                len(self._breaks.get(coi, ())),
                len(self._gapped.get(coi, ())),
                len(self._untrusted.get(coi, ())),
                self._crossed.get(coi, 0),
            )
            for coi, bucket in self._buckets.items()
        }
        changed = {coi for coi, seen in now.items() if self._seen.get(coi) != seen}
        self._seen = now
        return changed

    def chain(self, coi: str) -> dict[str, Any] | None:
        bucket = self._buckets.get(coi)
        if bucket is None:
            return None
        view = self._views.get(coi)
        if view is None or coi in self._dirty:
            view = self._views[coi] = self.derive(coi)
            self._dirty.discard(coi)
        return view

    def envelopes_of(self, coi: str) -> list[bytes]:
        """The chain's taken envelopes, each stream's versions in order (a copy)."""
        return list(self._buckets.get(coi, ()))

    def chains(self, workers: int = 1) -> list[dict[str, Any]]:
        """Every chain view, by COI. `workers` > 1 derives the stale views in that many forked
        processes (for single-threaded bulk replays only: forking a threaded server is unsafe)."""
        cois = self.cois()
        stale = [coi for coi in cois if coi in self._dirty or coi not in self._views]
        if workers > 1 and len(stale) >= PARALLEL_MINIMUM:
            self._views.update(derive_in_processes(self, stale, workers))
            self._dirty.difference_update(stale)
        with gc_paused():
            views = [self.chain(coi) for coi in cois]
        return [view for view in views if view is not None]

    def kpis(self, workers: int = 1) -> dict[str, Any]:
        return summarize(self.chains(workers))

    def derive(self, coi: str) -> dict[str, Any]:
        """The chain's view derived afresh (no caching); the COI must be known."""
        breaks = self._breaks.get(coi, []) + self._open_gaps(coi)
        untrusted = self._untrusted.get(coi, {}).values()
        crossed = CrossChain(self._bound.conflicts_of(coi), self._infused.conflicts_of(coi))
        return derive_chain(coi, self._buckets[coi], breaks, untrusted, crossed)

    def _open_gaps(self, coi: str) -> list[ChainBreak]:
        gaps = []
        for aggregate_id in sorted(self._gapped.get(coi, ())):
            taken, parked = self._taken.get(aggregate_id, 0), self._parked[aggregate_id]
            first = min(parked)
            envelope = _decode(parked[first][1])
            detail = (
                f"{aggregate_id}: version {taken + 1} is missing; v{first} and later are parked"
                " until it arrives"
            )
            gaps.append(ChainBreak(detail, envelope.event_id, stamp_ns(envelope.recorded_at)))
        return gaps
