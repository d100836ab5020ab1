"""The rules that keep a unit at its patient's treating site (issue 13), pure functions
returning `Mismatch | None`, checked before the bedside rules: `not-treating-site` (intake's
enrolment names another site, or none is known), then `already-infused` (an infusion at any
site, this one included)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_infusion.domain.bedside import check_scan
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.site_rules import (
    check_belongs_here,
    check_never_infused,
    check_treating_site,
)
from v2v_infusion.domain.values import (
    ALREADY_INFUSED,
    NOT_TREATING_SITE,
    KnownInfusion,
    KnownProduct,
    Mismatch,
    ReleaseState,
    ReleaseStatus,
)
from v2v_platform.conditions import Condition
from v2v_testkit.infusion import (
    BATCH,
    COI,
    FIRST_NURSE,
    OTHER_SITE,
    RELEASED_AT,
    SITE,
    nurse,
    product_din,
)

DIN = product_din(1)
ELSEWHERE = KnownInfusion(DIN, COI, OTHER_SITE, RELEASED_AT + timedelta(hours=1))


def test_a_unit_of_a_patient_treated_here_and_never_infused_belongs_here() -> None:
    assert check_belongs_here(DIN, COI, SITE, SITE, []) is None


@pytest.mark.parametrize("treating_site", [OTHER_SITE, None])
def test_a_unit_of_another_sites_patient_or_of_no_known_enrolment_does_not(
    treating_site: str | None,
) -> None:
    refused = check_treating_site(DIN, COI, treating_site, SITE)
    assert isinstance(refused, Mismatch) and refused.reason_code == NOT_TREATING_SITE
    assert COI in refused.explanation and "STOP" in refused.explanation
    assert (treating_site or "no enrolment") in refused.explanation
    assert check_belongs_here(DIN, COI, treating_site, SITE, []) == refused


@pytest.mark.parametrize("site", [OTHER_SITE, SITE])
def test_a_unit_infused_anywhere_is_already_infused(site: str) -> None:
    infusion = KnownInfusion(DIN, COI, site, RELEASED_AT)
    refused = check_never_infused(DIN, [infusion])
    assert isinstance(refused, Mismatch) and refused.reason_code == ALREADY_INFUSED
    assert site in refused.explanation and RELEASED_AT.isoformat() in refused.explanation
    assert check_never_infused(DIN, []) is None


def test_the_treating_site_is_checked_before_the_infusions() -> None:
    refused = check_belongs_here(DIN, COI, OTHER_SITE, SITE, [ELSEWHERE])
    assert refused is not None and refused.reason_code == NOT_TREATING_SITE
    refused = check_belongs_here(DIN, COI, SITE, SITE, [ELSEWHERE])
    assert refused is not None and refused.reason_code == ALREADY_INFUSED


def test_the_bedside_rules_are_unchanged_for_a_unit_that_belongs_here() -> None:
    product = KnownProduct(DIN, COI, BATCH, Condition.FRESH_COLD)
    unit = ProductAtSite.receive(product, SITE, RELEASED_AT, nurse())
    release = ReleaseState(ReleaseStatus.PROVISIONAL, RELEASED_AT)
    moment = RELEASED_AT + timedelta(hours=1)
    assert check_scan(unit, COI, FIRST_NURSE, release, [], moment, timedelta(hours=72)) is None
