"""The five kinds of caller every method and route is tried with, and their credentials.

- no credentials: gRPC over TLS without a client certificate; HTTP without a token;
- wrong role: the related site, certified with only roles the call does not declare;
- unrelated: a site no seeded record relates to (`UNRELATED_SITE`), certified with the
  declared roles (less the auditor's, which reads all by design); on courier routes a
  courier on none of the seeded shipments;
- related: the site (or courier) the seeded journey relates to the call's target, with its
  own consortium certificate or token;
- auditor: the consortium's auditor site.

Certificates and tokens for the wrong-role and unrelated callers are minted with the
consortium CA into a directory of their own (the consortium's PKI is left as it is).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from v2v_platform.auth.identity import Role
from v2v_platform.auth.pki import SiteSpec, issue_site_certificate, load_ca
from v2v_platform.auth.tls import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    SITE_CERT_FILE,
    SITE_KEY_FILE,
    SITES_DIR,
    SiteTlsFiles,
)
from v2v_platform.auth.tokens import issue_site_token

UNRELATED_SITE = "HOSP-Z"


class CallerKind(StrEnum):
    NO_CREDENTIALS = "no-credentials"
    WRONG_ROLE = "wrong-role"
    UNRELATED = "unrelated"
    AUDITOR = "auditor"
    RELATED = "related"


ORDER = (
    CallerKind.NO_CREDENTIALS,
    CallerKind.WRONG_ROLE,
    CallerKind.UNRELATED,
    CallerKind.AUDITOR,
    CallerKind.RELATED,
)
"""Refused callers first, so nothing changes before every refusal was tried; the auditor
(reads only) before the related callers, whose writes go last."""


def other_roles(roles: Iterable[Role]) -> frozenset[Role]:
    """Every role but `roles`: what a wrong-role caller holds."""
    return frozenset(Role) - frozenset(roles)


def unrelated_roles(roles: Iterable[Role]) -> frozenset[Role]:
    """The declared roles an unrelated site holds (an auditor reads all by design)."""
    return frozenset(roles) - {Role.AUDITOR}


@dataclass(frozen=True)
class Caller:
    """Who makes one call: `tls` for gRPC (None: no client certificate), `token` for HTTP
    (None: no Authorization header). `who` names it in reports."""

    kind: CallerKind
    who: str
    tls: SiteTlsFiles | None = None
    token: str | None = None


class Credentials:
    """Certificates and tokens: the consortium's own (`pki`) and minted ones (`workdir`)."""

    def __init__(self, pki: Path, workdir: Path, courier_tokens: dict[str, str]) -> None:
        self.pki = pki
        self.workdir = workdir
        self.courier_tokens = courier_tokens
        self._tokens: dict[tuple[Path, str], str] = {}

    @property
    def ca(self) -> Path:
        return self.pki / CA_CERT_FILE

    def site_files(self, site_id: str) -> SiteTlsFiles:
        return SiteTlsFiles.for_site(self.pki, site_id)

    def site_token(self, site_id: str) -> str:
        return self._token(self.pki, site_id)

    def minted_files(self, site_id: str, roles: frozenset[Role]) -> SiteTlsFiles:
        return SiteTlsFiles.for_site(self._minted(site_id, roles), site_id)

    def minted_token(self, site_id: str, roles: frozenset[Role]) -> str:
        return self._token(self._minted(site_id, roles), site_id)

    def courier_token(self, courier_id: str) -> str:
        return self.courier_tokens[courier_id]

    def _token(self, pki: Path, site_id: str) -> str:
        key = (pki, site_id)
        if key not in self._tokens:
            self._tokens[key] = issue_site_token(pki, site_id)
        return self._tokens[key]

    def _minted(self, site_id: str, roles: frozenset[Role]) -> Path:
        """A PKI-shaped directory holding the consortium CA (linked) and one certificate for
        `site_id` with exactly `roles`."""
        name = "-".join(sorted(role.value for role in roles)) or "none"
        directory = self.workdir / f"{site_id}.{name}"
        site_dir = directory / SITES_DIR / site_id
        if site_dir.is_dir():
            return directory
        site_dir.mkdir(parents=True, mode=0o700)
        for file in (CA_CERT_FILE, CA_KEY_FILE):
            (directory / file).symlink_to((self.pki / file).resolve())
        cert, key = issue_site_certificate(load_ca(self.pki), SiteSpec(site_id, roles))
        (site_dir / SITE_CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = site_dir / SITE_KEY_FILE
        key_path.touch(mode=0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return directory
