"""Intake facts: enrolment, slots, collections, labels, label mismatches, packaging.

Enrolment and labelling count when they happened: the published `enrolled_at` /
`labelled_at`, or the envelope's `occurred_at` for events published before those fields existed
(docs/kpis.md)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from v2v.intake.events.v1 import events_pb2 as pb
from v2v_projection.chain.alerts import identity_mismatch
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import ChainBuilder, condition_name
from v2v_projection.chain.registry import handles, marks
from v2v_projection.chain.times import stamp_ns


def clinical_ns(given: Timestamp, is_given: bool, fact: Fact) -> int:
    """The clinical time the event carries (`given`); the envelope's when it has none."""
    return stamp_ns(given) if is_given else fact.occurred_ns


@handles(pb.PatientEnrolled)
def enrolled(chain: ChainBuilder, fact: Fact, event: pb.PatientEnrolled) -> None:
    """Taken from the enrolling site only: another site's claim to enrol the COI is not an
    enrolment (its author stays unrelated, see relationships.py)."""
    if fact.site_id != event.enrolling_site_id:
        return
    chain.treating_site_id = event.treating_site_id
    chain.enrolling_site_id = event.enrolling_site_id
    chain.enrolled_ns = clinical_ns(event.enrolled_at, event.HasField("enrolled_at"), fact)
    chain.enrolments.update((event.enrolling_site_id, event.treating_site_id))
    chain.reach("enrolled")


@handles(pb.SlotBooked)
def slot_booked(chain: ChainBuilder, fact: Fact, event: pb.SlotBooked) -> None:
    chain.link(fact.site_id, event.manufacturing_site_id)
    chain.reach("enrolled")


@handles(pb.CollectionRecorded)
def collection_recorded(chain: ChainBuilder, fact: Fact, event: pb.CollectionRecorded) -> None:
    started, ended = stamp_ns(event.started_at), stamp_ns(event.ended_at)
    chain.collections[event.collection_id] = (started, ended)
    chain.reach("collection")


@handles(pb.UnitLabelled)
def unit_labelled(chain: ChainBuilder, fact: Fact, event: pb.UnitLabelled) -> None:
    unit = chain.unit(event.din, "apheresis")
    unit.collection_id = event.collection_id
    labelled_ns = clinical_ns(event.labelled_at, event.HasField("labelled_at"), fact)
    unit.created_ns = labelled_ns
    chain.move(fact, "claim", [event.din], labelled_ns, to_party=f"site:{fact.site_id}")
    chain.reach("collection")


marks(pb.LabelScanned, "collection")


marks(pb.LabelVerified, "collection")


@handles(pb.LabelMismatchRecorded)
def label_mismatch(chain: ChainBuilder, fact: Fact, event: pb.LabelMismatchRecorded) -> None:
    detail = (
        f"label scan refused at {fact.site_id} ({event.reason_code}): expected"
        f" {event.expected_din}, scanned {event.scanned_label or '(nothing)'}"
    )
    identity_mismatch(chain, event.reason_code, fact.occurred_ns, detail, fact.event_id)


@handles(pb.UnitPackaged)
def unit_packaged(chain: ChainBuilder, fact: Fact, event: pb.UnitPackaged) -> None:
    unit = chain.unit(event.din, "apheresis")
    unit.condition = condition_name(event.condition)
    unit.window_starts_ns = stamp_ns(event.window_starts_at)
    chain.link(fact.site_id, event.manufacturing_site_id)
    chain.reach("collection")
