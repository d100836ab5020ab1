"""GetChain builds a chain's reply once per chain view (issue 18 item 4): the same reply while
the chain is unchanged, a new one as soon as the fold derives a new view, and who may read the
chain is checked on every call, before any reply is reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v_platform.auth.identity import CallerIdentity, Role, caller_context
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_projection.adapters import proto_views
from v2v_projection.adapters.grpc_api import ChainQueryServicer, ChainReplies
from v2v_projection.alert_watch import AlertHub
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.queries import ChainQueries
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.synthetic.chains import generate_history
from v2v_testkit.synthetic.consortium import key_ring, site_signers

SEED = 11
AUDITOR = CallerIdentity("AUDIT-1", frozenset({Role.AUDITOR}))
STRANGER = CallerIdentity("HOSP-Z", frozenset({Role.COLLECTION}))


class Aborted(Exception):
    def __init__(self, code: Any, details: str) -> None:
        super().__init__(details)
        self.code = code


class Context:
    """What GetChain uses of a gRPC servicer context."""

    def time_remaining(self) -> float | None:
        return None

    def abort(self, code: Any, details: str) -> NoReturn:
        raise Aborted(code, details)


def test_a_reply_is_reused_while_its_chain_is_unchanged_and_rebuilt_when_it_changes(
    tmp_path: Path,
) -> None:
    history = generate_history(SEED, 1)
    (coi,) = history.cois
    records = [(topic, 0, offset, value) for topic, offset, value in history.all_records()]
    # every stream's versions in order: the first records of each topic, then the rest
    half = [r for r in records if r[2] < 5]
    rest = [r for r in records if r[2] >= 5]
    verifier = InlineVerifier(EnvelopeGate(key_ring(site_signers(SEED))))
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=verifier)
    assert projection.ingest(half) == len(half)
    servicer = ChainQueryServicer(ChainQueries(projection), AlertHub(projection))
    request, context = pb.GetChainRequest(coi=coi), Context()

    with caller_context(AUDITOR):
        first = servicer.GetChain(request, context)
        again = servicer.GetChain(request, context)
    assert again is first
    assert first.chain == proto_views.chain(projection.chain(coi) or {})

    with caller_context(STRANGER), pytest.raises(Aborted) as refused:
        servicer.GetChain(request, context)
    assert refused.value.code == grpc.StatusCode.NOT_FOUND

    assert projection.ingest(rest) == len(rest)
    with caller_context(AUDITOR):
        changed = servicer.GetChain(request, context)
    assert changed is not first and changed.chain != first.chain
    assert changed.chain == proto_views.chain(projection.chain(coi) or {})


def test_the_replies_kept_are_bounded() -> None:
    replies = ChainReplies(size=2, build=lambda view: pb.GetChainResponse())
    views = [{"coi": f"COI-{n}"} for n in range(3)]
    built = {view["coi"]: replies.of(view) for view in views}
    assert replies.of(views[2]) is built["COI-2"] and replies.of(views[1]) is built["COI-1"]
    assert replies.of(views[0]) is not built["COI-0"]  # the least recent: not kept
    assert replies.of({"coi": "COI-1"}) is not built["COI-1"]  # an equal view, but a new one
