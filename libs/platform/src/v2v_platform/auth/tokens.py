"""Site bearer tokens for the HTTP APIs: ES256 JWTs signed by the consortium CA.

The token names the site (`sub`) and the roles its certificate grants; it is issued from
the PKI directory (`v2v pki token`), so a site's HTTP identity always matches its mTLS one.
Each token has its own id (`jti`, what `v2v pki revoke-token` revokes) and names the serial
of the site certificate it was issued from (`cert_serial`, lower-case hex): revoking that
certificate (`v2v pki revoke`) ends the site's tokens too.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from v2v_platform.auth.identity import identity_from_certificate
from v2v_platform.auth.pki import PkiError, load_ca
from v2v_platform.auth.tls import SiteTlsFiles

TOKEN_AUDIENCE = "v2v-site-api"
TOKEN_ALGORITHM = "ES256"
MAX_TOKEN_DAYS = 366
REQUIRED_CLAIMS = ("sub", "exp", "aud", "roles", "jti", "cert_serial")


def serial_text(serial: int) -> str:
    """How a certificate serial is written everywhere in v2v: lower-case hex, no prefix."""
    return format(serial, "x")


def issue_site_token(pki_dir: Path, site_id: str, days: int = 1) -> str:
    """A bearer token for `site_id`, valid for `days`, carrying its certificate's roles."""
    files = SiteTlsFiles.for_site(pki_dir, site_id)
    if not files.cert.is_file():
        raise PkiError(f"no certificate for site {site_id} in {pki_dir}; run `v2v pki add-site`")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    identity = identity_from_certificate(cert)
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "sub": identity.site_id,
        "roles": sorted(r.value for r in identity.roles),
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + datetime.timedelta(days=days),
        "jti": uuid.uuid4().hex,
        "cert_serial": serial_text(cert.serial_number),
    }
    return jwt.encode(claims, load_ca(pki_dir).key, algorithm=TOKEN_ALGORITHM)


def read_site_token(
    token: str, ca_key: ec.EllipticCurvePublicKey, *, verify_exp: bool = True
) -> dict[str, Any]:
    """The claims of a site token signed by the CA whose public key is `ca_key` (jwt errors
    for a forged, foreign, expired - unless `verify_exp` is off - or incomplete token)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        ca_key,
        algorithms=[TOKEN_ALGORITHM],
        audience=TOKEN_AUDIENCE,
        options={"require": list(REQUIRED_CLAIMS), "verify_exp": verify_exp},
    )
    for name in ("jti", "cert_serial"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise jwt.InvalidTokenError(f"claim {name!r} must be a non-empty string")
    return claims
