"""Crypto-shredding with the kernel's aggregate cache (issue 18 item 2): an intake process
that cached a therapy (and showed its personal details) reads it again after ANOTHER process
on the same store erased them: the erasure is applied (fast-forward), the details are not
shown and their key is not asked for; the erased therapy takes no further command there."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.application import IntakeApplication
from v2v_intake.unpublished_records import IntakeUnpublishedRecords
from v2v_platform.config import EventStoreSettings
from v2v_platform.errors import Refused
from v2v_testkit.intake import (
    DETAILS,
    ENROLLED_AT,
    SITE,
    FixedClock,
    collection,
    din_block,
    operator,
    reader,
)


def test_an_erasure_by_another_process_is_seen_by_a_process_that_cached_the_therapy(
    tmp_path: Path,
) -> None:
    keys, clock = InMemoryKeyStore(), FixedClock()
    records = IntakeUnpublishedRecords(
        EventStoreSettings(sqlite_path=tmp_path / "registers.sqlite").eventsourcing_env(),
        din_block=din_block(),
    )
    env = EventStoreSettings(sqlite_path=tmp_path / "events.sqlite").eventsourcing_env()

    def process() -> IntakeApplication:
        return IntakeApplication(
            env, site_id=SITE, unpublished=records, clock=clock, fin="A1234", keys=keys
        )

    first, second = process(), process()
    coi = first.enrol_patient("PSN-0001", DETAILS, SITE, operator(), ENROLLED_AT)
    assert first.get_patient(coi, reader()).personal_details == DETAILS  # cached in `first`
    second.erase_personal_details(coi, operator(reason="consent withdrawn"))
    assert keys.get(coi) is None
    view = first.get_patient(coi, reader())
    assert view.personal_details is None and view.personal_details_erased
    with pytest.raises(Refused, match="erased"):
        first.record_collection(coi, collection(), operator())
