"""Electronic signatures with re-authentication, bound to the hash of the signed record."""

from v2v_platform.esign.passwords import WeakPassword, hash_password, verify_password
from v2v_platform.esign.signing import ESigner, SignatureRequest, record_hash
from v2v_platform.esign.store import (
    MAX_FAILURES,
    InMemorySignerStore,
    Signer,
    SignerStore,
    SqlSignerStore,
    open_signer_store,
)

__all__ = [
    "MAX_FAILURES",
    "ESigner",
    "InMemorySignerStore",
    "SignatureRequest",
    "Signer",
    "SignerStore",
    "SqlSignerStore",
    "WeakPassword",
    "hash_password",
    "open_signer_store",
    "record_hash",
    "verify_password",
]
