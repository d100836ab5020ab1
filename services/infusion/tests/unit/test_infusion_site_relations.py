"""Each site acts only on its own patients (issue 13): a unit whose COI is treated at another
site (as intake's enrolment says), or that was already infused anywhere (infusion's own
topic, every site), is refused at receipt and again at every later step; a refused bedside
scan is published only on a chain this site treats (never under a scanned COI it has no
relationship to); this ward reads only its own patients' units."""

from __future__ import annotations

from typing import Any

import pytest

from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.domain.mismatches import BedsideMismatch, UnattributableScan
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import (
    ALREADY_INFUSED,
    NOT_TREATING_SITE,
    InfusionRefused,
    ScanRefused,
    StepRefused,
)
from v2v_platform.conditions import Condition
from v2v_platform.errors import NotFound
from v2v_testkit.infusion import (
    AUDITOR_SCOPE,
    COI,
    FIRST_NURSE,
    OTHER_BATCH,
    OTHER_COI,
    OTHER_SITE,
    SECOND_NURSE,
    SITE,
    WARD_SCOPE,
    Clock,
    InMemoryFacts,
    nurse,
    product_din,
    receive_released,
    scanning,
    stored_events,
    verify_at_bedside,
    witnessing,
)

DIN = product_din(1)


# receipt


def published(app: InfusionApplication) -> list[Any]:
    return stored_events(app)


def unpublished(app: InfusionApplication) -> list[Any]:
    notifications = app.unpublished.recorder.select_notifications(1, 100)
    return [app.unpublished.mapper.to_domain_event(n) for n in notifications]


def receipt_refused(app: InfusionApplication, din: str, code: str) -> UnattributableScan.Recorded:
    """Refused with `code`, recorded in the unpublished records only (nothing published)."""
    before = published(app)
    with pytest.raises(ScanRefused, match=code) as refused:
        app.receive_product(din, None, nurse())
    assert refused.value.reason_code == code
    assert published(app) == before
    scan = unpublished(app)[-1]
    assert isinstance(scan, UnattributableScan.Recorded)
    assert (scan.scan_kind, scan.scanned_din, scan.reason_code) == ("receipt", din, code)
    return scan


def test_a_unit_of_another_sites_patient_is_refused_at_receipt(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.create_products([DIN], OTHER_COI, OTHER_BATCH, treating_site_id=OTHER_SITE)
    facts.release(OTHER_BATCH)
    scan = receipt_refused(app, DIN, NOT_TREATING_SITE)
    assert OTHER_SITE in scan.explanation
    with pytest.raises(NotFound):
        app.store_product(DIN, "FRIDGE-1", None, nurse())


def test_a_unit_of_a_patient_no_enrolment_names_is_refused_at_receipt(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.create_products([DIN], treating_site_id=None)
    facts.release()
    receipt_refused(app, DIN, NOT_TREATING_SITE)
    facts.enrol()  # intake's enrolment arrives: the unit is received
    assert app.receive_product(DIN, None, nurse()).status == "received"


def test_a_unit_already_infused_at_another_site_is_refused_at_receipt(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.create_products([DIN])
    facts.release()
    facts.infuse(DIN, OTHER_SITE)
    scan = receipt_refused(app, DIN, ALREADY_INFUSED)
    assert OTHER_SITE in scan.explanation


# every later step


@pytest.fixture
def verified(app: InfusionApplication, facts: InMemoryFacts) -> str:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    return din


def administration(din: str) -> Administration:
    return Administration(
        din, None, 1.0e6, 70.0, SECOND_NURSE, "Nurse u-nurse-2", witnessing(SECOND_NURSE)
    )


def test_a_unit_infused_elsewhere_after_its_verification_here_is_not_infused_here(
    app: InfusionApplication, facts: InMemoryFacts, verified: str
) -> None:
    facts.infuse(verified, OTHER_SITE)
    before = published(app)
    with pytest.raises(InfusionRefused, match=ALREADY_INFUSED) as refused:
        app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    assert refused.value.reason_code == ALREADY_INFUSED
    assert published(app) == before
    assert app.product_unit(verified, WARD_SCOPE).status == "verified"


def test_a_unit_whose_patient_is_treated_elsewhere_now_is_not_infused_here(
    app: InfusionApplication, facts: InMemoryFacts, verified: str
) -> None:
    facts.enrol(COI, OTHER_SITE)
    with pytest.raises(InfusionRefused, match=NOT_TREATING_SITE):
        app.administer_infusion(administration(verified), nurse(FIRST_NURSE))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda facts, din: facts.infuse(din, OTHER_SITE), ALREADY_INFUSED),
        (lambda facts, din: facts.enrol(COI, OTHER_SITE), NOT_TREATING_SITE),
    ],
)
def test_a_misplaced_unit_is_refused_at_the_bedside_and_recorded_on_its_own_chain(
    app: InfusionApplication, facts: InMemoryFacts, change: Any, code: str
) -> None:
    din = receive_released(app, facts)
    app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse(FIRST_NURSE))
    change(facts, din)
    before = published(app)
    with pytest.raises(ScanRefused, match=code):
        app.scan_at_bedside(COI, din, None, scanning(SECOND_NURSE), nurse(SECOND_NURSE))
    [mismatch] = published(app)[len(before) :]
    assert isinstance(mismatch, ProductAtSite.BedsideMismatchRecorded)
    assert (mismatch.coi, mismatch.reason_code, mismatch.wristband_coi) == (COI, code, COI)
    assert app.product_unit(din, WARD_SCOPE).status == "first-scan-recorded"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda facts, din: facts.infuse(din, OTHER_SITE), ALREADY_INFUSED),
        (lambda facts, din: facts.enrol(COI, OTHER_SITE), NOT_TREATING_SITE),
    ],
)
def test_a_misplaced_unit_is_neither_stored_nor_thawed(
    app: InfusionApplication, facts: InMemoryFacts, change: Any, code: str
) -> None:
    din = product_din(4)
    facts.create_products([din], condition=Condition.CRYO)
    facts.release()
    app.receive_product(din, None, nurse())
    change(facts, din)
    before = published(app)
    with pytest.raises(StepRefused, match=code) as stored:
        app.store_product(din, "LN2-1", None, nurse())
    with pytest.raises(StepRefused, match=code) as thawed:
        app.start_thaw(din, None, nurse())
    assert stored.value.reason_code == thawed.value.reason_code == code
    assert published(app) == before


def test_adverse_events_of_a_unit_infused_here_are_still_recorded(
    app: InfusionApplication, facts: InMemoryFacts, verified: str, clock: Clock
) -> None:
    app.administer_infusion(administration(verified), nurse(FIRST_NURSE))
    facts.infuse(verified, SITE)  # this site's own InfusionAdministered, back from Kafka
    clock.advance(hours=1)
    report = AdverseEventReport(verified, "crs", 1, None)
    assert app.record_adverse_event(report, nurse()).adverse_events[0].kind == "crs"
    with pytest.raises(ScanRefused, match=ALREADY_INFUSED):
        app.scan_at_bedside(COI, verified, None, scanning("u-third"), nurse("u-third"))


# refused bedside scans: never published under a chain this site does not treat


def test_an_unknown_unit_against_another_sites_patient_is_kept_unpublished(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.enrol(OTHER_COI, OTHER_SITE)
    with pytest.raises(ScanRefused, match="unknown-unit"):
        app.scan_at_bedside(OTHER_COI, product_din(9), None, scanning(), nurse())
    assert published(app) == []
    [scan] = unpublished(app)
    assert isinstance(scan, UnattributableScan.Recorded)
    assert (scan.scan_kind, scan.wristband_coi, scan.reason_code) == (
        "bedside",
        OTHER_COI,
        "unknown-unit",
    )


def test_a_malformed_label_against_a_patient_of_no_known_enrolment_is_kept_unpublished(
    app: InfusionApplication,
) -> None:
    with pytest.raises(ScanRefused, match="malformed-label"):
        app.scan_at_bedside(OTHER_COI, "not-a-din", None, scanning(), nurse())
    assert published(app) == []
    [scan] = unpublished(app)
    assert isinstance(scan, UnattributableScan.Recorded) and scan.wristband_coi == OTHER_COI


def test_another_sites_unit_not_received_here_is_kept_unpublished(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = product_din(2)
    facts.create_products([din], OTHER_COI, OTHER_BATCH, treating_site_id=OTHER_SITE)
    for wristband in (OTHER_COI, "CHA123425999999"):
        with pytest.raises(ScanRefused, match="not-received"):
            app.scan_at_bedside(wristband, din, None, scanning(), nurse())
    assert published(app) == []
    assert [scan.reason_code for scan in unpublished(app)] == ["not-received"] * 2


def test_a_scan_naming_this_sites_patient_is_published_on_that_patients_chain(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    """The wristband is this site's patient, the bag another site's: the chain at risk is
    the patient's here, the scanned DIN a field."""
    facts.enrol(COI, SITE)
    din = product_din(2)
    facts.create_products([din], OTHER_COI, OTHER_BATCH, treating_site_id=OTHER_SITE)
    with pytest.raises(ScanRefused, match="not-received"):
        app.scan_at_bedside(COI, din, None, scanning(), nurse())
    [mismatch] = published(app)
    assert isinstance(mismatch, BedsideMismatch.Recorded)
    assert (mismatch.coi, mismatch.wristband_coi, mismatch.scanned_din) == (COI, COI, din)
    assert mismatch.coi != OTHER_COI


# reads


def test_this_ward_reads_only_its_own_patients_units_an_auditor_all(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    here, elsewhere = product_din(1), product_din(2)
    facts.create_products([here])
    facts.create_products([elsewhere], OTHER_COI, OTHER_BATCH, treating_site_id=OTHER_SITE)
    assert app.product_unit(here, WARD_SCOPE).status == "expected"
    with pytest.raises(NotFound) as foreign:  # as if absent
        app.product_unit(elsewhere, WARD_SCOPE)
    unknown = product_din(3)
    with pytest.raises(NotFound) as absent:
        app.product_unit(unknown, WARD_SCOPE)
    assert str(foreign.value).replace(elsewhere, "?") == str(absent.value).replace(unknown, "?")
    assert app.product_unit(elsewhere, AUDITOR_SCOPE).coi == OTHER_COI
