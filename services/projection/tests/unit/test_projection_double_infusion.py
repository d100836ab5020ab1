"""A product infused twice (issue 13): one bag administered again, here or at another ward, or
one COI's product infused at two sites, is a critical `double-infusion` alert whatever the
arrival order; an infusion event by a site that is not the chain's treating site is an
`unrelated-author` alert (the authorship gate checks roles, not relationships)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from v2v_projection.fold import ChainFold
from v2v_testkit.audit import (
    GMP_SITE,
    OTHER_HOSPITAL,
    PATIENT_SITE,
    HandWrittenChain,
    enrolled_to_infused,
    infuse,
    receive,
    refused_bedside_scan,
)
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def journey() -> HandWrittenChain:
    return enrolled_to_infused(EnvelopeWriter(), COI, START)


def view_of(records: list[bytes]) -> dict[str, Any]:
    fold = ChainFold()
    for record in records:
        fold.apply_bytes(record)
    view = fold.chain(COI)
    assert view is not None
    return view


def alerts(view: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [alert for alert in view["alerts"] if alert["kind"] == kind]


def test_one_infusion_raises_no_double_infusion_alert() -> None:
    view = view_of(journey().values())

    assert view["infusion"]["status"] == "administered"
    assert view["alerts"] == []


def test_the_same_bag_administered_twice_at_the_treating_site_is_a_double_infusion() -> None:
    chain = journey()
    product = chain.products[0]
    infuse(chain, PATIENT_SITE, product, 130)

    (alert,) = alerts(view_of(chain.values()), "double-infusion")

    assert alert["at"] == chain.at(130).isoformat()
    assert product in alert["detail"] and chain.at(125).isoformat() in alert["detail"]


def test_a_bag_infused_at_the_treating_site_then_received_and_infused_at_another_ward() -> None:
    """The issue's case: HOSP-C received HOSP-A's already infused bag, verified it and
    administered it - a second infusion of one bag."""
    chain = journey()
    product = chain.products[0]
    receive(chain, OTHER_HOSPITAL, product, 140)
    infuse(chain, OTHER_HOSPITAL, product, 141)

    view = view_of(chain.values())

    (alert,) = alerts(view, "double-infusion")
    assert alert["at"] == chain.at(141).isoformat()
    assert OTHER_HOSPITAL in alert["detail"] and PATIENT_SITE in alert["detail"]
    reversed_view = view_of(list(reversed(chain.values())))
    assert alerts(reversed_view, "double-infusion") == [alert]


def test_two_bags_of_one_product_infused_at_two_sites_is_a_double_infusion() -> None:
    chain = journey()
    spare = chain.products[1]
    infuse(chain, OTHER_HOSPITAL, spare, 150)

    (alert,) = alerts(view_of(chain.values()), "double-infusion")

    assert spare in alert["detail"] and OTHER_HOSPITAL in alert["detail"]


def test_two_bags_of_one_dose_at_the_treating_site_are_no_double_infusion() -> None:
    chain = journey()
    infuse(chain, PATIENT_SITE, chain.products[1], 125.5)

    view = view_of(chain.values())

    assert alerts(view, "double-infusion") == []
    assert view["alerts"] == []


def test_an_infusion_event_by_a_site_that_is_not_the_treating_site_is_an_alert() -> None:
    chain = journey()
    refused_bedside_scan(chain, OTHER_HOSPITAL, 126)
    receive(chain, GMP_SITE, chain.products[1], 127)  # a related site, but not the treating one

    found = alerts(view_of(chain.values()), "unrelated-author")

    assert [(OTHER_HOSPITAL in a["detail"], GMP_SITE in a["detail"]) for a in found] == [
        (True, False),
        (False, True),
    ]
    assert "BedsideMismatchRecorded" in found[0]["detail"]
    assert found[0]["at"] == chain.at(126).isoformat()


def test_the_treating_sites_own_infusion_events_raise_no_unrelated_author_alert() -> None:
    assert alerts(view_of(journey().values()), "unrelated-author") == []
