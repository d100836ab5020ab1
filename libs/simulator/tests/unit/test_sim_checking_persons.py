"""The persons of the two-person checks in the simulated consortium (issue 13 item 2): distinct
people per hospital, each with their own password, registered where their checks are made."""

from __future__ import annotations

from v2v_simulator.consortium import COLLECTION_SIGNER, NURSE_SIGNER, Consortium


def test_each_hospital_has_two_collectors_and_two_nurses_with_their_own_passwords() -> None:
    a, b = Consortium.sized().hospitals
    people = [*a.collection_staff, *a.nurses]
    assert len({person.user_id for person in people}) == 4
    passwords = {a.password(person) for person in people}
    assert len(passwords) == 4 and a.password(a.nurses[0]) != b.password(b.nurses[0])
    assert all(len(password) >= 8 for password in passwords)


def test_the_checking_persons_sign_where_their_checks_are_made() -> None:
    hospital = Consortium.sized().hospitals[0]
    checking = hospital.checking_persons()
    assert checking["intake"] == tuple((c, COLLECTION_SIGNER) for c in hospital.collection_staff)
    assert checking["infusion"] == tuple((n, NURSE_SIGNER) for n in hospital.nurses)


def test_a_reauthentication_carries_the_persons_own_password_and_the_meaning() -> None:
    hospital = Consortium.sized().hospitals[0]
    second = hospital.nurses[1]
    witness = hospital.reauthentication(second, "witness")
    assert (witness.user_id, witness.meaning) == (second.user_id, "witness")
    assert witness.password == hospital.password(second)
