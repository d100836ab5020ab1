"""Serving a service's HTTP API with FastAPI: problem+json errors and site authentication.

Errors are RFC 9457 problem documents with a 4xx status (never 200 with an error inside);
an unexpected exception is logged and answered 500 without internals. Sites authenticate
with a bearer token signed by the consortium CA (`v2v pki token`), naming the site and its
roles; the caller's site never comes from request fields. A revoked token (`v2v pki
revoke-token`), or one of a revoked site certificate (`v2v pki revoke`), is answered 401
"token revoked"; while a revocation list cannot be trusted, every token is refused with 503.

Input is bounded (`v2v_platform.limits`): a request body above MAX_HTTP_BODY_BYTES is refused
with 413 before it is read (by its Content-Length, or as soon as a chunked body passes the
limit), and request models declare their fields with the types below (`IdText`, `NameText`,
`FreeText`, `Finite`, `Items`), so a field over its limit is a 422 naming the field and limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, FiniteFloat, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from v2v_platform import access_log
from v2v_platform.auth.identity import CallerIdentity, Role, parse_role, parse_site_id
from v2v_platform.auth.revocation_watch import (
    RevocationListUnusable,
    Revocations,
    TokenRevoked,
    revocations_for,
)
from v2v_platform.auth.tokens import read_site_token
from v2v_platform.auth.verification_cache import VerificationCache, cache_size_from_env
from v2v_platform.errors import DomainError
from v2v_platform.limits import (
    MAX_HTTP_BODY_BYTES,
    MAX_ID_CHARS,
    MAX_LIST_ITEMS,
    MAX_NAME_CHARS,
    MAX_PASSWORD_CHARS,
    MAX_TEXT_CHARS,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
ItemT = TypeVar("ItemT")

IdText = Annotated[str, Field(max_length=MAX_ID_CHARS)]
NameText = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
FreeText = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Password = Annotated[SecretStr, Field(max_length=MAX_PASSWORD_CHARS)]
Finite = FiniteFloat
Items = Annotated[list[ItemT], Field(max_length=MAX_LIST_ITEMS)]
"""A list of at most MAX_LIST_ITEMS (`Items[str]`); other bounds: `Field(max_length=...)`."""


def problem(status: int, title: str, detail: str, slug: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:v2v:problem:{slug}", "title": title, "status": status, "detail": detail}
    return JSONResponse({**body, **extra}, status_code=status, media_type=PROBLEM_JSON)


def _domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return problem(error.http_status, error.title, str(error), error.slug)


def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in error.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
    return problem(422, "Invalid request", detail, "invalid-request", errors=errors)


def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    response = problem(error.status_code, "Request refused", str(error.detail), "http-error")
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


class BodyTooLarge(StarletteHTTPException):
    """A request body above the limit (raised while it is being read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")
        self.limit = limit


def _body_too_large(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BodyTooLarge)
    return body_too_large(error.limit)


def body_too_large(limit: int) -> JSONResponse:
    detail = f"the request body exceeds the limit of {limit} bytes ({limit // 1024} KiB)"
    return problem(413, "Request body too large", detail, "body-too-large", limit_bytes=limit)


class BodyLimit:
    """ASGI middleware: a request body above `limit` bytes is refused with 413 before it is
    read: at once when its Content-Length says so, else as soon as the chunks read pass it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_HTTP_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await body_too_large(self.limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


CALLER_STATE = "v2v_caller"
"""Where `require_roles` leaves the authenticated caller for the access log (request state)."""


class AccessLog:
    """ASGI middleware: every request made with a site credential (and every 401/403) goes to
    the access log with the caller's site and roles, the route, the COI path parameter and the
    status (`v2v_platform.access_log`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            _log_access(scope, status)


NOTED_CALLER_STATE = "v2v_noted_caller"
NOTED_COI_STATE = "v2v_noted_coi"
MAX_SHOWN = 64


@dataclass(frozen=True)
class NotedCaller:
    """A caller authenticated by a service's own credential (e.g. a courier token)."""

    site_id: str
    roles: frozenset[Role]
    detail: str = ""  # e.g. "courier=C-1": who, beyond the site, without personal data


def note_caller(request: Request, caller: NotedCaller) -> None:
    """Log this request as `caller`'s (for credentials the platform does not verify itself)."""
    setattr(request.state, NOTED_CALLER_STATE, caller)


def note_coi(request: Request, coi: str) -> None:
    """The COI the request acted on or read, when its path names none (e.g. a shipment's)."""
    setattr(request.state, NOTED_COI_STATE, coi)


def _log_access(scope: Scope, status: int) -> None:
    state = scope.get("state") or {}
    caller: CallerIdentity | NotedCaller | None = state.get(CALLER_STATE)
    caller = caller or state.get(NOTED_CALLER_STATE)
    if caller is None and status not in (401, 403):
        return  # no credential involved (health, OpenAPI, courier page)
    route = scope.get("route")
    what = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    params = scope.get("path_params") or {}
    for name, value in sorted(params.items()):
        if name.endswith("_id"):
            what += f" {name.removesuffix('_id')}={str(value)[:MAX_SHOWN]}"
    if isinstance(caller, NotedCaller) and caller.detail:
        what += f" {caller.detail}"
    coi = access_log.coi_of_params(params) or str(state.get(NOTED_COI_STATE) or "")
    site = caller.site_id if caller is not None else ""
    roles = caller.roles if caller is not None else ()
    access_log.record("http", site, roles, what, coi, str(status))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return problem(500, "Internal error", "the request could not be completed", "internal")


def create_app(
    title: str, version: str, description: str = "", max_body_bytes: int = MAX_HTTP_BODY_BYTES
) -> FastAPI:
    app = FastAPI(title=title, version=version, description=description)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(AccessLog)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    return app


class SiteTokenVerifier:
    """Verifies site bearer tokens against the consortium CA certificate, and against the
    revocation lists beside it (`<pki>/revoked-tokens.jwt`, `<pki>/ca.crl`, followed without a
    restart: `v2v_platform.auth.revocation_watch`): a revoked token, or one issued for a revoked
    site certificate, raises TokenRevoked; a list that cannot be trusted,
    RevocationListUnusable (every token is refused then: fail closed).

    A token's signature and claims are verified once and remembered until it expires
    (`v2v_platform.auth.verification_cache`, `cache_size` entries, by default
    V2V_TOKEN_CACHE_SIZE; 0: verified in full on every request); its revocation is checked on
    every request."""

    def __init__(
        self,
        ca_cert: Path,
        revocations: Revocations | None = None,
        *,
        cache_size: int | None = None,
    ) -> None:
        key = x509.load_pem_x509_certificate(ca_cert.read_bytes()).public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{ca_cert} is not an EC (ES256) consortium CA certificate")
        self._public_key = key
        self._revocations = revocations or revocations_for(ca_cert)
        size = cache_size_from_env() if cache_size is None else cache_size
        self.cache: VerificationCache[str, VerifiedToken] = VerificationCache(size)

    def identity(self, token: str) -> CallerIdentity:
        verified = self.cache.get(token)
        if verified is None:
            verified = self._verify(token)
        self._revocations.check_token(verified.jti, verified.cert_serial, verified.caller.site_id)
        return verified.caller

    def _verify(self, token: str) -> VerifiedToken:
        claims = read_site_token(token, self._public_key)
        site_id = parse_site_id(claims["sub"])
        roles = frozenset(parse_role(r) for r in claims["roles"])
        caller = CallerIdentity(site_id=site_id, roles=roles)
        verified = VerifiedToken(caller, claims["jti"], claims["cert_serial"])
        self.cache.put(token, verified, float(claims["exp"]))
        return verified


@dataclass(frozen=True)
class VerifiedToken:
    """What a site token's signature and claims say (its revocation is checked apart)."""

    caller: CallerIdentity
    jti: str
    cert_serial: str


_bearer = HTTPBearer(auto_error=False)


def require_roles(
    verifier: Callable[[], SiteTokenVerifier], *roles: Role
) -> Callable[..., Awaitable[CallerIdentity]]:
    """A FastAPI dependency: the authenticated caller, who must hold one of `roles`.

    It runs on the event loop (no thread hand-off per request): a verified token is a cache
    look-up and a revocation check; a new token's ES256 check takes ~0.1 ms."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> CallerIdentity:
        if credentials is None:
            raise StarletteHTTPException(
                401, "a site bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        try:
            caller = verifier().identity(credentials.credentials)
        except TokenRevoked as error:
            raise StarletteHTTPException(
                401, f"token revoked: {error}", {"WWW-Authenticate": "Bearer"}
            ) from None
        except RevocationListUnusable as error:
            raise StarletteHTTPException(
                503, f"site tokens cannot be checked for revocation: {error}"
            ) from None
        except (jwt.PyJWTError, ValueError) as error:
            raise StarletteHTTPException(
                401, f"invalid site token: {error}", {"WWW-Authenticate": "Bearer"}
            ) from None
        setattr(request.state, CALLER_STATE, caller)
        if roles and not caller.roles & set(roles):
            needed = ", ".join(r.value for r in roles)
            raise StarletteHTTPException(403, f"site {caller.site_id} lacks a role among: {needed}")
        return caller

    return dependency
