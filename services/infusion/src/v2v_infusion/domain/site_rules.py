"""Does this unit belong at this site at all? Checked before any other rule, at receipt and
again at every later step (storage, thaw, bedside scan, infusion): the facts may change
after the unit was received.

- identity-conflict: verified facts bind the unit's DIN to another COI too (issue 14, I1: a
  DIN names one patient for life), whichever binding came first;
- not-treating-site: intake's enrolment names another treating site for the unit's COI, or no
  enrolment is known here: the bag is not for a patient of this ward;
- already-infused: an infusion of the unit is known from infusion's own topic, at any site
  (this one included).
"""

from __future__ import annotations

from collections.abc import Sequence

from v2v_infusion.domain.values import (
    ALREADY_INFUSED,
    IDENTITY_CONFLICT,
    NOT_TREATING_SITE,
    KnownInfusion,
    Mismatch,
)
from v2v_platform.ids.bindings import DinConflict


def check_one_patient(din: str, coi: str, other_cois: Sequence[str]) -> Mismatch | None:
    if not other_cois:
        return None
    return Mismatch(IDENTITY_CONFLICT, DinConflict(din, (coi, *other_cois)).explanation)


def check_treating_site(
    din: str, coi: str, treating_site: str | None, site_id: str
) -> Mismatch | None:
    if treating_site == site_id:
        return None
    where = f"treated at {treating_site}" if treating_site else "of no enrolment known here"
    return Mismatch(
        NOT_TREATING_SITE,
        f"unit {din} is for patient {coi}, {where}, not at {site_id}: STOP, this product is"
        " not for a patient of this site",
    )


def check_never_infused(din: str, infusions: Sequence[KnownInfusion]) -> Mismatch | None:
    if not infusions:
        return None
    shown = ", ".join(
        f"{infusion.site_id} at {infusion.administered_at.isoformat()}" for infusion in infusions
    )
    return Mismatch(ALREADY_INFUSED, f"unit {din} was already infused ({shown}): STOP")


def check_belongs_here(
    din: str,
    coi: str,
    treating_site: str | None,
    site_id: str,
    infusions: Sequence[KnownInfusion],
    other_cois: Sequence[str] = (),
) -> Mismatch | None:
    """None when `din` (of `coi`, bound to no `other_cois`) is for a patient of `site_id` and
    was never infused."""
    return (
        check_one_patient(din, coi, other_cois)
        or check_treating_site(din, coi, treating_site, site_id)
        or check_never_infused(din, infusions)
    )
