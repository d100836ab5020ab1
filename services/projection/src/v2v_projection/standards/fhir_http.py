"""The FHIR R5 read API under /fhir (docs/standards.md, "FHIR R5"): `BiologicallyDerivedProduct`
and `BiologicallyDerivedProductDispense` read by id and searched by identifier, and the
`CapabilityStatement` at /fhir/metadata.

Sites authenticate exactly as on /v1 (site bearer tokens, the roles of GetChain) and read the
chains their relationship facts relate them to (an auditor every chain): a resource of a chain
the caller may not read is 404 like one that does not exist, and a search returns only
resources of readable chains. /fhir/metadata is open, as FHIR servers serve it (it describes
the API and holds no record; left out of the OpenAPI document like the health routes).
Every answer is `application/fhir+json`; every error an `OperationOutcome` with its status
(400 naming the bad search parameter, 401, 403, 404, 503).
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from v2v_platform.access_policy import Access, Relation, reads
from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.errors import DomainError
from v2v_platform.http_api import SiteTokenVerifier, note_coi, require_roles
from v2v_platform.scope import Scope
from v2v_projection.adapters.grpc_api import ACCESS, READERS
from v2v_projection.queries import ChainQueries
from v2v_projection.standards import fhir, fhir_search

PREFIX = "/fhir"
READ = ACCESS["GetChain"]
SEARCH = reads(Relation.FILTERED, *READERS)
"""A search answers with the resources of the chains the caller reads (like ListChains)."""
CAPABILITIES_DATE = "2026-12-05"
"""When the capabilities below last changed (the CapabilityStatement's `date`)."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Search = Callable[[ChainQueries, Scope, list[tuple[str, str]]], list[dict[str, Any]]]
Read = Callable[[ChainQueries, Scope, str], dict[str, Any]]


def answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=fhir.FHIR_JSON)


def outcome(status: int, diagnostics: str, expression: str = "") -> JSONResponse:
    return answer(fhir.operation_outcome(status, diagnostics, expression), status)


class FhirRoute(APIRoute):
    """Every refusal of a /fhir route as an OperationOutcome (the app's handlers answer
    problem+json, which FHIR clients do not read)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except fhir_search.BadSearch as error:
                return outcome(400, str(error), error.parameter)
            except RequestValidationError as error:
                shown = "; ".join(str(e.get("msg", "")) for e in error.errors())
                return outcome(400, f"invalid request: {shown}")
            except StarletteHTTPException as error:
                refused = outcome(error.status_code, str(error.detail))
                refused.headers.update(error.headers or {})
                return refused
            except DomainError as error:
                return outcome(error.http_status, str(error))

        return answered


def fhir_router(queries: ChainQueries, verifier: SiteTokenVerifier) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=FhirRoute, tags=["FHIR R5"])

    def scope_for(access: Access) -> Any:
        caller_of = require_roles(lambda: verifier, *access.roles)

        def scope_of(caller: Annotated[CallerIdentity, Depends(caller_of)]) -> Scope:
            return Scope.of(caller)

        return scope_of

    Reader = Annotated[Scope, Depends(scope_for(READ))]
    Searcher = Annotated[Scope, Depends(scope_for(SEARCH))]
    Identifier = Annotated[
        list[str] | None, Query(description="token: system|value, |value or value")
    ]
    Id = Annotated[list[str] | None, Query(alias="_id", description="resource id")]

    def base_url(request: Request) -> str:
        return f"{str(request.base_url).rstrip('/')}{PREFIX}"

    @router.get("/metadata", include_in_schema=False)
    def metadata(request: Request) -> JSONResponse:
        """The CapabilityStatement (open: it describes the API and holds no record)."""
        return answer(fhir.capability_statement(CAPABILITIES_DATE, base_url(request)))

    def serve(kind: str, search: Search, read: Read, what: str) -> None:
        """GET /fhir/<kind> (search) and /fhir/<kind>/{resource_id} (read)."""

        @router.get(
            f"/{kind}",
            openapi_extra=SEARCH.openapi(),
            summary=f"Search {kind}",
            description=f"Searchset Bundle of the {what} of the chains the caller reads that"
            " match every parameter.",
        )
        def search_type(
            request: Request, scope: Searcher, identifier: Identifier = None, _id: Id = None
        ) -> JSONResponse:
            found = search(queries, scope, request.query_params.multi_items())
            return answer(fhir.searchset(base_url(request), str(request.url), found))

        @router.get(
            f"/{kind}/{{resource_id}}",
            openapi_extra=READ.openapi(),
            summary=f"Read {kind}",
            description=f"One of the {what} of a chain the caller reads"
            " (id: `<DIN + flags>-<COI>`).",
        )
        def read_one(request: Request, scope: Reader, resource_id: str) -> JSONResponse:
            made = read(queries, scope, resource_id)
            note_coi(request, resource_id.rpartition("-")[2])
            return answer(made)

    serve(fhir.PRODUCT, fhir_search.search_products, fhir_search.read_product, "units")
    serve(fhir.DISPENSE, fhir_search.search_dispenses, fhir_search.read_dispense, "dispenses")

    @router.get("/{anything:path}", include_in_schema=False)
    def unknown(anything: str) -> JSONResponse:
        """Any other path under /fhir: a FHIR 404 (no record is named, none is read)."""
        served = f"{fhir.PRODUCT}, {fhir.DISPENSE} and metadata"
        return outcome(404, f"this server serves {served} only, not {anything[:80]!r}")

    return router
