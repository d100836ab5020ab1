"""Packaging fresh or cryopreserved: verified units only, temperatures, stability window."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from v2v_intake.views import PackagingInput
from v2v_platform.errors import InvalidInput, Refused
from v2v_testkit.intake import NOW, build_intake, labelled, operator, proof, reader, verified

COLLECTION_END = NOW - timedelta(hours=2)


def test_fresh_packaging_starts_the_window_at_collection_end() -> None:
    intake = build_intake()
    coi, din = verified(intake)
    window = intake.app.package_unit(
        coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B"), operator()
    )
    assert window == COLLECTION_END
    [unit] = intake.app.get_patient(coi, reader("HOSP-A")).units
    assert (unit.status, unit.condition, unit.manufacturing_site_id) == (
        "packaged",
        "fresh-cold",
        "GMP-B",
    )


def test_cryopreservation_starts_the_window_at_the_freeze_time() -> None:
    intake = build_intake()
    coi, din = verified(intake)
    frozen = NOW - timedelta(minutes=30)
    window = intake.app.package_unit(
        coi, din, PackagingInput("cryo", -180.0, "GMP-B", frozen), operator()
    )
    assert window == frozen


def test_an_unverified_unit_cannot_be_packaged() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1"))
    with pytest.raises(Refused, match="not verified"):
        intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B"), operator())


def test_a_unit_is_packaged_once() -> None:
    intake = build_intake()
    coi, din = verified(intake)
    intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B"), operator())
    with pytest.raises(Refused, match="already packaged"):
        intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B"), operator())


@pytest.mark.parametrize(
    ("condition", "temperature"),
    [
        ("fresh-cold", 1.9),
        ("fresh-cold", 8.1),
        ("fresh-ambient", 14.0),
        ("fresh-ambient", 26.0),
        ("cryo", -149.0),
    ],
)
def test_temperatures_outside_the_condition_range_are_refused(
    condition: str, temperature: float
) -> None:
    intake = build_intake()
    coi, din = verified(intake)
    frozen = NOW if condition == "cryo" else None
    with pytest.raises(Refused, match="outside the"):
        intake.app.package_unit(
            coi, din, PackagingInput(condition, temperature, "GMP-B", frozen), operator()
        )


@pytest.mark.parametrize(
    ("packaging", "message"),
    [
        (PackagingInput("cryo", -180.0, "GMP-B"), "needs its freeze time"),
        (PackagingInput("fresh-cold", 4.0, "GMP-B", NOW), "only for a cryopreserved unit"),
        (
            PackagingInput("cryo", -180.0, "GMP-B", COLLECTION_END - timedelta(minutes=1)),
            "before the end",
        ),
        (PackagingInput("cryo", -180.0, "GMP-B", NOW + timedelta(hours=1)), "in the future"),
        (PackagingInput("cryo", -180.0, "GMP-B", datetime(2025, 3, 14, 11, 0)), "time zone"),
        (PackagingInput("frozen-ish", -180.0, "GMP-B"), "not one of"),
    ],
)
def test_invalid_packaging_is_refused(packaging: PackagingInput, message: str) -> None:
    intake = build_intake()
    coi, din = verified(intake)
    with pytest.raises(InvalidInput, match=message):
        intake.app.package_unit(coi, din, packaging, operator())


def test_packaging_for_a_site_without_a_booked_slot_is_refused() -> None:
    intake = build_intake()
    coi, din = verified(intake)
    with pytest.raises(Refused, match=r"no slot is booked .* at manufacturing site GMP-Z"):
        intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-Z"), operator())
