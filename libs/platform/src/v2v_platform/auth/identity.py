"""Who is calling: a site and its roles, read only from its verified X.509 certificate.

A site certificate names its site as exactly one SAN URI ``urn:v2v:site:<SITE_ID>`` and
each of its roles as a SAN URI ``urn:v2v:role:<role>``. Request fields and metadata are
never consulted. The identity of the caller being served is held in a context variable
(``current_caller()``), set by the gRPC ``AuthInterceptor`` for the handler's duration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

SITE_URI_PREFIX = "urn:v2v:site:"
ROLE_URI_PREFIX = "urn:v2v:role:"
SITE_ID_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")


class Role(StrEnum):
    """What a site may do; a site holds one or more roles."""

    COLLECTION = "collection"
    MANUFACTURING = "manufacturing"
    QC = "qc"
    INFUSION = "infusion"
    COURIER = "courier"
    AUDITOR = "auditor"
    ADMIN = "admin"


ROLE_NAMES = ", ".join(role.value for role in Role)


class InvalidSiteId(ValueError):
    """A site id that does not match ``[A-Z0-9][A-Z0-9-]{1,31}``."""


class UnknownRole(ValueError):
    """A role name that is not one of ``Role``."""


class CallerIdentityError(Exception):
    """A peer certificate that does not carry a usable v2v site identity."""


class NoCurrentCaller(RuntimeError):
    """``current_caller()`` was called outside an authenticated request."""


def parse_site_id(text: str) -> str:
    if SITE_ID_PATTERN.fullmatch(text) is None:
        raise InvalidSiteId(
            f"site id {text!r} is invalid: expected 2-32 characters of A-Z, 0-9 and '-', "
            "starting with A-Z or 0-9 (upper case only)"
        )
    return text


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise UnknownRole(f"unknown role {text!r}; known roles: {ROLE_NAMES}") from None


def site_uri(site_id: str) -> str:
    return f"{SITE_URI_PREFIX}{parse_site_id(site_id)}"


def role_uri(role: Role) -> str:
    return f"{ROLE_URI_PREFIX}{role.value}"


@dataclass(frozen=True)
class CallerIdentity:
    """An authenticated site and the roles its certificate grants."""

    site_id: str
    roles: frozenset[Role]

    def has_any_role(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)


def _certificate_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.UniformResourceIdentifier))


def _describe(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()!r} (serial {cert.serial_number:x})"


def _site_from_uris(cert: x509.Certificate, uris: list[str]) -> str:
    sites = [uri.removeprefix(SITE_URI_PREFIX) for uri in uris if uri.startswith(SITE_URI_PREFIX)]
    if len(sites) != 1:
        found = "no" if not sites else f"{len(sites)} ({', '.join(sites)})"
        raise CallerIdentityError(
            f"{_describe(cert)} has {found} '{SITE_URI_PREFIX}<SITE_ID>' SAN URIs; "
            "expected exactly 1"
        )
    try:
        return parse_site_id(sites[0])
    except InvalidSiteId as error:
        raise CallerIdentityError(f"{_describe(cert)}: {error}") from None


def _roles_from_uris(cert: x509.Certificate, uris: list[str]) -> frozenset[Role]:
    roles: set[Role] = set()
    for uri in uris:
        if uri.startswith(ROLE_URI_PREFIX):
            try:
                roles.add(parse_role(uri.removeprefix(ROLE_URI_PREFIX)))
            except UnknownRole as error:
                raise CallerIdentityError(f"{_describe(cert)}: {error}") from None
    return frozenset(roles)


def identity_from_certificate(cert: x509.Certificate) -> CallerIdentity:
    """The site and roles named in ``cert``'s SAN URIs (the cert must already be verified)."""
    uris = _certificate_uris(cert)
    return CallerIdentity(_site_from_uris(cert, uris), _roles_from_uris(cert, uris))


def identity_from_pem(pem: bytes) -> CallerIdentity:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        raise CallerIdentityError(
            f"peer certificate is not a readable PEM certificate: {error}"
        ) from error
    return identity_from_certificate(cert)


_CURRENT_CALLER: ContextVar[CallerIdentity | None] = ContextVar("v2v_current_caller", default=None)


def current_caller() -> CallerIdentity:
    """The authenticated caller of the request being served."""
    caller = _CURRENT_CALLER.get()
    if caller is None:
        raise NoCurrentCaller(
            "no authenticated caller in this context: current_caller() works only inside a "
            "request handled behind AuthInterceptor (or inside caller_context())"
        )
    return caller


def set_current_caller(identity: CallerIdentity) -> None:
    """Set the caller for the current context (the interceptor runs handlers in a copy)."""
    _CURRENT_CALLER.set(identity)


@contextmanager
def caller_context(identity: CallerIdentity) -> Iterator[CallerIdentity]:
    """Act as ``identity`` inside the block (in-process callers and tests)."""
    token = _CURRENT_CALLER.set(identity)
    try:
        yield identity
    finally:
        _CURRENT_CALLER.reset(token)
