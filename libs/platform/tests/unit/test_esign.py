"""E-signatures: re-authentication, lockout, signing roles, and the binding to the record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from v2v_platform.errors import Forbidden, InvalidInput, ReauthenticationFailed
from v2v_platform.esign import (
    MAX_FAILURES,
    ESigner,
    InMemorySignerStore,
    SignatureRequest,
    Signer,
    SignerStore,
    SqlSignerStore,
    WeakPassword,
    hash_password,
    record_hash,
    verify_password,
)

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
RECORD = {"batch_id": "b-1", "decision": "final", "at": AT, "dins": ["A", "B"]}


def _signer(store: SignerStore, roles: frozenset[str] = frozenset({"qp"})) -> ESigner:
    store.put(Signer("QC-1", "qp-7", "Quinn Person", roles, hash_password("correct horse")))
    return ESigner(store, clock=lambda: AT)


def _sign(signer: ESigner, password: str = "correct horse", role: str = "qp") -> object:
    request = SignatureRequest("qp-7", password, "approval")
    return signer.sign("QC-1", request, role, RECORD)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SignerStore:
    if request.param == "memory":
        return InMemorySignerStore()
    return SqlSignerStore.sqlite(tmp_path / "service.signers.sqlite")


def test_password_hashes_are_salted_scrypt_and_verify() -> None:
    first, second = hash_password("a long password"), hash_password("a long password")
    assert first.startswith("scrypt$") and first != second
    assert verify_password("a long password", first)
    assert not verify_password("a long passwore", first)
    assert not verify_password("anything", "not-a-hash")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(WeakPassword):
        hash_password("short")


def test_signature_carries_manifestation_bound_to_the_record_hash(store: SignerStore) -> None:
    manifestation = _sign(_signer(store))
    assert manifestation.as_dict() == {  # type: ignore[attr-defined]
        "user_id": "qp-7",
        "printed_name": "Quinn Person",
        "meaning": "approval",
        "signed_at": AT.isoformat(),
        "record_hash": record_hash(RECORD),
    }


def test_record_hash_is_canonical_and_changes_with_the_content() -> None:
    reordered = {"dins": ["A", "B"], "at": AT, "decision": "final", "batch_id": "b-1"}
    assert record_hash(reordered) == record_hash(RECORD)
    assert record_hash({**RECORD, "decision": "provisional"}) != record_hash(RECORD)
    with pytest.raises(InvalidInput):
        record_hash({"at": datetime(2026, 3, 1)})


def test_wrong_password_fails_and_locks_after_max_failures(store: SignerStore) -> None:
    signer = _signer(store)
    for _ in range(MAX_FAILURES):
        with pytest.raises(ReauthenticationFailed, match="failed"):
            _sign(signer, password="wrong password")
    with pytest.raises(ReauthenticationFailed, match="locked"):
        _sign(signer)
    store.set_failures("QC-1", "qp-7", 0)
    assert _sign(signer)


def test_a_success_resets_the_failure_count(store: SignerStore) -> None:
    signer = _signer(store)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(ReauthenticationFailed):
            _sign(signer, password="wrong password")
    _sign(signer)
    stored = store.get("QC-1", "qp-7")
    assert stored is not None and stored.failures == 0


def test_unknown_signer_or_other_site_is_refused(store: SignerStore) -> None:
    signer = _signer(store)
    request = SignatureRequest("qp-7", "correct horse", "approval")
    with pytest.raises(ReauthenticationFailed, match="no signer"):
        signer.sign("HOSP-A", request, "qp", RECORD)


def test_signer_without_the_signing_role_is_forbidden(store: SignerStore) -> None:
    with pytest.raises(Forbidden, match="may not sign as physician"):
        _sign(_signer(store), role="physician")


@pytest.mark.parametrize(
    ("user_id", "password", "meaning"),
    [("", "pw", "approval"), ("u", "", "approval"), ("u", "pw", "blessing")],
)
def test_incomplete_signature_requests_are_invalid(
    user_id: str, password: str, meaning: str
) -> None:
    with pytest.raises(InvalidInput):
        SignatureRequest(user_id, password, meaning)


def test_the_password_never_shows_in_a_repr() -> None:
    assert "secret-pw" not in repr(SignatureRequest("u", "secret-pw", "approval"))
