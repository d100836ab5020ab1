"""`GET /v1/chains/{coi}/epcis`: the chain's facts as an EPCIS 2.0 JSON-LD document
(`application/ld+json`), read with the access of GetChain: a chain the caller may not read is
404, like one that does not exist (the `ChainQueries.chain` check).
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.http_api import SiteTokenVerifier, require_roles
from v2v_platform.scope import Scope
from v2v_projection.adapters.grpc_api import ACCESS
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.queries import ChainQueries
from v2v_projection.standards.epcis import MEDIA_TYPE, epcis_document

READ = ACCESS["GetChain"]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An EPCIS 2.0 EPCISDocument (JSON-LD) of the chain's events.",
        "content": {MEDIA_TYPE: {"schema": {"type": "object"}}},
    }
}


def epcis_router(
    queries: ChainQueries, projection: ChainProjection, verifier: SiteTokenVerifier
) -> APIRouter:
    router = APIRouter()
    caller_of = require_roles(lambda: verifier, *READ.roles)

    def scope_of(caller: Annotated[CallerIdentity, Depends(caller_of)]) -> Scope:
        return Scope.of(caller)

    @router.get(
        "/v1/chains/{coi}/epcis",
        openapi_extra=READ.openapi(),
        response_class=Response,
        responses=RESPONSES,
    )
    def get_epcis(scope: Annotated[Scope, Depends(scope_of)], coi: str) -> Response:
        """The chain's custody, transformations, temperatures and refusals as an EPCIS 2.0
        JSON-LD EPCISDocument (docs/standards.md): each event's eventID its CBV 2.0 event
        hash. No gRPC twin (same access as GetChain)."""
        view = queries.chain(scope, coi)
        document = epcis_document(projection.envelopes_of(view["coi"]), datetime.now(UTC))
        return Response(json.dumps(document, ensure_ascii=False), media_type=MEDIA_TYPE)

    return router
