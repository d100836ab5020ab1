"""The party rules (issue 13): who is a party to a shipment, who may offer it to whom, who
gives it at a handoff (never a request field), and which units a site may ship."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from v2v_logistics.domain.matching import Mismatch
from v2v_logistics.domain.parties import (
    Caller,
    Offer,
    Parties,
    UnitCustody,
    check_claimed_giver,
    check_offer,
    check_shippable,
    giver_of_handoff,
    party_of,
)
from v2v_logistics.domain.values import KnownUnit, UnitKind
from v2v_platform.conditions import Condition

ORIGIN, DESTINATION, COMPANY = "site:HOSP-A", "site:GMP-B", "LOGI-1"
C1, C3 = "courier:C-1", "courier:C-3"
AT_ORIGIN = Parties("HOSP-A", "GMP-B", "C-1", ORIGIN, frozenset({COMPANY}))
WITH_C1 = Parties("HOSP-A", "GMP-B", "C-1", C1, frozenset({COMPANY}))


def reason(found: object) -> str:
    assert isinstance(found, Mismatch), found
    return found.reason_code


@pytest.mark.parametrize(
    "caller",
    [
        Caller.site("HOSP-A"),
        Caller.site("GMP-B"),
        Caller.courier("C-1"),
        Caller.site(COMPANY, courier_role=True),
    ],
    ids=["origin", "destination", "assigned-courier", "courier-company"],
)
def test_the_parties_of_a_shipment(caller: Caller) -> None:
    assert party_of(AT_ORIGIN, caller) == caller.party


@pytest.mark.parametrize(
    "caller",
    [
        Caller.site("HOSP-B"),
        Caller.site("HOSP-B", courier_role=True),
        Caller.site("COURIER-2", courier_role=True),
        Caller.site(COMPANY),  # the company's certificate, not acting in its courier role
        Caller.courier("C-3"),
    ],
    ids=["other-site", "other-site-as-courier", "other-company", "company-not-courier", "C-3"],
)
def test_anyone_else_is_not_a_party(caller: Caller) -> None:
    assert reason(party_of(AT_ORIGIN, caller)) == "not-a-party"


def test_the_holder_stays_a_party_after_another_courier_is_assigned() -> None:
    reassigned = Parties("HOSP-A", "GMP-B", "C-3", C1)
    assert party_of(reassigned, Caller.courier("C-1")) == C1
    assert party_of(reassigned, Caller.courier("C-3")) == C3


def test_without_an_assigned_courier_no_courier_or_company_is_a_party() -> None:
    unassigned = Parties("HOSP-A", "GMP-B", "", ORIGIN, frozenset({COMPANY}))
    assert reason(party_of(unassigned, Caller.site(COMPANY, courier_role=True))) == "not-a-party"
    assert unassigned.receivers() == {DESTINATION}


def test_receivers_are_the_parties_but_the_holder() -> None:
    assert AT_ORIGIN.receivers() == {DESTINATION, C1, f"site:{COMPANY}"}
    assert WITH_C1.receivers() == {ORIGIN, DESTINATION, f"site:{COMPANY}"}


def test_the_holder_offers_the_shipment_to_a_receiver() -> None:
    assert check_offer(WITH_C1, C1, DESTINATION) == Offer(C1, DESTINATION)


@pytest.mark.parametrize(
    ("giver", "to_party", "code"),
    [
        (ORIGIN, DESTINATION, "wrong-custodian"),
        (C3, DESTINATION, "wrong-custodian"),
        (C1, C1, "wrong-state"),
        (C1, C3, "not-a-party"),
        (C1, "site:HOSP-B", "not-a-party"),
    ],
    ids=["origin-no-longer-holds", "another-courier", "to-itself", "unassigned", "stranger"],
)
def test_offers_refused(giver: str, to_party: str, code: str) -> None:
    assert reason(check_offer(WITH_C1, giver, to_party)) == code


def test_the_giver_is_the_holder_who_offered() -> None:
    offered = Offer(C1, DESTINATION)
    assert giver_of_handoff(C1, offered, DESTINATION, "") == C1
    assert giver_of_handoff(C1, offered, DESTINATION, C1) == C1


@pytest.mark.parametrize(
    ("offer", "receiver", "claimed", "code"),
    [
        (None, DESTINATION, "", "not-offered"),
        (Offer(C1, C3), DESTINATION, "", "not-offered"),
        (Offer(ORIGIN, DESTINATION), DESTINATION, "", "not-offered"),  # a stale offer
        (Offer(C1, DESTINATION), DESTINATION, ORIGIN, "wrong-custodian"),
        (Offer(C1, DESTINATION), C1, "", "wrong-state"),
    ],
    ids=["no-offer", "offered-to-another", "stale", "claimed-giver-not-holder", "to-itself"],
)
def test_custody_does_not_pass_without_the_holders_offer(
    offer: Offer | None, receiver: str, claimed: str, code: str
) -> None:
    assert reason(giver_of_handoff(C1, offer, receiver, claimed)) == code


def test_a_claimed_giver_must_be_the_holder_when_named() -> None:
    assert check_claimed_giver(C1, "") is None and check_claimed_giver(C1, C1) is None
    assert reason(check_claimed_giver(C1, C3)) == "wrong-custodian"


UNIT = KnownUnit(
    "A12342500000100", "CHA123425000017", UnitKind.APHERESIS, Condition.FRESH_COLD,
    datetime(2025, 6, 1, tzinfo=UTC), ORIGIN,
)  # fmt: skip


def test_a_site_ships_a_unit_it_holds_and_is_related_to() -> None:
    assert check_shippable(UNIT.din, UNIT, UnitCustody(ORIGIN, frozenset({ORIGIN})), ORIGIN) == UNIT


def test_a_unit_unrelated_to_the_site_is_refused_like_an_unknown_one() -> None:
    held = UnitCustody(ORIGIN, frozenset({ORIGIN}))
    unrelated = check_shippable(UNIT.din, UNIT, held, "site:HOSP-B")
    unknown = check_shippable(UNIT.din, None, None, "site:HOSP-B")
    assert unrelated == unknown and reason(unknown) == "unknown-unit"


def test_a_related_unit_held_elsewhere_is_in_another_custody() -> None:
    shipped = UnitCustody("site:GMP-B", frozenset({ORIGIN, "site:GMP-B"}))
    assert reason(check_shippable(UNIT.din, UNIT, shipped, ORIGIN)) == "wrong-custodian"
    assert check_shippable(UNIT.din, UNIT, shipped, "site:GMP-B") == UNIT
