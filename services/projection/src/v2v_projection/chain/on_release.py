"""Release facts: the batch's release record, e-signed decisions and post-release failures."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.release.events.v1 import events_pb2 as pb
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import ChainBuilder, Decision, condition_name
from v2v_projection.chain.registry import handles, marks
from v2v_projection.chain.times import stamp_ns

SIGNATURE_FIELDS = ("user_id", "printed_name", "meaning", "signed_at", "record_hash")


def decide(
    chain: ChainBuilder,
    fact: Fact,
    batch_id: str,
    kind: str,
    at: Timestamp,
    manifestation: common_pb2.SignatureManifestation,
) -> None:
    shown = chain.sign(fact, manifestation)
    signature = {name: shown[name] for name in SIGNATURE_FIELDS} if shown else None
    at_ns = stamp_ns(at) or fact.occurred_ns
    chain.release(batch_id).decisions.append(Decision(kind, at_ns, signature, fact.event_id))


def products(chain: ChainBuilder, batch_id: str, dins: list[str]) -> None:
    release = chain.release(batch_id)
    if dins and not release.product_dins:
        release.product_dins = dins


@handles(pb.BatchReleaseOpened)
def opened(chain: ChainBuilder, fact: Fact, event: pb.BatchReleaseOpened) -> None:
    release = chain.release(event.batch_id)
    release.spec_version = event.spec_version
    release.product_dins = list(event.product_dins)
    release.condition = condition_name(event.condition)
    chain.releasers.append((event.batch_id, fact.site_id))
    chain.reach("release")


marks(pb.QcResultRecorded, "release")


@handles(pb.ProvisionallyCertified)
def provisional(chain: ChainBuilder, fact: Fact, event: pb.ProvisionallyCertified) -> None:
    products(chain, event.batch_id, list(event.product_dins))
    decide(chain, fact, event.batch_id, "provisional", event.certified_at, event.qp_signature)
    chain.reach("released")


@handles(pb.FinallyCertified)
def final(chain: ChainBuilder, fact: Fact, event: pb.FinallyCertified) -> None:
    products(chain, event.batch_id, list(event.product_dins))
    decide(chain, fact, event.batch_id, "final", event.certified_at, event.qp_signature)
    chain.reach("released")


@handles(pb.BatchRejected)
def rejected(chain: ChainBuilder, fact: Fact, event: pb.BatchRejected) -> None:
    products(chain, event.batch_id, list(event.product_dins))
    decide(chain, fact, event.batch_id, "rejected", event.rejected_at, event.qp_signature)
    chain.reach("rejected")


@handles(pb.OosReleaseJustified)
def oos_justified(chain: ChainBuilder, fact: Fact, event: pb.OosReleaseJustified) -> None:
    products(chain, event.batch_id, list(event.product_dins))
    decide(chain, fact, event.batch_id, "oos-justified", event.justified_at, event.qp_signature)


@handles(pb.OosReleaseAccepted)
def oos_accepted(chain: ChainBuilder, fact: Fact, event: pb.OosReleaseAccepted) -> None:
    products(chain, event.batch_id, list(event.product_dins))
    signature = event.physician_signature
    decide(chain, fact, event.batch_id, "oos-accepted", event.accepted_at, signature)
    chain.reach("released")


@handles(pb.PostReleaseFailureRecorded)
def post_release_failure(
    chain: ChainBuilder, fact: Fact, event: pb.PostReleaseFailureRecorded
) -> None:
    products(chain, event.batch_id, list(event.product_dins))
    at = stamp_ns(event.result_at) or fact.occurred_ns
    chain.release(event.batch_id).failures[event.failure_id] = (event.test, at, fact.event_id)
