"""Ed25519 site signing keys and the consortium key ring used to verify envelopes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_DOMAIN = b"v2v.events.v1.Envelope"


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
    """The consortium's site public keys, by key id."""

    def __init__(self, keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = dict(keys or {})

    def add(self, site_id: str, public_key: Ed25519PublicKey) -> str:
        key_id = key_id_for(site_id, public_key)
        self._keys[key_id] = public_key
        return key_id

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys

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
        entries = [
            {
                "key_id": key_id,
                "site_id": key_id.split("/", 1)[0],
                "public_key": _raw_public(k).hex(),
            }
            for key_id, k in sorted(self._keys.items())
        ]
        return json.dumps({"keys": entries}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        ring = cls()
        for entry in json.loads(text)["keys"]:
            public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["public_key"]))
            key_id = ring.add(entry["site_id"], public_key)
            if key_id != entry["key_id"]:
                raise ValueError(
                    f"key ring entry {entry['key_id']!r} does not match its public key"
                )
        return ring

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls.from_json(path.read_text())
