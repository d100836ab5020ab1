"""Site identity and access: consortium PKI, gRPC mTLS, and role-based authorization.

The caller's site and roles come from its verified client certificate, never from
request fields or metadata (see DESIGN.md section 4, "Identity and access").
"""

from v2v_platform.auth.identity import (
    CallerIdentity,
    CallerIdentityError,
    InvalidSiteId,
    NoCurrentCaller,
    Role,
    UnknownRole,
    caller_context,
    current_caller,
    identity_from_certificate,
    identity_from_pem,
    parse_role,
    parse_site_id,
)
from v2v_platform.auth.interceptor import (
    DEFAULT_OPEN_METHODS,
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthInterceptor,
    AuthorizationConfigError,
)
from v2v_platform.auth.tls import (
    SiteTlsFiles,
    TlsFilesMissing,
    channel_credentials,
    secure_channel,
    server_credentials,
)

__all__ = [
    "DEFAULT_OPEN_METHODS",
    "HEALTH_METHODS",
    "REFLECTION_METHODS",
    "AuthInterceptor",
    "AuthorizationConfigError",
    "CallerIdentity",
    "CallerIdentityError",
    "InvalidSiteId",
    "NoCurrentCaller",
    "Role",
    "SiteTlsFiles",
    "TlsFilesMissing",
    "UnknownRole",
    "caller_context",
    "channel_credentials",
    "current_caller",
    "identity_from_certificate",
    "identity_from_pem",
    "parse_role",
    "parse_site_id",
    "secure_channel",
    "server_credentials",
]
