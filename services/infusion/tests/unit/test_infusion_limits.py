"""Bounded input at infusion (issue 12): finite doses and volumes, no future receipt, thaw,
scan or infusion times, texts within their limits, refused scans echoed bounded, and no
accepted command near the broker's record limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from v2v_infusion.adapters.payloads import TRANSLATOR
from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.domain.values import ScanRefused
from v2v_platform.attribution import Attribution
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.esign import SignatureRequest
from v2v_platform.limits import (
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    sealed_sizes,
)
from v2v_testkit.infusion import (
    COI,
    PASSWORD,
    PHYSICIAN_ID,
    SIGNATURE_REQUEST,
    SITE,
    InMemoryFacts,
    build_app,
    kinds,
    nurse,
    nurse_signer,
    physician,
    physician_store,
    product_din,
    receive_released,
    scanning,
    stored_events,
    verify_at_bedside,
    witnessing,
)

MB = 1024 * 1024
YEAR_2999 = datetime(2999, 1, 1, tzinfo=UTC)


def administration(din: str, **changes: object) -> Administration:
    given: dict[str, object] = {
        "din": din,
        "administered_at": None,
        "dose_car_cells_per_kg": 2.0e6,
        "volume_ml": 68.0,
        "witness_user_id": "u-nurse-2",
        "witness_printed_name": "Nurse Two",
        "witness_signature": witnessing("u-nurse-2"),
    }
    return Administration(**{**given, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["dose_car_cells_per_kg", "volume_ml"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_dose_or_volume_that_is_not_a_finite_number_is_refused(
    app: InfusionApplication, facts: InMemoryFacts, field: str, value: float
) -> None:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    before = kinds(app)
    with pytest.raises(InvalidInput, match=f"{field} must be a finite number"):
        app.administer_infusion(administration(din, **{field: value}), nurse())
    assert kinds(app) == before


@pytest.mark.parametrize(
    ("act", "named"),
    [
        (lambda app, din: app.receive_product(din, YEAR_2999, nurse()), "received_at 2999"),
        (lambda app, din: app.start_thaw(din, YEAR_2999, nurse()), "thaw_started_at 2999"),
        (
            lambda app, din: app.scan_at_bedside(COI, din, YEAR_2999, scanning(), nurse()),
            "scanned_at 2999",
        ),
        (
            lambda app, din: app.administer_infusion(
                administration(din, administered_at=YEAR_2999), nurse()
            ),
            "administered_at 2999",
        ),
    ],
)
def test_a_time_in_2999_is_refused_naming_the_field(
    app: InfusionApplication, facts: InMemoryFacts, act: object, named: str
) -> None:
    din = product_din(1)
    facts.create_products([din], condition=Condition.CRYO)
    facts.release()
    before = kinds(app)
    with pytest.raises(InvalidInput, match=named):
        act(app, din)  # type: ignore[operator]
    assert kinds(app) == before


def test_a_refused_bedside_scan_of_long_labels_is_recorded_and_answered_cut(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    with pytest.raises(ScanRefused) as refused:
        app.scan_at_bedside("W" * (10 * MB), din, None, scanning(), nurse())
    assert len(str(refused.value)) < 1000
    mismatch = stored_events(app)[-1]
    assert mismatch.wristband_coi == "W" * 256 + "…[cut: 10485760 characters in all]"
    assert len(mismatch.explanation) < 1000


def test_a_refused_receipt_of_a_long_label_is_recorded_and_answered_cut(
    app: InfusionApplication,
) -> None:
    with pytest.raises(ScanRefused) as refused:
        app.receive_product("D" * (10 * MB), None, nurse())
    assert len(str(refused.value)) < 1000
    [scan] = stored_events(app.unpublished)
    assert scan.scanned_din == "D" * 256 + "…[cut: 10485760 characters in all]"


def test_texts_are_bounded(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = receive_released(app, facts)
    with pytest.raises(InvalidInput, match="location has 201 characters; the limit is 200"):
        app.store_product(din, "L" * 201, None, nurse())
    witness = administration(din, witness_printed_name="N" * MB)
    with pytest.raises(InvalidInput, match=r"witnessed_by\.printed_name has 1048576 characters"):
        app.administer_infusion(witness, nurse())
    verify_at_bedside(app, din)
    app.administer_infusion(administration(din), nurse())
    report = AdverseEventReport(din, "crs", 2, None, "n" * 2001)
    with pytest.raises(InvalidInput, match="notes has 2001 characters; the limit is 2000"):
        app.record_adverse_event(report, nurse())


def test_an_acknowledgement_is_bounded(app: InfusionApplication, facts: InMemoryFacts) -> None:
    facts.enrol()
    alert = facts.fail()
    with pytest.raises(InvalidInput, match="decision has 2001 characters; the limit is 2000"):
        app.acknowledge_alert(alert.failure_id, "d" * 2001, SIGNATURE_REQUEST, physician())
    huge = SignatureRequest(PHYSICIAN_ID, "p" * MB, "responsibility")
    with pytest.raises(InvalidInput, match=r"signature\.password has 1048576 characters"):
        app.acknowledge_alert(alert.failure_id, "hold", huge, physician())


def test_no_accepted_command_comes_near_the_record_limit(facts: InMemoryFacts) -> None:
    """The largest accepted value of every field, each command once: every envelope stays
    far below MAX_EVENT_BYTES (and the broker's 1 MiB)."""
    reason = "r" * MAX_TEXT_CHARS
    first = Attribution("u" * MAX_ID_CHARS, "N" * MAX_NAME_CHARS, "infusion", SITE, reason)
    second = Attribution("v" * MAX_ID_CHARS, "N" * MAX_NAME_CHARS, "infusion", SITE, reason)
    signers = physician_store()
    for person in (first, second):  # proven persons with the longest registered names
        signers.put(nurse_signer(person.user_id, person.printed_name))
    app = build_app(facts, signers=signers)
    signed_first = scanning(first.user_id)
    din = product_din(1)
    facts.create_products([din], condition=Condition.CRYO)
    facts.release()
    facts.enrol()
    app.receive_product(din, None, first)
    app.store_product(din, "L" * MAX_NAME_CHARS, None, first)
    app.start_thaw(din, None, first)
    with pytest.raises(ScanRefused):
        app.scan_at_bedside("W" * MB, din, None, signed_first, first)
    app.scan_at_bedside(COI, din, None, signed_first, first)
    app.scan_at_bedside(COI, din, None, scanning(second.user_id), second)
    witness = {
        "witness_user_id": second.user_id,
        "witness_printed_name": "W" * 200,
        "witness_signature": witnessing(second.user_id),
    }
    app.administer_infusion(administration(din, **witness), first)
    app.record_adverse_event(AdverseEventReport(din, "crs", 4, None, "n" * 2000), first)
    facts.create_products([product_din(2)])
    with pytest.raises(ScanRefused):  # a unit not received here: on the chain at risk
        app.scan_at_bedside("W" * MB, product_din(2), None, signed_first, first)
    alert = facts.fail(dins=[din])
    doctor = Attribution(PHYSICIAN_ID, "N" * MAX_NAME_CHARS, "infusion", SITE, reason)
    request = SignatureRequest(PHYSICIAN_ID, PASSWORD, "responsibility")
    app.acknowledge_alert(alert.failure_id, "d" * MAX_TEXT_CHARS, request, doctor)
    sizes = sealed_sizes(TRANSLATOR.translate, stored_events(app))
    assert len(sizes) >= 9, sizes
    assert max(sizes.values()) < MAX_EVENT_BYTES, sizes
