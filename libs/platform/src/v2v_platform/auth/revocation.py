"""Revocation lists in the PKI directory, both signed by the consortium CA.

    ca.crl               X.509 CRL of revoked site certificates (PEM; `v2v pki revoke`)
    revoked-tokens.jwt   revoked site bearer tokens (`v2v pki revoke-token`): an ES256 JWT
                         whose audience is `v2v-revoked-tokens` (never a bearer token's), with
                         `number` and `revoked` = [{jti, sub, exp, revoked_at}]

Each list carries a number that grows with every change (the CRL number extension; `number`),
so a service can refuse an older list put back in place of a newer one. A list is replaced
atomically (written beside it, 0600, then renamed), under a lock, so a service never reads a
half-written one and two operators revoking at once do not lose an entry. An absent list means
nothing is revoked. Services read them through `v2v_platform.auth.revocation_watch`.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from v2v_platform.auth.identity import CallerIdentityError, identity_from_certificate
from v2v_platform.auth.pki import CLOCK_SKEW, CertificateAuthority, PkiError, load_ca
from v2v_platform.auth.tls import (
    CA_CERT_FILE,
    CRL_FILE,
    REVOKED_TOKENS_FILE,
    SITE_CERT_FILE,
    SITES_DIR,
)
from v2v_platform.auth.tokens import (
    MAX_TOKEN_DAYS,
    TOKEN_ALGORITHM,
    read_site_token,
)
from v2v_platform.private_files import private_file

LOCK_FILE = ".revocation.lock"
REVOKED_TOKENS_AUDIENCE = "v2v-revoked-tokens"
REVOKED_TOKENS_TYPE = "v2v-revoked-tokens+jwt"
JTI_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,128}")
SERIAL_PATTERN = re.compile(r"(?:0x)?[0-9a-f]{1,40}")
REASONS = {
    flag.value: flag for flag in x509.ReasonFlags if flag != x509.ReasonFlags.remove_from_crl
}
"""`--reason` values: RFC 5280 reason names as cryptography spells them (keyCompromise...)."""


class RevocationListError(ValueError):
    """A revocation list that cannot be trusted: unreadable, malformed or not the CA's."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- certificates: the CRL ----------------------------------------------------------------


def read_crl(data: bytes, ca_cert: x509.Certificate) -> x509.CertificateRevocationList:
    """The CRL in `data` (PEM or DER), checked to be signed by the CA of `ca_cert`."""
    try:
        crl = (
            x509.load_pem_x509_crl(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_crl(data)
        )
    except ValueError as error:
        raise RevocationListError(f"not a readable CRL: {error}") from None
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise RevocationListError("the consortium CA certificate has no EC key")
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(public_key):
        raise RevocationListError(
            f"not signed by the consortium CA {ca_cert.subject.rfc4514_string()!r} "
            f"(issuer {crl.issuer.rfc4514_string()!r})"
        )
    return crl


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def _load_existing_crl(pki_dir: Path, ca: CertificateAuthority) -> x509.CertificateRevocationList:
    path = pki_dir / CRL_FILE
    try:
        return read_crl(path.read_bytes(), ca.cert)
    except RevocationListError as error:
        raise PkiError(f"{path}: {error}; not adding to it") from None


def _reason_of(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _revoked_entry(
    serial: int, when: datetime.datetime, reason: x509.ReasonFlags | None
) -> x509.RevokedCertificate:
    builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
    if reason is not None and reason != x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(reason), critical=False)
    return builder.build()


def sign_crl(
    ca: CertificateAuthority, entries: list[x509.RevokedCertificate], number: int
) -> x509.CertificateRevocationList:
    """A CRL of `entries`, numbered `number`, valid until the CA itself expires."""
    now = _now()
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(max(ca.cert.not_valid_after_utc, now + datetime.timedelta(days=1)))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(
            _revoked_entry(entry.serial_number, entry.revocation_date_utc, _reason_of(entry))
        )
    return builder.sign(ca.key, hashes.SHA256())


@dataclass(frozen=True)
class CertificateRevocation:
    """What `revoke_certificate` did."""

    serial: int
    site_id: str | None
    revoked_at: datetime.datetime
    already: bool
    crl_number: int
    entries: int
    path: Path


def parse_serial(text: str) -> int:
    """A certificate serial as v2v and openssl print it: hex, optionally 0x, colons allowed."""
    cleaned = text.strip().lower().replace(":", "")
    if SERIAL_PATTERN.fullmatch(cleaned) is None:
        raise PkiError(
            f"{text!r} is neither a certificate file, a site of this PKI, nor a certificate "
            "serial (hex)"
        )
    return int(cleaned.removeprefix("0x"), 16)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a token or a serial, too long or odd for a path
        return False


def _certificate_target(pki_dir: Path, target: str) -> Path | None:
    as_path = Path(target)
    if _is_file(target):
        return as_path
    site_cert = pki_dir / SITES_DIR / target / SITE_CERT_FILE
    if "/" not in target and site_cert.is_file():
        return site_cert
    return None


def resolve_certificate(
    pki_dir: Path, target: str, ca: CertificateAuthority
) -> tuple[int, str | None]:
    """`target` -> (serial, site id when known): a certificate file, a site id of this PKI (its
    current certificate), or a serial in hex."""
    path = _certificate_target(pki_dir, target)
    if path is None:
        return parse_serial(target), None
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as error:
        raise PkiError(f"{path} is not a PEM certificate: {error}") from None
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature) as error:
        message = f"{path} was not issued by the consortium CA in {pki_dir}: {error}"
        raise PkiError(message) from None
    try:
        site_id: str | None = identity_from_certificate(cert).site_id
    except CallerIdentityError:
        site_id = None
    return cert.serial_number, site_id


def revoke_certificate(
    pki_dir: Path, target: str, reason: x509.ReasonFlags | None = None
) -> CertificateRevocation:
    """Add the certificate `target` names (see `resolve_certificate`) to the CRL of `pki_dir`,
    re-signed by the CA with the next number (already revoked: left as it is)."""
    ca = load_ca(pki_dir)
    serial, site_id = resolve_certificate(pki_dir, target, ca)
    path = pki_dir / CRL_FILE
    with _revocation_lock(pki_dir):
        old = _load_existing_crl(pki_dir, ca) if path.exists() else None
        entries = list(old) if old is not None else []
        number = crl_number(old) if old is not None else 0
        for entry in entries:
            if entry.serial_number == serial:
                when = entry.revocation_date_utc
                return CertificateRevocation(
                    serial, site_id, when, True, number, len(entries), path
                )
        now = _now()
        entries.append(_revoked_entry(serial, now, reason))
        crl = sign_crl(ca, entries, number + 1)
        write_atomically(path, crl.public_bytes(serialization.Encoding.PEM))
    return CertificateRevocation(serial, site_id, now, False, number + 1, len(entries), path)


# --- site bearer tokens ------------------------------------------------------------------


@dataclass(frozen=True)
class RevokedToken:
    jti: str
    sub: str | None
    exp: int
    """When the token ends anyway (epoch seconds): the entry may go after it (plus skew)."""
    revoked_at: int

    def as_claim(self) -> dict[str, Any]:
        return {"jti": self.jti, "sub": self.sub, "exp": self.exp, "revoked_at": self.revoked_at}


@dataclass(frozen=True)
class RevokedTokenList:
    number: int
    tokens: tuple[RevokedToken, ...]

    def find(self, jti: str) -> RevokedToken | None:
        for token in self.tokens:
            if token.jti == jti:
                return token
        return None


def read_revoked_tokens(data: bytes, ca_key: ec.EllipticCurvePublicKey) -> RevokedTokenList:
    """The revoked-token list in `data`, checked to be signed by the CA whose key is `ca_key`."""
    try:
        claims = jwt.decode(
            data.decode("ascii").strip(),
            ca_key,
            algorithms=[TOKEN_ALGORITHM],
            audience=REVOKED_TOKENS_AUDIENCE,
            options={"require": ["aud", "iat", "number", "revoked"]},
        )
        entries = claims["revoked"]
        if not isinstance(entries, list) or not isinstance(claims["number"], int):
            raise ValueError("'revoked' must be a list and 'number' an integer")
        tokens = tuple(
            RevokedToken(
                str(entry["jti"]),
                None if entry.get("sub") is None else str(entry["sub"]),
                int(entry["exp"]),
                int(entry["revoked_at"]),
            )
            for entry in entries
        )
    except jwt.InvalidSignatureError:
        raise RevocationListError("not signed by the consortium CA") from None
    except (jwt.PyJWTError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise RevocationListError(f"not a readable revoked-token list: {error}") from None
    return RevokedTokenList(claims["number"], tokens)


def sign_revoked_tokens(ca: CertificateAuthority, tokens: RevokedTokenList) -> bytes:
    claims = {
        "aud": REVOKED_TOKENS_AUDIENCE,
        "iat": _now(),
        "number": tokens.number,
        "revoked": [token.as_claim() for token in tokens.tokens],
    }
    headers = {"typ": REVOKED_TOKENS_TYPE}
    return jwt.encode(claims, ca.key, algorithm=TOKEN_ALGORITHM, headers=headers).encode() + b"\n"


@dataclass(frozen=True)
class TokenRevocation:
    """What `revoke_token` did."""

    token: RevokedToken
    already: bool
    number: int
    entries: int
    path: Path


def _token_target(target: str, ca: CertificateAuthority) -> RevokedToken:
    """`target` -> what to revoke: a token file, a token, or a token id (jti)."""
    text = Path(target).read_text().strip() if _is_file(target) else target.strip()
    now = int(_now().timestamp())
    if text.count(".") == 2:
        public_key = ca.key.public_key()
        try:
            claims = read_site_token(text, public_key, verify_exp=False)
        except jwt.PyJWTError as error:
            raise PkiError(
                f"not a site token of the consortium CA that can be revoked: {error} (a token "
                "issued before tokens had ids ends when it expires; revoking the site's "
                "certificate ends it too)"
            ) from None
        return RevokedToken(claims["jti"], claims["sub"], int(claims["exp"]), now)
    if JTI_PATTERN.fullmatch(text) is None:
        raise PkiError(f"{target!r} is neither a token file, a site token nor a token id (jti)")
    # the token itself is unknown: keep the entry as long as any token can live
    return RevokedToken(text, None, now + MAX_TOKEN_DAYS * 86400, now)


def revoke_token(pki_dir: Path, target: str) -> TokenRevocation:
    """Add the token `target` names to the revoked-token list of `pki_dir`, re-signed by the CA
    with the next number; entries of tokens expired anyway are dropped."""
    ca = load_ca(pki_dir)
    revoked = _token_target(target, ca)
    path = pki_dir / REVOKED_TOKENS_FILE
    with _revocation_lock(pki_dir):
        old = RevokedTokenList(0, ())
        if path.exists():
            try:
                old = read_revoked_tokens(path.read_bytes(), ca.key.public_key())
            except RevocationListError as error:
                raise PkiError(f"{path}: {error}; not adding to it") from None
        existing = old.find(revoked.jti)
        if existing is not None:
            return TokenRevocation(existing, True, old.number, len(old.tokens), path)
        horizon = int((_now() - CLOCK_SKEW).timestamp())
        kept = tuple(token for token in old.tokens if token.exp >= horizon)
        new = RevokedTokenList(old.number + 1, (*kept, revoked))
        write_atomically(path, sign_revoked_tokens(ca, new))
    return TokenRevocation(revoked, False, new.number, len(new.tokens), path)


# --- files ---------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` at once (a reader sees the old or the new file, whole); the
    file is private to its owner (0600) from the moment it exists."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    private_file(temporary)
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _revocation_lock(pki_dir: Path) -> Iterator[None]:
    """One writer of the revocation lists at a time (two operators revoking at once)."""
    if not (pki_dir / CA_CERT_FILE).is_file():
        raise PkiError(f"no consortium CA in {pki_dir}; run `v2v pki init` first")
    lock_path = pki_dir / LOCK_FILE
    private_file(lock_path)
    with lock_path.open("rb") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
