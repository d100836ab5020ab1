"""Server interceptor: authenticate every gRPC call by its client certificate, then
authorize it by role, failing closed.

The caller's identity is derived from the peer certificate that the TLS handshake already
verified against the consortium CA (``context.auth_context()["x509_pem_cert"]``), never
from request fields or metadata. A method listed in ``required_roles`` is allowed when the
caller holds ANY of its roles; a method in ``open_methods`` is allowed to any authenticated
site; every other method is denied. ``admin`` is an ordinary role (no implicit bypass).

What a peer certificate says (site, roles, serial) is read once per certificate and remembered
until it expires (``v2v_platform.auth.verification_cache``; V2V_TOKEN_CACHE_SIZE=0: read on
every call); its revocation is checked on every call, and the wrapped handlers are built once
per method.

Given the PKI directory's ``Revocations``, a caller whose certificate is on the consortium CA's
CRL is refused (UNAUTHENTICATED, naming the serial) in the authentication step: grpcio's Python
server cannot load a CRL into the TLS handshake itself. While the CRL is there but cannot be
trusted, every call but the open ones (health, which says why) is refused (UNAVAILABLE).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

import grpc  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509

from v2v_platform import access_log
from v2v_platform.auth.identity import (
    CallerIdentity,
    CallerIdentityError,
    Role,
    current_caller,
    identity_from_certificate,
    identity_from_pem,
    set_current_caller,
)
from v2v_platform.auth.revocation_watch import (
    CertificateRevoked,
    RevocationListUnusable,
    Revocations,
)
from v2v_platform.auth.verification_cache import VerificationCache, cache_size_from_env

logger = logging.getLogger(__name__)

PEER_CERT_KEY = "x509_pem_cert"

HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
REFLECTION_METHODS = frozenset(
    {
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)
DEFAULT_OPEN_METHODS = HEALTH_METHODS | REFLECTION_METHODS

Behavior = Callable[..., Any]


class AuthorizationConfigError(ValueError):
    """The interceptor's method-to-role map is inconsistent."""


def _abort(context: Any, code: Any, details: str) -> NoReturn:
    context.abort(code, details)
    raise RuntimeError("grpc ServicerContext.abort returned instead of raising")


def _role_list(roles: Iterable[Role]) -> str:
    return ", ".join(sorted(role.value for role in roles))


def _check_config(
    required_roles: Mapping[str, frozenset[Role]], open_methods: frozenset[str]
) -> None:
    for method, roles in required_roles.items():
        if not method.startswith("/") or method.count("/") != 2:
            raise AuthorizationConfigError(
                f"method {method!r} is not a full gRPC method name ('/package.Service/Method')"
            )
        if not roles:
            raise AuthorizationConfigError(
                f"method {method!r} maps to no roles; list it in open_methods to allow any "
                "authenticated site, or omit it to deny everyone"
            )
        if method in open_methods:
            raise AuthorizationConfigError(f"method {method!r} is both open and role-restricted")


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """mTLS identity + role authorization for a synchronous ``grpc.server``."""

    def __init__(
        self,
        required_roles: Mapping[str, frozenset[Role]],
        open_methods: Iterable[str] = DEFAULT_OPEN_METHODS,
        revocations: Revocations | None = None,
        *,
        cache_size: int | None = None,
    ) -> None:
        self._open_methods = frozenset(open_methods)
        self._revocations = revocations
        self._required_roles = {
            method: frozenset(roles) for method, roles in required_roles.items()
        }
        _check_config(self._required_roles, self._open_methods)
        size = cache_size_from_env() if cache_size is None else cache_size
        self.peers: VerificationCache[bytes, tuple[CallerIdentity, int]] = VerificationCache(size)
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = str(handler_call_details.method)
        known = self._wrapped.get(method)  # one wrapped handler per method, not per call
        if known is not None and known[0] is handler:
            return known[1]
        logged = None if method in self._open_methods else method
        wrapped = _wrap_handler(handler, self._guard(method), logged)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _guard(self, method: str) -> Callable[[Any], contextvars.Context]:
        def guard(context: Any) -> contextvars.Context:
            identity, serial = _authenticate(method, context, self.peers)
            self._check_revocation(method, identity, serial, context)
            self._authorize(method, identity, context)
            run_context = contextvars.copy_context()
            run_context.run(set_current_caller, identity)
            return run_context

        return guard

    def _check_revocation(
        self, method: str, identity: CallerIdentity, serial: int, context: Any
    ) -> None:
        if self._revocations is None:
            return
        try:
            self._revocations.check_certificate(serial, identity.site_id)
        except CertificateRevoked as error:
            details = f"{method}: {error}"
            logger.warning("unauthenticated: %s", details)
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, details)
        except RevocationListUnusable as error:
            if method in self._open_methods:
                return  # health answers, and says why the service refuses
            details = f"{method}: refused: {error}"
            logger.warning("unavailable: %s", details)
            _abort(context, grpc.StatusCode.UNAVAILABLE, details)

    def _authorize(self, method: str, identity: CallerIdentity, context: Any) -> None:
        if method in self._open_methods:
            return
        required = self._required_roles.get(method)
        if required is None:
            _deny(
                context,
                f"method {method} is not open to site {identity.site_id}: it is not in the "
                "authorization map (denied by default)",
            )
        if not identity.has_any_role(required):
            _deny(
                context,
                f"method {method} requires one of the roles [{_role_list(required)}]; site "
                f"{identity.site_id} has [{_role_list(identity.roles)}]",
            )


def _deny(context: Any, details: str) -> NoReturn:
    logger.warning("permission denied: %s", details)
    _abort(context, grpc.StatusCode.PERMISSION_DENIED, details)


def _authenticate(
    method: str, context: Any, peers: VerificationCache[bytes, tuple[CallerIdentity, int]]
) -> tuple[CallerIdentity, int]:
    """The caller's identity and its certificate's serial (read once per certificate: `peers`
    remembers what a certificate the handshake verified says, until it expires)."""
    certificates = context.auth_context().get(PEER_CERT_KEY) or []
    if not certificates:
        details = f"{method}: no verified client certificate (mutual TLS is required)"
        logger.warning("unauthenticated: %s", details)
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, details)
    pem = bytes(certificates[0])
    known = peers.get(pem)
    if known is not None:
        return known
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        details = f"{method}: peer certificate is not a readable PEM certificate: {error}"
        logger.warning("unauthenticated: %s", details)
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, details)
    try:
        found = identity_from_certificate(cert), int(cert.serial_number)
    except CallerIdentityError as error:
        details = f"{method}: {error}"
        logger.warning("unauthenticated: %s", details)
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, details)
    peers.put(pem, found, cert.not_valid_after_utc.timestamp())
    return found


Guard = Callable[[Any], contextvars.Context]


def _iterate_in(run_context: contextvars.Context, iterator: Iterator[Any]) -> Iterator[Any]:
    """Yield from ``iterator``, running each step inside ``run_context``."""
    while True:
        try:
            item = run_context.run(next, iterator)
        except StopIteration:
            return
        yield item


def _unary_unary(behavior: Behavior, guard: Guard, method: str | None) -> Behavior:
    """`method` is logged to the access log (None: an open method such as health, not)."""
    if method is None:

        def unlogged(request: Any, context: Any) -> Any:
            return guard(context).run(behavior, request, context)

        return unlogged

    def wrapped(request: Any, context: Any) -> Any:
        coi = access_log.coi_of_message(request)
        try:
            run_context = guard(context)
        except Exception:
            access_log.record("grpc", _peer_site(context), (), method, coi, _outcome(context))
            raise
        caller = run_context.run(current_caller)
        try:
            return run_context.run(behavior, request, context)
        finally:
            outcome = _outcome(context)
            coi = coi or run_context.run(access_log.noted_coi)
            access_log.record("grpc", caller.site_id, caller.roles, method, coi, outcome)

    return wrapped


def _outcome(context: Any) -> str:
    code = context.code() if hasattr(context, "code") else None
    return str(code.name) if code is not None else "OK"


def _peer_site(context: Any) -> str:
    certificates = context.auth_context().get(PEER_CERT_KEY) or []
    try:
        return identity_from_pem(bytes(certificates[0])).site_id if certificates else ""
    except CallerIdentityError:
        return ""


def _unary_stream(behavior: Behavior, guard: Guard, method: str | None) -> Behavior:
    """A server stream (e.g. a watch) is logged when it is refused and when it ends."""

    def wrapped(request: Any, context: Any) -> Iterator[Any]:
        coi = access_log.coi_of_message(request)
        try:
            run_context = guard(context)
        except Exception:
            if method is not None:
                access_log.record("grpc", _peer_site(context), (), method, coi, _outcome(context))
            raise
        caller = run_context.run(current_caller)
        try:
            yield from _iterate_in(run_context, iter(run_context.run(behavior, request, context)))
        finally:
            if method is not None:
                outcome = _outcome(context)
                access_log.record("grpc", caller.site_id, caller.roles, method, coi, outcome)

    return wrapped


def _stream_stream(behavior: Behavior, guard: Guard) -> Behavior:
    def wrapped(request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        run_context = guard(context)
        responses = run_context.run(behavior, request_iterator, context)
        yield from _iterate_in(run_context, iter(responses))

    return wrapped


def _wrap_handler(handler: Any, guard: Guard, method: str | None) -> Any:
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _unary_unary(handler.unary_unary, guard, method), **kwargs
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _unary_stream(handler.unary_stream, guard, method), **kwargs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _unary_unary(handler.stream_unary, guard, method), **kwargs
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_stream(handler.stream_stream, guard), **kwargs
    )
