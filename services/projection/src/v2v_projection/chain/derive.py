"""One chain's view from its applied envelopes: decode, order by occurrence, fold, relate.

The order is (occurred_at, event_id), a total order over the SET of facts, so the view is the
same for every arrival order. Every envelope here was verified before it was folded (hash,
Ed25519 signature, signer, authorship: the projection's gate, see chain_projection.py); the
fold checks the hash chain linkage (prev_hash), version continuity and one author per stream
and hands its findings in as `breaks`; records the gate refused come in as `untrusted` marks;
what the fold's DIN indexes know of the chain's DINs under other COIs comes in as `crossed`
(chain/identity.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from v2v_projection.chain import (  # noqa: F401  (registers the handlers)
    on_infusion,
    on_intake,
    on_logistics,
    on_manufacturing,
    on_release,
)
from v2v_projection.chain.alerts import (
    CrossChain,
    UntrustedMark,
    double_infusion_alerts,
    identity_conflict_alerts,
    unrelated_author_alerts,
    untrusted_alerts,
)
from v2v_projection.chain.applied_envelope import in_derivation_order
from v2v_projection.chain.builder import ChainBuilder
from v2v_projection.chain.checks import ChainBreak, integrity_alerts, release_alerts
from v2v_projection.chain.registry import HANDLERS, STAGE_ONLY
from v2v_projection.chain.relationships import visible_sites
from v2v_projection.chain.view import chain_view

NOT_CROSSED = CrossChain()


def derive_chain(
    coi: str,
    records: list[bytes],
    breaks: Iterable[ChainBreak] = (),
    untrusted: Iterable[UntrustedMark] = (),
    crossed: CrossChain = NOT_CROSSED,
) -> dict[str, Any]:
    facts = in_derivation_order(records)
    chain = ChainBuilder(coi)
    handlers, stage_only = HANDLERS, STAGE_ONLY
    authors = chain.authors
    updated = 0
    for fact in facts:
        _, _, event_type, site_id, recorded_ns, envelope = fact
        authors.add(site_id)
        if recorded_ns > updated:
            updated = recorded_ns
        stage = stage_only.get(event_type)
        if stage is not None:
            if stage:
                chain.reach(stage)
            continue
        found = handlers.get(event_type)
        if found is not None:
            decode, handle = found
            handle(chain, fact, decode(envelope.payload))
    chain.updated_ns = updated
    chain.sites = visible_sites(chain)
    unrelated_author_alerts(chain, facts)
    double_infusion_alerts(chain)
    identity_conflict_alerts(chain, crossed)
    integrity_alerts(chain, breaks)
    untrusted_alerts(chain, untrusted)
    release_alerts(chain)
    return chain_view(chain)
