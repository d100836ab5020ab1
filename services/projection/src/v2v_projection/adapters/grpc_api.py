"""gRPC API (v2v.projection.v1.ChainQueryService) over the chain queries.

The caller's site and roles come from its client certificate (`current_caller()`) and become
its `Scope`; a chain the caller may not read is NOT_FOUND. WatchAlerts streams until the
client cancels or the service stops. Every method reads (`ACCESS`): one chain (PATIENT: its
related sites and auditors), or a listing, a stream or KPIs over the chains the caller reads
(FILTERED).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v.projection.v1 import projection_service_pb2_grpc as pb_grpc
from v2v_platform.access_policy import Access, Relation, reads, required_roles
from v2v_platform.auth.identity import Role, current_caller
from v2v_platform.errors import DomainError
from v2v_platform.grpc_service import translate_errors
from v2v_platform.proto_values import optional_time
from v2v_platform.scope import Scope
from v2v_projection.adapters import proto_views
from v2v_projection.alert_watch import AlertHub, Watch
from v2v_projection.queries import ChainFilter, ChainQueries

READERS = (
    Role.COLLECTION,
    Role.MANUFACTURING,
    Role.QC,
    Role.INFUSION,
    Role.COURIER,
    Role.AUDITOR,
)
"""The roles that may call the reads; what each caller sees is its `Scope`."""
SERVICE_NAME = "v2v.projection.v1.ChainQueryService"
ACCESS: dict[str, Access] = {
    "GetChain": reads(Relation.PATIENT, *READERS),
    "ListChains": reads(Relation.FILTERED, *READERS),
    "GetCustodyTimeline": reads(Relation.PATIENT, *READERS),
    # A watch names one chain (NOT_FOUND unless the caller reads it) or streams the alerts
    # of every chain the caller reads.
    "WatchAlerts": reads(Relation.PATIENT, *READERS),
    "GetKpis": reads(Relation.FILTERED, *READERS),
}
REQUIRED_ROLES = required_roles(SERVICE_NAME, ACCESS)
WATCH_POLL_S = 0.5
REPLY_CACHE_SIZE = 1024
"""GetChain replies kept (the most recently built; a chain read again is built again)."""


def caller_scope() -> Scope:
    return Scope.of(current_caller())


def _chain_reply(view: dict[str, Any]) -> pb.GetChainResponse:
    return pb.GetChainResponse(chain=proto_views.chain(view))


class ChainReplies:
    """The GetChain reply of each chain view, built once per view: the fold keeps a chain's
    view until the chain changes and then derives a new one, so a reply is reused while its
    view is the one in force (the same object; held here, so it is never another's id).
    Who may read the chain is checked on every call, before the reply is looked up."""

    def __init__(
        self,
        size: int = REPLY_CACHE_SIZE,
        build: Callable[[dict[str, Any]], pb.GetChainResponse] | None = None,
    ) -> None:
        self._size = size
        self._build = build or _chain_reply
        self._replies: dict[str, tuple[dict[str, Any], pb.GetChainResponse]] = {}
        self._lock = threading.Lock()

    def of(self, view: dict[str, Any]) -> pb.GetChainResponse:
        coi = view["coi"]
        known = self._replies.get(coi)
        if known is not None and known[0] is view:
            return known[1]
        reply = self._build(view)
        with self._lock:
            self._replies.pop(coi, None)
            self._replies[coi] = (view, reply)
            while len(self._replies) > self._size:
                del self._replies[next(iter(self._replies))]
        return reply


class ChainQueryServicer(pb_grpc.ChainQueryServiceServicer):
    def __init__(self, queries: ChainQueries, hub: AlertHub) -> None:
        self._queries = queries
        self._hub = hub
        self._replies = ChainReplies()

    @translate_errors
    def GetChain(self, request: pb.GetChainRequest, context: Any) -> pb.GetChainResponse:
        view = self._queries.chain(caller_scope(), request.coi)
        return self._replies.of(view)

    @translate_errors
    def ListChains(self, request: pb.ListChainsRequest, context: Any) -> pb.ListChainsResponse:
        wanted = ChainFilter(
            stage=request.stage,
            site_id=request.site_id,
            has_alerts=request.has_alerts if request.HasField("has_alerts") else None,
            updated_since=optional_time(request, "updated_since"),
        )
        page = self._queries.list_chains(
            caller_scope(), wanted, request.page_size, request.page_token
        )
        return pb.ListChainsResponse(
            chains=[proto_views.summary(s) for s in page.chains], next_page_token=page.next_after
        )

    @translate_errors
    def GetCustodyTimeline(
        self, request: pb.GetCustodyTimelineRequest, context: Any
    ) -> pb.GetCustodyTimelineResponse:
        units = self._queries.custody(caller_scope(), request.coi)
        return pb.GetCustodyTimelineResponse(
            coi=request.coi.strip(), units=[proto_views.unit(u) for u in units]
        )

    @translate_errors
    def GetKpis(self, request: pb.GetKpisRequest, context: Any) -> pb.GetKpisResponse:
        return proto_views.kpis(self._queries.kpis(caller_scope()))

    def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: Any
    ) -> Iterator[pb.WatchAlertsResponse]:
        scope = caller_scope()
        if request.coi:
            try:
                self._queries.chain(scope, request.coi)
            except DomainError as error:
                context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error))
        watch = Watch(scope, request.coi.strip(), frozenset(request.kinds))
        self._hub.watch(watch, request.include_existing)
        try:
            for alert in watch.alerts(WATCH_POLL_S, context.is_active):
                yield pb.WatchAlertsResponse(alert=proto_views.alert(alert, alert["coi"]))
        finally:
            self._hub.forget(watch)


def register(queries: ChainQueries, hub: AlertHub) -> Callable[[Any], None]:
    def add(server: Any) -> None:
        pb_grpc.add_ChainQueryServiceServicer_to_server(ChainQueryServicer(queries, hub), server)

    return add
