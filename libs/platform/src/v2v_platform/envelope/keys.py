"""Ed25519 site signing keys and the consortium key ring used to verify envelopes."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from v2v_platform.auth.identity import Role, parse_role

log = logging.getLogger(__name__)

SIGNATURE_DOMAIN = b"v2v.events.v1.Envelope"
_NO_ROLES: frozenset[Role] = frozenset()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(site_id: str, public_key: Ed25519PublicKey) -> str:
    """``<site>/<first 16 hex of sha256(raw public key)>``: names a key without trusting it."""
    return f"{site_id}/{hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]}"


def _signed_message(digest: bytes) -> bytes:
    return SIGNATURE_DOMAIN + digest


@dataclass(frozen=True)
class SiteSigningKey:
    """The private key a site signs its envelopes with."""

    site_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, site_id: str) -> SiteSigningKey:
        return cls(site_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, site_id: str, seed: bytes) -> SiteSigningKey:
        """Deterministic key from a 32-byte seed (golden vectors and tests only)."""
        return cls(site_id, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load(cls, site_id: str, path: Path) -> SiteSigningKey:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(site_id, key)

    def save(self, path: Path) -> None:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_for(self.site_id, self.public_key)

    def sign(self, digest: bytes) -> bytes:
        return self.private_key.sign(_signed_message(digest))


class KeyRing:
    """The consortium's site public keys, by key id, and the roles each site holds.

    The roles say which events a site may author (`v2v_platform.envelope.authorship`); a ring
    written before sites carried roles still loads, its sites then hold no role.
    """

    def __init__(self, keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = dict(keys or {})
        self._roles: dict[str, frozenset[Role]] = {}

    def add(
        self,
        site_id: str,
        public_key: Ed25519PublicKey,
        roles: Iterable[Role | str] | None = None,
    ) -> str:
        """Add a site's key; `roles`, when given, become the site's roles (all its keys)."""
        key_id = key_id_for(site_id, public_key)
        self._keys[key_id] = public_key
        if roles is not None:
            self.set_roles(site_id, roles)
        return key_id

    def set_roles(self, site_id: str, roles: Iterable[Role | str]) -> None:
        """The roles of `site_id` (for all its keys)."""
        self._roles[site_id] = frozenset(parse_role(str(role)) for role in roles)

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys

    def roles_of(self, site_id: str) -> frozenset[Role]:
        """The roles of `site_id` (none for a site the ring does not know or a ring without
        roles)."""
        return self._roles.get(site_id, _NO_ROLES)

    def verify(self, key_id: str, digest: bytes, signature: bytes) -> bool:
        public_key = self._keys.get(key_id)
        if public_key is None:
            return False
        try:
            public_key.verify(signature, _signed_message(digest))
        except InvalidSignature:
            return False
        return True

    def to_json(self) -> str:
        entries = []
        for key_id, key in sorted(self._keys.items()):
            site_id = key_id.split("/", 1)[0]
            entry: dict[str, object] = {
                "key_id": key_id,
                "site_id": site_id,
                "public_key": _raw_public(key).hex(),
            }
            if self.roles_of(site_id):
                entry["roles"] = sorted(role.value for role in self.roles_of(site_id))
            entries.append(entry)
        return json.dumps({"keys": entries}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        ring = cls()
        stated: dict[str, frozenset[Role]] = {}
        for entry in json.loads(text)["keys"]:
            site_id = entry["site_id"]
            public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["public_key"]))
            key_id = ring.add(site_id, public_key)
            if key_id != entry["key_id"]:
                raise ValueError(
                    f"key ring entry {entry['key_id']!r} does not match its public key"
                )
            if "roles" in entry:
                roles = frozenset(parse_role(name) for name in entry["roles"])
                if stated.setdefault(site_id, roles) != roles:
                    raise ValueError(
                        f"the key ring's entries of site {site_id} disagree on its roles"
                    )
        ring._roles.update(stated)
        return ring

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls.from_json(path.read_text())


class KeyRingFile:
    """The key ring of a running consumer: read from its file at start (a missing or unreadable
    file stops the start), read again when the file changed (looked at most every `recheck_s`),
    so a fixed ring takes effect without a restart. A changed file that cannot be read keeps
    the ring in use and is logged."""

    def __init__(self, path: Path, recheck_s: float = 1.0) -> None:
        self.path = path
        self._recheck_s = recheck_s
        self._stamp = self._stamp_now()
        if not path.is_file():
            raise FileNotFoundError(
                f"no consortium key ring at {path} (made by `v2v pki init`): every consumer"
                " verifies the envelopes it reads against it"
            )
        self._ring = KeyRing.load(path)
        self._checked_at = time.monotonic()

    def _stamp_now(self) -> tuple[int, int, int]:
        try:
            status = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (status.st_mtime_ns, status.st_size, status.st_ino)

    def current(self) -> KeyRing:
        now = time.monotonic()
        if now - self._checked_at < self._recheck_s:
            return self._ring
        self._checked_at = now
        stamp = self._stamp_now()
        if stamp == self._stamp:
            return self._ring
        self._stamp = stamp
        try:
            self._ring = KeyRing.load(self.path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error(
                "key ring %s changed but cannot be read; the ring in use stays: %s",
                self.path,
                error,
            )
        else:
            log.info("key ring %s read again after it changed", self.path)
        return self._ring
