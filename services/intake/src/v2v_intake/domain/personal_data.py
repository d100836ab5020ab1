"""Sealing personal details with the COI's key (AES-256-GCM, the COI as associated data)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from v2v_intake.domain.values import PersonalDetails

FORMAT_PREFIX = "aesgcm1:"
NONCE_BYTES = 12
KEY_BYTES = 32


class UnreadablePersonalDetails(ValueError):
    """The sealed details do not open with the COI's key (wrong key or altered data)."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(details: PersonalDetails, key: bytes, coi: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, details.to_bytes(), coi.encode())
    return FORMAT_PREFIX + base64.b64encode(nonce + ciphertext).decode()


def open_sealed(sealed: str, key: bytes, coi: str) -> PersonalDetails:
    if not sealed.startswith(FORMAT_PREFIX):
        raise UnreadablePersonalDetails("unknown sealed format")
    data = base64.b64decode(sealed.removeprefix(FORMAT_PREFIX))
    try:
        plain = AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], coi.encode())
    except InvalidTag:
        raise UnreadablePersonalDetails("sealed personal details do not open") from None
    return PersonalDetails.from_bytes(plain)
