"""Domain error families shared by every service, and how each one reaches a caller.

Domain and application code raise these; the gRPC and HTTP adapters map them to a status
code and a problem+json response. Anything else is a bug and is answered as an internal
error without details.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A command was refused; `str(error)` is the reason, written for the user."""

    slug: ClassVar[str] = "refused"
    title: ClassVar[str] = "Refused"
    http_status: ClassVar[int] = 409
    grpc_code: ClassVar[str] = "FAILED_PRECONDITION"


class InvalidInput(DomainError):
    slug = "invalid-input"
    title = "Invalid input"
    http_status = 422
    grpc_code = "INVALID_ARGUMENT"


class NotFound(DomainError):
    slug = "not-found"
    title = "Not found"
    http_status = 404
    grpc_code = "NOT_FOUND"


class Refused(DomainError):
    """A safety rule refused the command (e.g. a label that does not match)."""

    slug = "refused"
    title = "Refused by a safety rule"


class Conflict(DomainError):
    """Another change won a race (optimistic concurrency); the caller may retry."""

    slug = "conflict"
    title = "Conflicting concurrent change"
    grpc_code = "ABORTED"


class Forbidden(DomainError):
    slug = "forbidden"
    title = "Forbidden"
    http_status = 403
    grpc_code = "PERMISSION_DENIED"


class ReauthenticationFailed(DomainError):
    """An e-signature's re-authentication failed (wrong password, unknown or locked signer)."""

    slug = "reauthentication-failed"
    title = "Re-authentication failed"
    http_status = 401
    grpc_code = "UNAUTHENTICATED"
