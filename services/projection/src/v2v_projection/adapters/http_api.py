"""HTTP JSON API under /v1: the same reads as gRPC, for browsers, dashboards and scripts.

Sites authenticate with consortium-signed bearer tokens (site and roles from the token); a
chain the caller may not read is 404, like one that does not exist. Errors are problem+json.
Every route declares its access (`openapi_extra`: the gRPC twin's `ACCESS`, or `ALERTS`; the
integrity route has no gRPC twin and the access of GetChain).
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from v2v_platform.access_policy import Access, Relation, reads
from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.http_api import SiteTokenVerifier, create_app, require_roles
from v2v_platform.scope import Scope
from v2v_projection.adapters.grpc_api import ACCESS, READERS
from v2v_projection.integrity import ChainIntegrity
from v2v_projection.queries import ChainFilter, ChainQueries
from v2v_projection.standards.epcis_http import epcis_router
from v2v_projection.standards.fhir_http import fhir_router

DESCRIPTION = (
    "Chain of identity and custody per COI, folded from every context topic: units and"
    " lineage, custody intervals, stage, release and infusion status, e-signatures, alerts"
    " and KPIs. A site reads the chains its relationship facts relate it to (enrolling,"
    " treating, GMP, QC, shipment origin, destination and carrier); an auditor reads all."
)
ALERTS = reads(Relation.FILTERED, *READERS)
"""`GET /v1/alerts` (no gRPC twin): the alerts of the chains the caller reads."""


def create_http_app(
    queries: ChainQueries,
    verifier: SiteTokenVerifier,
    integrity: ChainIntegrity | None = None,
) -> FastAPI:
    """`integrity`: by default checked against the key ring of the projection's verifier."""
    app = create_app("v2v projection core", "1", DESCRIPTION)
    integrity = integrity or ChainIntegrity(queries)

    def scope_for(access: Access) -> Any:
        caller_of = require_roles(lambda: verifier, *access.roles)

        async def scope_of(caller: Annotated[CallerIdentity, Depends(caller_of)]) -> Scope:
            return Scope.of(caller)  # on the event loop: no thread hand-off for this

        return scope_of

    Lister = Annotated[Scope, Depends(scope_for(ACCESS["ListChains"]))]
    Reader = Annotated[Scope, Depends(scope_for(ACCESS["GetChain"]))]
    CustodyReader = Annotated[Scope, Depends(scope_for(ACCESS["GetCustodyTimeline"]))]
    KpiReader = Annotated[Scope, Depends(scope_for(ACCESS["GetKpis"]))]
    AlertReader = Annotated[Scope, Depends(scope_for(ALERTS))]

    @app.get("/v1/chains", openapi_extra=ACCESS["ListChains"].openapi())
    def list_chains(
        scope: Lister,
        stage: str = "",
        site_id: str = "",
        has_alerts: bool | None = None,
        updated_since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: str = "",
    ) -> dict[str, Any]:
        """Chain summaries by COI; `next_after` is the `after` of the next page."""
        wanted = ChainFilter(stage, site_id, has_alerts, updated_since)
        page = queries.list_chains(scope, wanted, limit, after)
        return {"chains": page.chains, "next_after": page.next_after}

    @app.get("/v1/chains/{coi}", openapi_extra=ACCESS["GetChain"].openapi())
    def get_chain(scope: Reader, coi: str) -> dict[str, Any]:
        """One chain with everything known about it."""
        return queries.chain(scope, coi)

    @app.get("/v1/chains/{coi}/integrity", openapi_extra=ACCESS["GetChain"].openapi())
    def get_integrity(scope: Reader, coi: str) -> dict[str, Any]:
        """The integrity of the chain's streams, verified now: each envelope's hash, signature
        and author, the links and versions of each stream, the records refused for the COI,
        and per stream the latest verified checkpoint of its service that commits it, with
        the inclusion proof of the committed head checked against its signed root. No gRPC
        twin (same access as GetChain)."""
        return integrity.of(scope, coi)

    @app.get("/v1/chains/{coi}/custody", openapi_extra=ACCESS["GetCustodyTimeline"].openapi())
    def get_custody(scope: CustodyReader, coi: str) -> dict[str, Any]:
        """Every unit of the chain with its custody intervals."""
        return {"coi": coi, "units": queries.custody(scope, coi)}

    @app.get("/v1/kpis", openapi_extra=ACCESS["GetKpis"].openapi())
    def get_kpis(scope: KpiReader) -> dict[str, Any]:
        """KPIs over the chains the caller reads (an auditor: the consortium), and per site."""
        return queries.kpis(scope)

    @app.get("/v1/alerts", openapi_extra=ALERTS.openapi())
    def list_alerts(
        scope: AlertReader, kind: str = "", since: datetime | None = None, coi: str = ""
    ) -> dict[str, Any]:
        """Alerts of the chains the caller may read, oldest first."""
        return {"alerts": queries.alerts(scope, kind, since, coi)}

    app.include_router(epcis_router(queries, queries.projection, verifier))  # chain as EPCIS
    app.include_router(fhir_router(queries, verifier))  # /fhir: FHIR R5, OperationOutcome errors
    return app
