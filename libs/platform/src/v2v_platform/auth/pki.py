"""Development/consortium PKI: one CA, and per site an mTLS certificate + an Ed25519
envelope signing key.

Layout of a PKI directory::

    ca.crt, ca.key               consortium CA (EC P-256, self-signed; key 0600)
    signing-keys.json            consortium key ring: every site's envelope public key and
                                 the site's roles (which events it may author)
    sites/<SITE_ID>/tls.crt      site certificate (EC P-256), CN=<SITE_ID>, SAN URIs
                                 urn:v2v:site:<SITE_ID> and urn:v2v:role:<role>...,
                                 SAN DNS localhost (+ --dns names), IP 127.0.0.1 and ::1;
                                 usable as both gRPC server and client certificate
    sites/<SITE_ID>/tls.key      its private key (0600)
    sites/<SITE_ID>/signing.key  the site's Ed25519 envelope signing key (0600)
    ca.crl                       revoked site certificates: X.509 CRL signed by the CA
                                 (`v2v pki revoke`; 0600; absent: none revoked)
    revoked-tokens.jwt           revoked site bearer tokens, signed by the CA
                                 (`v2v pki revoke-token`; 0600; absent: none revoked)

Re-issuing a site (``add-site --force``) adds its new signing key to the ring and keeps
the old one, so events it signed before stay verifiable; the roles it is re-issued with become
the site's roles for all its keys.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from v2v_platform.auth.identity import (
    ROLE_NAMES,
    CallerIdentityError,
    InvalidSiteId,
    Role,
    UnknownRole,
    identity_from_pem,
    parse_role,
    parse_site_id,
    role_uri,
    site_uri,
)
from v2v_platform.auth.tls import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    CRL_FILE,
    KEY_RING_FILE,
    REVOKED_TOKENS_FILE,
    SIGNING_KEY_FILE,
    SITE_CERT_FILE,
    SITE_KEY_FILE,
    SITES_DIR,
)
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey

CA_COMMON_NAME = "v2v consortium CA"
ORGANIZATION = "v2v consortium"
CA_VALIDITY_DAYS = 3650
DEFAULT_SITE_VALIDITY_DAYS = 365
MAX_VALIDITY_DAYS = 36500
CLOCK_SKEW = datetime.timedelta(minutes=5)
DNS_NAME_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class PkiError(Exception):
    """The PKI directory is not in a state that allows the requested operation."""


class InvalidSiteSpec(ValueError):
    """A ``SITE_ID:role1,role2`` argument that cannot be used."""


@dataclass(frozen=True)
class SiteSpec:
    """A site to issue material for, and the roles its certificate grants."""

    site_id: str
    roles: frozenset[Role]


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class IssuedSite:
    """What was written for one site."""

    site_id: str
    roles: frozenset[Role]
    cert_path: Path
    key_path: Path
    signing_key_path: Path
    signing_key_id: str
    not_after: datetime.datetime


def parse_site_spec(text: str) -> SiteSpec:
    """``SITE_ID:role1,role2`` -> SiteSpec (at least one role)."""
    site_text, separator, roles_text = text.partition(":")
    if not separator:
        raise InvalidSiteSpec(f"site {text!r} has no roles; expected SITE_ID:role1,role2")
    try:
        site_id = parse_site_id(site_text.strip())
        names = [name.strip() for name in roles_text.split(",") if name.strip()]
        roles = frozenset(parse_role(name) for name in names)
    except (InvalidSiteId, UnknownRole) as error:
        raise InvalidSiteSpec(f"site {text!r}: {error}") from None
    if not roles:
        raise InvalidSiteSpec(
            f"site {text!r} has no roles; expected SITE_ID:role1,role2 (roles: {ROLE_NAMES})"
        )
    return SiteSpec(site_id, roles)


def check_unique(specs: Sequence[SiteSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.site_id in seen:
            raise InvalidSiteSpec(f"site {spec.site_id!r} is given more than once")
        seen.add(spec.site_id)


def _check_dns_names(names: Iterable[str]) -> tuple[str, ...]:
    checked = tuple(names)
    for name in checked:
        if DNS_NAME_PATTERN.fullmatch(name) is None:
            raise InvalidSiteSpec(f"DNS name {name!r} is not a valid host name")
    return checked


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600 from creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    path.chmod(0o600)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_ca(days: int = CA_VALIDITY_DAYS) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def load_ca(pki_dir: Path) -> CertificateAuthority:
    cert_path, key_path = pki_dir / CA_CERT_FILE, pki_dir / CA_KEY_FILE
    if not cert_path.is_file() or not key_path.is_file():
        raise PkiError(
            f"no consortium CA in {pki_dir} ({CA_CERT_FILE} and {CA_KEY_FILE} are needed); "
            "run `v2v pki init` first"
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise PkiError(f"cannot read the consortium CA in {pki_dir}: {error}") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise PkiError(f"{key_path} is not the EC private key of the CA certificate {cert_path}")
    return CertificateAuthority(cert, key)


def _site_extensions(
    builder: x509.CertificateBuilder,
    spec: SiteSpec,
    ca: CertificateAuthority,
    key: ec.EllipticCurvePrivateKey,
    dns_names: Sequence[str],
) -> x509.CertificateBuilder:
    uris = [site_uri(spec.site_id), *(role_uri(role) for role in sorted(spec.roles))]
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.DNSName(dns) for dns in ("localhost", *dns_names)]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )


def issue_site_certificate(
    ca: CertificateAuthority,
    spec: SiteSpec,
    days: int = DEFAULT_SITE_VALIDITY_DAYS,
    dns_names: Sequence[str] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new key and certificate for ``spec`` signed by ``ca`` (never outliving the CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = leaf_builder(ca, key, spec.site_id, days)
    cert = _site_extensions(builder, spec, ca, key, dns_names).sign(ca.key, hashes.SHA256())
    return cert, key


def leaf_builder(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, common_name: str, days: int
) -> x509.CertificateBuilder:
    """A certificate for ``key`` named ``common_name`` in the consortium, issued by ``ca``,
    valid from now (less the clock skew) for ``days``, never outliving the CA; the caller adds
    its extensions and signs."""
    now = _now()
    not_after = min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
    )


def _write_ring(pki_dir: Path, ring: KeyRing) -> None:
    path = pki_dir / KEY_RING_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(ring.to_json() + "\n")
    temporary.replace(path)


def _load_ring(pki_dir: Path) -> KeyRing:
    path = pki_dir / KEY_RING_FILE
    if not path.is_file():
        return KeyRing()
    try:
        return KeyRing.load(path)
    except (ValueError, KeyError, TypeError) as error:
        raise PkiError(f"cannot read the key ring {path}: {error!r}") from error


def certified_roles(pki_dir: Path) -> dict[str, frozenset[Role]]:
    """Each site's roles, as its certificate in ``pki_dir`` grants them."""
    roles: dict[str, frozenset[Role]] = {}
    sites = pki_dir / SITES_DIR
    for cert_path in sorted(sites.glob(f"*/{SITE_CERT_FILE}")) if sites.is_dir() else []:
        try:
            identity = identity_from_pem(cert_path.read_bytes())
        except CallerIdentityError as error:
            raise PkiError(f"cannot read the site certificate {cert_path}: {error}") from error
        roles[identity.site_id] = identity.roles
    return roles


def write_ring_roles(pki_dir: Path) -> dict[str, frozenset[Role]]:
    """Write every site's certified roles into the key ring of ``pki_dir`` (a ring made before
    the ring carried roles gets them; its keys stay as they are). Returns the roles written."""
    if not (pki_dir / KEY_RING_FILE).is_file():
        raise PkiError(f"no key ring in {pki_dir}; run `v2v pki init` first")
    ring = _load_ring(pki_dir)
    roles = certified_roles(pki_dir)
    for site_id, granted in roles.items():
        ring.set_roles(site_id, granted)
    _write_ring(pki_dir, ring)
    return roles


def _with_certified_roles(pki_dir: Path, ring: KeyRing) -> KeyRing:
    """Sites the ring names no roles for get those their certificates grant."""
    for site_id, granted in certified_roles(pki_dir).items():
        if not ring.roles_of(site_id):
            ring.set_roles(site_id, granted)
    return ring


def _issue_site(
    pki_dir: Path,
    ca: CertificateAuthority,
    ring: KeyRing,
    spec: SiteSpec,
    days: int,
    dns_names: Sequence[str],
) -> IssuedSite:
    site_dir = pki_dir / SITES_DIR / spec.site_id
    site_dir.mkdir(parents=True, exist_ok=True)
    site_dir.chmod(0o700)
    cert, key = issue_site_certificate(ca, spec, days, dns_names)
    cert_path, key_path = site_dir / SITE_CERT_FILE, site_dir / SITE_KEY_FILE
    _write_private(key_path, _private_pem(key))
    cert_path.write_bytes(_cert_pem(cert))
    signing_key = SiteSigningKey.generate(spec.site_id)
    signing_key_path = site_dir / SIGNING_KEY_FILE
    signing_key.save(signing_key_path)
    key_id = ring.add(spec.site_id, signing_key.public_key, spec.roles)
    return IssuedSite(
        spec.site_id,
        spec.roles,
        cert_path,
        key_path,
        signing_key_path,
        key_id,
        cert.not_valid_after_utc,
    )


def init_pki(
    pki_dir: Path,
    sites: Sequence[SiteSpec],
    *,
    days: int = DEFAULT_SITE_VALIDITY_DAYS,
    force: bool = False,
    dns_names: Iterable[str] = (),
) -> list[IssuedSite]:
    """Create a new CA, key ring and site material in ``pki_dir``.

    Refuses if a CA already exists there unless ``force``, which replaces the whole PKI
    (CA, key ring, every ``sites/`` directory and the old CA's revocation lists).
    """
    check_unique(sites)
    checked_dns = _check_dns_names(dns_names)
    if (pki_dir / CA_CERT_FILE).exists() or (pki_dir / CA_KEY_FILE).exists():
        if not force:
            raise PkiError(
                f"a consortium CA already exists in {pki_dir}; use --force to replace the whole "
                "PKI (CA, key ring and all site material), or `v2v pki add-site` to add sites"
            )
        shutil.rmtree(pki_dir / SITES_DIR, ignore_errors=True)
        (pki_dir / KEY_RING_FILE).unlink(missing_ok=True)
        for revocations in (CRL_FILE, REVOKED_TOKENS_FILE):  # the old CA's lists
            (pki_dir / revocations).unlink(missing_ok=True)
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = create_ca(max(CA_VALIDITY_DAYS, days))
    _write_private(pki_dir / CA_KEY_FILE, _private_pem(ca.key))
    (pki_dir / CA_CERT_FILE).write_bytes(_cert_pem(ca.cert))
    ring = KeyRing()
    issued = [_issue_site(pki_dir, ca, ring, spec, days, checked_dns) for spec in sites]
    _write_ring(pki_dir, ring)
    return issued


def add_sites(
    pki_dir: Path,
    sites: Sequence[SiteSpec],
    *,
    days: int = DEFAULT_SITE_VALIDITY_DAYS,
    force: bool = False,
    dns_names: Iterable[str] = (),
) -> list[IssuedSite]:
    """Issue material for more sites with the CA already in ``pki_dir``.

    Refuses a site that already has a directory unless ``force`` (re-issue; its previous
    signing key stays in the ring).
    """
    check_unique(sites)
    checked_dns = _check_dns_names(dns_names)
    ca = load_ca(pki_dir)
    for spec in sites:
        if (pki_dir / SITES_DIR / spec.site_id).exists() and not force:
            raise PkiError(
                f"site {spec.site_id} already exists in {pki_dir / SITES_DIR}; use --force to "
                "re-issue its certificate and signing key"
            )
    ring = _with_certified_roles(pki_dir, _load_ring(pki_dir))
    issued = [_issue_site(pki_dir, ca, ring, spec, days, checked_dns) for spec in sites]
    _write_ring(pki_dir, ring)
    return issued
