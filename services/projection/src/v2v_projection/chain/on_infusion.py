"""Infusion facts: receipt at the treating site, storage, thaw, bedside verification (and
refused bedside scans), infusion, adverse events, acknowledged post-release failures."""

from __future__ import annotations

from collections.abc import Callable

from v2v.infusion.events.v1 import events_pb2 as pb
from v2v_projection.chain.alerts import bedside_refused
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import Administration, ChainBuilder, Infusion
from v2v_projection.chain.registry import M, handles
from v2v_projection.chain.times import iso, stamp_ns

InfusionHandler = Callable[[ChainBuilder, Fact, M], None]


def at_the_ward(message_class: type[M]) -> Callable[[InfusionHandler[M]], InfusionHandler[M]]:
    """`handles(message_class)`, noting who recorded the fact: the infusion events of a chain
    are its treating site's (an `unrelated-author` alert otherwise, see alerts.py)."""

    def register(handler: InfusionHandler[M]) -> InfusionHandler[M]:
        def noted(chain: ChainBuilder, fact: Fact, event: M) -> None:
            chain.infusion_authors.add(fact.site_id)
            handler(chain, fact, event)

        handles(message_class)(noted)
        return handler

    return register


def progress(chain: ChainBuilder, din: str, status: str) -> Infusion:
    """The unit's step at the treating site; once administered, the status stays."""
    infusion = chain.infusion
    if infusion is None:
        infusion = chain.infusion = Infusion(status, din)
    elif infusion.status != "administered":
        infusion.status, infusion.din = status, din
    return infusion


def record_deadline(deadlines: dict[str, int], din: str, infuse_by_ns: int) -> None:
    """The unit's deadline as the event says it; the latest event that gives one wins
    (derivation order: the same for any arrival order). Unset (0) records nothing."""
    if infuse_by_ns:
        deadlines[din] = infuse_by_ns


@at_the_ward(pb.ProductReceived)
def received(chain: ChainBuilder, fact: Fact, event: pb.ProductReceived) -> None:
    at = stamp_ns(event.received_at) or fact.occurred_ns
    site = event.treating_site_id or fact.site_id
    unit = chain.unit(event.din, "product")
    unit.batch_id = unit.batch_id or event.batch_id
    chain.move(fact, "claim", [event.din], at, to_party=f"site:{site}")
    chain.receipts.append(Administration(event.din, at, fact.event_id, fact.site_id))
    progress(chain, event.din, "received")
    chain.reach("at-treating-site")


@at_the_ward(pb.ProductStored)
def stored(chain: ChainBuilder, fact: Fact, event: pb.ProductStored) -> None:
    progress(chain, event.din, "stored")
    chain.reach("at-treating-site")


@at_the_ward(pb.ThawStarted)
def thaw_started(chain: ChainBuilder, fact: Fact, event: pb.ThawStarted) -> None:
    record_deadline(chain.thaw_deadlines, event.din, stamp_ns(event.infuse_by))
    progress(chain, event.din, "thawed")
    chain.reach("at-treating-site")


@at_the_ward(pb.BedsideScanRecorded)
def bedside_scan(chain: ChainBuilder, fact: Fact, event: pb.BedsideScanRecorded) -> None:
    progress(chain, event.din, "bedside-scan")
    chain.reach("at-treating-site")


@at_the_ward(pb.BedsideVerified)
def bedside_verified(chain: ChainBuilder, fact: Fact, event: pb.BedsideVerified) -> None:
    record_deadline(chain.verified_deadlines, event.din, stamp_ns(event.infuse_by))
    progress(chain, event.din, "verified")
    chain.reach("at-treating-site")


@at_the_ward(pb.BedsideMismatchRecorded)
def bedside_mismatch(chain: ChainBuilder, fact: Fact, event: pb.BedsideMismatchRecorded) -> None:
    at = stamp_ns(event.scanned_at) or fact.occurred_ns
    detail = (
        f"bedside scan refused ({event.reason_code}): unit {event.scanned_din or '(none)'},"
        f" wristband {event.wristband_coi or '(none)'}"
    )
    bedside_refused(chain, event.reason_code, at, detail, fact.event_id)


@at_the_ward(pb.InfusionAdministered)
def administered(chain: ChainBuilder, fact: Fact, event: pb.InfusionAdministered) -> None:
    at = stamp_ns(event.administered_at) or fact.occurred_ns
    infusion = progress(chain, event.din, "administered")
    if infusion.administered_ns is None:
        infusion.din, infusion.administered_ns = event.din, at
    chain.administrations.append(Administration(event.din, at, fact.event_id, fact.site_id))
    chain.move(fact, "end", [event.din], at)
    chain.reach("infused")


@at_the_ward(pb.AdverseEventRecorded)
def adverse_event(chain: ChainBuilder, fact: Fact, event: pb.AdverseEventRecorded) -> None:
    infusion = chain.infusion or progress(chain, event.din, "received")
    shown = {
        "kind": event.kind,
        "grade": event.grade,
        "onset_at": iso(stamp_ns(event.onset_at) or fact.occurred_ns),
        "din": event.din,
    }
    infusion.adverse_events.append(shown)


@at_the_ward(pb.PostReleaseFailureAcknowledged)
def acknowledged(chain: ChainBuilder, fact: Fact, event: pb.PostReleaseFailureAcknowledged) -> None:
    chain.acknowledged.add(event.failure_id)
    chain.sign(fact, event.physician_signature)
