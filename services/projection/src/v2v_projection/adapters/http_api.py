"""HTTP JSON API under /v1: the same reads as gRPC, for browsers, dashboards and scripts.

Sites authenticate with consortium-signed bearer tokens (site and roles from the token); a
chain the caller may not read is 404, like one that does not exist. Errors are problem+json.
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.http_api import SiteTokenVerifier, create_app, require_roles
from v2v_platform.scope import Scope
from v2v_projection.adapters.grpc_api import READERS
from v2v_projection.queries import ChainFilter, ChainQueries

DESCRIPTION = (
    "Chain of identity and custody per COI, folded from every context topic: units and"
    " lineage, custody intervals, stage, release and infusion status, e-signatures, alerts"
    " and KPIs. A site reads the chains it takes part in; an auditor reads all."
)


def create_http_app(queries: ChainQueries, verifier: SiteTokenVerifier) -> FastAPI:
    app = create_app("v2v projection core", "1", DESCRIPTION)
    reader = require_roles(lambda: verifier, *READERS)

    def scope_of(caller: Annotated[CallerIdentity, Depends(reader)]) -> Scope:
        return Scope.of(caller)

    Reader = Annotated[Scope, Depends(scope_of)]

    @app.get("/v1/chains")
    def list_chains(
        scope: Reader,
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

    @app.get("/v1/chains/{coi}")
    def get_chain(scope: Reader, coi: str) -> dict[str, Any]:
        """One chain with everything known about it."""
        return queries.chain(scope, coi)

    @app.get("/v1/chains/{coi}/custody")
    def get_custody(scope: Reader, coi: str) -> dict[str, Any]:
        """Every unit of the chain with its custody intervals."""
        return {"coi": coi, "units": queries.custody(scope, coi)}

    @app.get("/v1/kpis")
    def get_kpis(scope: Reader) -> dict[str, Any]:
        """KPIs for the consortium and per site."""
        return queries.kpis()

    @app.get("/v1/alerts")
    def list_alerts(
        scope: Reader, kind: str = "", since: datetime | None = None, coi: str = ""
    ) -> dict[str, Any]:
        """Alerts of the chains the caller may read, oldest first."""
        return {"alerts": queries.alerts(scope, kind, since, coi)}

    return app
