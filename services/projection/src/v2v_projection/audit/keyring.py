"""The consortium's site public keys, from a PKI directory made by `v2v pki init`."""

from __future__ import annotations

from pathlib import Path

from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.envelope.keys import KeyRing


class KeyRingError(Exception):
    """No usable key ring; the message says where it was looked for."""


def load_key_ring(location: Path | None) -> KeyRing:
    """`location` is a PKI directory (its signing-keys.json is read) or the key ring file."""
    if location is None:
        raise KeyRingError(
            "no consortium key ring: pass --keys DIR (a PKI directory made by `v2v pki init`)"
            " or set V2V_PKI_DIR"
        )
    path = location / KEY_RING_FILE if location.is_dir() else location
    if not path.is_file():
        raise KeyRingError(f"no key ring at {path} (made by `v2v pki init` in the PKI directory)")
    try:
        ring = KeyRing.load(path)
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise KeyRingError(f"cannot read the key ring {path}: {error}") from None
    return ring
