"""How a service follows the revocation lists of its PKI directory, without a restart.

The lists (`v2v_platform.auth.revocation`) sit beside the consortium CA certificate the
service already trusts (`<V2V_PKI_DIR>/ca.crl`, `<V2V_PKI_DIR>/revoked-tokens.jwt`). Each is
looked at (one `stat`) at most every `RELOAD_INTERVAL_S` seconds and read again when it
changed. An absent list means nothing is revoked. A list that is there but cannot be trusted
(unreadable, malformed, not signed by the consortium CA, numbered below the one already loaded,
removed after one was loaded, a CRL past its next update) is never ignored: every check raises
`RevocationListUnusable` (the service refuses every call it guards: fail closed), the error is
logged once, and `Revocations.problems()` gives the reason to the service's health, until a
good list is in place.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from v2v_platform.auth.pki import CLOCK_SKEW
from v2v_platform.auth.revocation import (
    RevocationListError,
    RevokedTokenList,
    crl_number,
    read_crl,
    read_revoked_tokens,
)
from v2v_platform.auth.tls import CRL_FILE, REVOKED_TOKENS_FILE
from v2v_platform.auth.tokens import serial_text

log = logging.getLogger(__name__)

RELOAD_INTERVAL_S = 2.0
"""How often (at most) a service looks whether a revocation list changed."""

T = TypeVar("T")
Clock = Callable[[], float]
WallClock = Callable[[], datetime.datetime]
Signature = tuple[int, ...] | str | None


class RevocationListUnusable(Exception):
    """A revocation list is there but cannot be trusted: refuse (fail closed)."""


class CertificateRevoked(Exception):
    """The caller's certificate is on the consortium CA's CRL."""


class TokenRevoked(Exception):
    """The site token, or the certificate it was issued for, is revoked."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class WatchedList(Generic[T]):
    """One revocation list file, read again when it changes (see the module doc)."""

    def __init__(
        self,
        path: Path,
        what: str,
        parse: Callable[[bytes], T],
        number: Callable[[T], int],
        *,
        expired: Callable[[T], str | None] = lambda _: None,
        interval_s: float = RELOAD_INTERVAL_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self.path = path
        self.what = what
        self._parse = parse
        self._number_of = number
        self._expired = expired
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next_look = float("-inf")
        self._signature: Signature = None
        self._value: T | None = None
        self._number: int | None = None
        self._error: str | None = None

    def current(self) -> T | None:
        """The list in force (None: no list, nothing revoked); raises RevocationListUnusable."""
        with self._lock:
            now = self._clock()
            if now >= self._next_look:
                self._next_look = now + self._interval_s
                self._look()
            error, value = self._error, self._value
        if error is None and value is not None:
            error = self._expired(value)
        if error is not None:
            raise RevocationListUnusable(
                f"{self.what} {self.path}: {error}; refusing until a valid list is in place"
            )
        return value

    def _look(self) -> None:
        try:
            stat = os.stat(self.path)
            signature: Signature = (
                stat.st_mtime_ns,
                stat.st_ctime_ns,
                stat.st_ino,
                stat.st_size,
            )
        except FileNotFoundError:
            signature = None
        except OSError as error:
            signature = f"unreadable: {error.strerror}"
        if signature == self._signature:
            return
        self._signature = signature
        if isinstance(signature, str):
            self._fail(f"cannot read it: {signature}")
        elif signature is None:
            if self._number is None:
                self._value = None
            else:
                self._fail(f"it was removed after list number {self._number} was loaded")
        else:
            self._load()

    def _load(self) -> None:
        try:
            value = self._parse(self.path.read_bytes())
        except OSError as error:
            self._fail(f"cannot read it: {error.strerror}")
            return
        except RevocationListError as error:
            self._fail(str(error))
            return
        number = self._number_of(value)
        if self._number is not None and number < self._number:
            self._fail(
                f"its number {number} is below the {self._number} already loaded (an older list "
                "put back in place of a newer one?)"
            )
            return
        if self._error is not None or self._number != number:
            log.info("%s %s loaded: number %d", self.what, self.path, number)
        self._value, self._number, self._error = value, number, None

    def _fail(self, error: str) -> None:
        if error != self._error:
            log.error(
                "%s %s cannot be used: %s; refusing every call it guards until it is fixed",
                self.what,
                self.path,
                error,
            )
        self._error = error


class Revocations:
    """The CRL and the revoked-token list of the PKI directory holding `ca_cert`."""

    def __init__(
        self,
        ca_cert: Path,
        *,
        interval_s: float = RELOAD_INTERVAL_S,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = _utc_now,
    ) -> None:
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{ca_cert} is not an EC (ES256) consortium CA certificate")
        self._wall_clock = wall_clock
        self.certificates: WatchedList[x509.CertificateRevocationList] = WatchedList(
            ca_cert.with_name(CRL_FILE),
            "certificate revocation list",
            lambda data: read_crl(data, cert),
            crl_number,
            expired=self._crl_expired,
            interval_s=interval_s,
            clock=clock,
        )
        self.tokens: WatchedList[RevokedTokenList] = WatchedList(
            ca_cert.with_name(REVOKED_TOKENS_FILE),
            "revoked-token list",
            lambda data: read_revoked_tokens(data, key),
            lambda tokens: tokens.number,
            interval_s=interval_s,
            clock=clock,
        )

    def _crl_expired(self, crl: x509.CertificateRevocationList) -> str | None:
        next_update = crl.next_update_utc
        if next_update is not None and self._wall_clock() > next_update + CLOCK_SKEW:
            return f"it expired at {next_update:%Y-%m-%d %H:%M} UTC (its next update)"
        return None

    def check_certificate(self, serial: int, site_id: str) -> None:
        """Raises CertificateRevoked for a revoked certificate, RevocationListUnusable when the
        CRL is there but cannot be trusted."""
        crl = self.certificates.current()
        entry = crl.get_revoked_certificate_by_serial_number(serial) if crl else None
        if entry is not None:
            raise CertificateRevoked(
                f"certificate serial {serial_text(serial)} of site {site_id} was revoked "
                f"{_when_and_why(entry)}"
            )

    def check_token(self, jti: str, cert_serial: str, site_id: str) -> None:
        """Raises TokenRevoked for a revoked token or one issued for a revoked certificate,
        RevocationListUnusable when either list is there but cannot be trusted."""
        tokens = self.tokens.current()
        revoked = tokens.find(jti) if tokens else None
        if revoked is not None:
            when = datetime.datetime.fromtimestamp(revoked.revoked_at, datetime.UTC)
            raise TokenRevoked(
                f"token {jti} of site {site_id} was revoked on {when:%Y-%m-%d %H:%M} UTC"
            )
        try:
            serial = int(cert_serial, 16)
        except ValueError:
            raise TokenRevoked(f"token {jti} names no certificate serial") from None
        try:
            self.check_certificate(serial, site_id)
        except CertificateRevoked as error:
            message = f"token {jti} was issued for a revoked certificate: {error}"
            raise TokenRevoked(message) from None

    def problems(self) -> list[str]:
        """Why a list cannot be used now (empty: both usable or absent)."""
        found: list[str] = []
        for watched in (self.certificates, self.tokens):
            try:
                watched.current()
            except RevocationListUnusable as error:
                found.append(str(error))
        return found


def _when_and_why(entry: x509.RevokedCertificate) -> str:
    text = f"on {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return text
    return f"{text} ({reason.value})"


_SHARED: dict[tuple[Path, bytes], Revocations] = {}
_SHARED_LOCK = threading.Lock()


def revocations_for(ca_cert: Path) -> Revocations:
    """The one `Revocations` of this process for the PKI directory of `ca_cert` (the gRPC
    server, the HTTP token verifier and the health share its state and its log lines)."""
    key = (ca_cert.resolve(), ca_cert.read_bytes())
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = Revocations(ca_cert)
        return found
