"""The console's login: a site token (`v2v pki token`) pasted once, kept in a cookie.

The cookie holds the token itself and is verified on every request exactly like a bearer
token (`SiteTokenVerifier`: signature, expiry, revocation of the token or of its site's
certificate), so revoking a token ends its console session at the next request. It is
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Path=/console,
Secure when the request came over https, and lives until the token expires.

Forms are posted same-origin only: a POST whose Origin header names another origin (or
`null`) is refused with 403, on top of SameSite=Strict.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import jwt
from fastapi import Request, Response

from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.auth.revocation_watch import TokenRevoked
from v2v_platform.http_api import CALLER_STATE, SiteTokenVerifier

COOKIE = "v2v_console"
PATH = "/console"
MAX_FORM_BYTES = 16 * 1024


class NoSession(Exception):
    """No cookie, or one whose token is no longer valid (expired, revoked, forged)."""


class ForeignOrigin(Exception):
    """A POST from a page of another origin."""


def identity(verifier: SiteTokenVerifier, token: str) -> CallerIdentity:
    """The token's caller; NoSession when the token is not (or no longer) valid.
    RevocationListUnusable passes through (every token is refused then: fail closed)."""
    try:
        return verifier.identity(token)
    except TokenRevoked as error:
        raise NoSession(f"the token was revoked: {error}") from None
    except (jwt.PyJWTError, ValueError) as error:
        raise NoSession(f"not a valid site token: {error}") from None


def session_caller(verifier: SiteTokenVerifier, request: Request) -> CallerIdentity:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise NoSession("not logged in")
    caller = identity(verifier, token)
    setattr(request.state, CALLER_STATE, caller)  # the access log names the console's caller
    return caller


def seconds_left(token: str) -> int:
    """Until the (already verified) token expires."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return max(0, int(claims["exp"]) - int(time.time()))


def set_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=seconds_left(token),
        path=PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path=PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def check_origin(request: Request) -> None:
    """ForeignOrigin when the request's Origin header names another origin than the
    console's own (no Origin header: a same-origin form of an older browser; SameSite=Strict
    keeps the cookie from cross-site requests anyway)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != own_origin(request):
        raise ForeignOrigin(f"a form from {origin[:100]!r} may not post to this console")


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form body (first value of each field); a body of another type or above
    MAX_FORM_BYTES reads as an empty form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items() if values}
