"""Proven persons of two-person checks (`v2v_platform.esign.persons`, issue 13 item 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from v2v_platform.attribution import Attribution
from v2v_platform.errors import Forbidden, InvalidInput, ReauthenticationFailed
from v2v_platform.esign import (
    ESigner,
    InMemorySignerStore,
    SignatureRequest,
    Signer,
    hash_password,
    record_hash,
)
from v2v_platform.esign.persons import PersonCheck, as_proven, person, prove, requested

SITE = "HOSP-A"
AT = datetime(2025, 6, 4, 9, 0, tzinfo=UTC)
CHECK = PersonCheck("witness", "nurse", "witness_signature", "witnessed_by.user_id")
RECORD = {"check": "infusion-witness", "din": "W12342500000100"}


@pytest.fixture(scope="module")
def signer() -> ESigner:
    store = InMemorySignerStore()
    store.put(Signer(SITE, "n-2", "Ned Nurse", frozenset({"nurse"}), hash_password("ned's own")))
    store.put(Signer(SITE, "dr-a", "Dr A", frozenset({"physician"}), hash_password("doc's own")))
    return ESigner(store, lambda: AT)


def test_a_proven_person_signs_the_record_with_the_checks_meaning(signer: ESigner) -> None:
    signed = prove(
        signer, SITE, SignatureRequest("n-2", "ned's own", "witness"), CHECK, "n-2", RECORD
    )
    assert (signed.user_id, signed.printed_name, signed.meaning) == ("n-2", "Ned Nurse", "witness")
    assert signed.record_hash == record_hash(RECORD) and signed.signed_at == AT
    claimed = Attribution("n-2", "Somebody", "infusion", SITE)
    assert as_proven(claimed, signed).printed_name == "Ned Nurse"
    assert person(signed) == {"user_id": "n-2", "printed_name": "Ned Nurse"}


@pytest.mark.parametrize(
    ("request_", "named", "error", "message"),
    [
        (None, "n-2", InvalidInput, "witness_signature is required"),
        (SignatureRequest("n-2", "ned's own", "verification"), "n-2", InvalidInput, "meaning must"),
        (
            SignatureRequest("n-2", "ned's own", "witness"),
            "n-1",
            InvalidInput,
            "witnessed_by.user_id 'n-1' is not the re-authenticated signer 'n-2'",
        ),
        (SignatureRequest("n-2", "guess", "witness"), "n-2", ReauthenticationFailed, "failed"),
        (
            SignatureRequest("n-9", "any pass", "witness"),
            "n-9",
            ReauthenticationFailed,
            "no signer",
        ),
        (SignatureRequest("dr-a", "doc's own", "witness"), "dr-a", Forbidden, "may not sign as"),
    ],
)
def test_a_person_not_proven_is_refused(
    signer: ESigner,
    request_: SignatureRequest | None,
    named: str,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        prove(signer, SITE, request_, CHECK, named, RECORD)


def test_a_request_without_user_id_or_password_carries_no_re_authentication() -> None:
    assert requested("", "", "") is None
    assert requested("n-2", "", "witness") is None
    assert requested("n-2", "pw", "witness") == SignatureRequest("n-2", "pw", "witness")
