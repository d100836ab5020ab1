"""Site bearer tokens for the HTTP APIs: ES256 JWTs signed by the consortium CA.

The token names the site (`sub`) and the roles its certificate grants; it is issued from
the PKI directory (`v2v pki token`), so a site's HTTP identity always matches its mTLS one.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import jwt
from cryptography import x509

from v2v_platform.auth.identity import identity_from_certificate
from v2v_platform.auth.pki import PkiError, load_ca
from v2v_platform.auth.tls import SiteTlsFiles

TOKEN_AUDIENCE = "v2v-site-api"
TOKEN_ALGORITHM = "ES256"


def issue_site_token(pki_dir: Path, site_id: str, days: int = 1) -> str:
    """A bearer token for `site_id`, valid for `days`, carrying its certificate's roles."""
    files = SiteTlsFiles.for_site(pki_dir, site_id)
    if not files.cert.is_file():
        raise PkiError(f"no certificate for site {site_id} in {pki_dir}; run `v2v pki add-site`")
    identity = identity_from_certificate(x509.load_pem_x509_certificate(files.cert.read_bytes()))
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "sub": identity.site_id,
        "roles": sorted(r.value for r in identity.roles),
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + datetime.timedelta(days=days),
    }
    return jwt.encode(claims, load_ca(pki_dir).key, algorithm=TOKEN_ALGORITHM)
