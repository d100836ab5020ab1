"""Custody between departments of one site (`site:<ID>/<department>`): a department takes what
its site held, the site's own later claim (a receipt recorded by the site) does not take it
back, and every interval's site is the site, not the department."""

from __future__ import annotations

from v2v_projection.chain.builder import CustodyMove
from v2v_projection.chain.custody import replay

DIN = "W123426000001"


def move(at: int, op: str, from_party: str, to_party: str) -> CustodyMove:
    return CustodyMove(at, f"e-{at}", op, (DIN,), from_party, to_party, "SHEBA")


def test_a_department_holds_for_its_site_and_the_sites_claim_changes_nothing() -> None:
    units = replay(
        [
            move(1, "claim", "", "site:SHEBA"),  # labelled at the site
            move(2, "transfer", "site:SHEBA", "site:SHEBA/collection"),  # shipped by collection
            move(3, "transfer", "site:SHEBA/collection", "site:SHEBA/gmp"),  # delivered to gmp
            move(4, "claim", "", "site:SHEBA"),  # manufacturing's receipt, as the site
        ]
    )
    intervals = units[DIN].intervals
    assert [i.custodian for i in intervals] == [
        "site:SHEBA",
        "site:SHEBA/collection",
        "site:SHEBA/gmp",
    ]
    assert {i.site_id for i in intervals} == {"SHEBA"}
    assert [i.custodian for i in units[DIN].holding] == ["site:SHEBA/gmp"]
