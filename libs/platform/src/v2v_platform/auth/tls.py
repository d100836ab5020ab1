"""gRPC mTLS credentials from a site's files in a PKI directory made by ``v2v pki``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]

from v2v_platform.auth.identity import parse_site_id

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SITES_DIR = "sites"
SITE_CERT_FILE = "tls.crt"
SITE_KEY_FILE = "tls.key"
SIGNING_KEY_FILE = "signing.key"
KEY_RING_FILE = "signing-keys.json"
CRL_FILE = "ca.crl"
REVOKED_TOKENS_FILE = "revoked-tokens.jwt"

ChannelOption = tuple[str, str | int]


class TlsFilesMissing(FileNotFoundError):
    """A certificate or key file needed for mTLS does not exist."""


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes gRPC needs: consortium CA, site certificate and its private key."""

    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class SiteTlsFiles:
    """Where one site's mTLS files are: the consortium CA, its certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def for_site(cls, pki_dir: Path, site_id: str) -> SiteTlsFiles:
        """``<pki_dir>/ca.crt`` and ``<pki_dir>/sites/<site_id>/tls.{crt,key}``."""
        site_dir = pki_dir / SITES_DIR / parse_site_id(site_id)
        return cls(pki_dir / CA_CERT_FILE, site_dir / SITE_CERT_FILE, site_dir / SITE_KEY_FILE)

    def read(self) -> TlsMaterial:
        missing = [str(path) for path in (self.ca, self.cert, self.key) if not path.is_file()]
        if missing:
            raise TlsFilesMissing(
                f"mTLS file(s) not found: {', '.join(missing)} (create them with "
                "`v2v pki init` / `v2v pki add-site`)"
            )
        return TlsMaterial(self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes())


def server_credentials(files: SiteTlsFiles) -> grpc.ServerCredentials:
    """Server side of mTLS: present the site certificate, require a client certificate
    issued by the consortium CA."""
    material = files.read()
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)],
        root_certificates=material.ca,
        require_client_auth=True,
    )


def channel_credentials(files: SiteTlsFiles) -> grpc.ChannelCredentials:
    """Client side of mTLS: trust only the consortium CA, present the site certificate."""
    material = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca,
        private_key=material.key,
        certificate_chain=material.cert,
    )


def secure_channel(
    target: str,
    credentials: grpc.ChannelCredentials,
    *,
    server_name: str | None = None,
    options: Sequence[ChannelOption] = (),
) -> grpc.Channel:
    """A channel to ``target``; ``server_name`` overrides the name checked against the server
    certificate (site certificates are valid for ``localhost`` and ``127.0.0.1``, plus any
    ``--dns`` names given when they were issued)."""
    all_options = list(options)
    if server_name is not None:
        all_options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=all_options)
