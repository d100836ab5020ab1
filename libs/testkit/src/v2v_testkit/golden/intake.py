"""Golden contract vectors: one example payload per published intake event message.

`make golden` (`python -m v2v_testkit.golden --write`) rewrites contracts/golden/intake/v1/
(only when the contract changes on purpose; the diff is the review). The producer test
rebuilds every payload from domain events with these fixed inputs and compares with the
files; consumers (e.g. manufacturing) decode the files in their own tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from google.protobuf.message import Message

from v2v_intake.adapters.payloads import PAYLOAD_MAPPERS
from v2v_intake.domain.labels import verification_record
from v2v_intake.domain.therapy import Therapy
from v2v_intake.domain.values import BookedSlot, UnitKind
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.conditions import Condition
from v2v_platform.esign import record_hash
from v2v_platform.ids import Din, issue_din
from v2v_testkit.contracts import golden_dir
from v2v_testkit.golden.vectors import payloads_by_name, vector_files
from v2v_testkit.golden.vectors import to_bytes as to_bytes  # re-exported for the producer test
from v2v_testkit.golden.vectors import to_json as to_json  # re-exported for the producer test

GOLDEN_DIR = golden_dir("intake")
COI = "CHA123425000017"
SITE = "HOSP-A"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
FIRST = Attribution("u-1042", "Dr. Ada Example", "collection", SITE, "", None)
SECOND = Attribution("u-2077", "Nurse Ben Example", "collection", SITE, "", None)


def scanned_by(person: Attribution, din: Din) -> SignatureManifestation:
    """The scanner's re-authentication, as the signer store proves it."""
    record = verification_record(COI, str(din))
    return SignatureManifestation(
        person.user_id, person.printed_name, "verification", NOW, record_hash(record)
    )


def golden_events() -> list[object]:
    """A therapy from enrolment to a packaged unit, plus a refused scan and the erasure."""
    therapy = Therapy.enrol(
        coi=COI,
        patient_pseudonym="PSN-7F3A9C",
        treating_site_id="HOSP-T",
        sealed_personal_details="aesgcm1:not-published",
        by=FIRST,
        enrolled_at=NOW - timedelta(days=5),
    )
    slot = BookedSlot("SLOT-GMP-B-20250320-1", "GMP-B", date(2025, 3, 20))
    therapy.record_slot(slot, NOW - timedelta(days=4), FIRST)
    collection_id = therapy.record_collection(
        started_at=NOW - timedelta(hours=6),
        ended_at=NOW - timedelta(hours=2),
        volume_ml=212.5,
        total_nucleated_cells_e9=12.4,
        cd3_cells_e9=6.1,
        slot_id="",
        by=FIRST,
    )
    din = issue_din("A1234", 25, 42)
    labelled_at = NOW - timedelta(hours=1, minutes=30)
    therapy.label_units(collection_id, [din], UnitKind.APHERESIS_BAG, FIRST, labelled_at)
    first_scan = NOW - timedelta(hours=1, minutes=20)
    therapy.scan_label(din, str(din), COI, scanned_by(FIRST, din), FIRST, first_scan)
    refused_scan = first_scan + timedelta(minutes=2)
    therapy.scan_label(din, str(din), COI, scanned_by(FIRST, din), FIRST, refused_scan)
    second_scan = first_scan + timedelta(minutes=5)
    therapy.scan_label(din, str(din), COI, scanned_by(SECOND, din), SECOND, second_scan)
    therapy.package_unit(
        din=din,
        condition=Condition.FRESH_COLD,
        temperature_c=4.5,
        manufacturing_site_id="GMP-B",
        frozen_at=None,
        packaged_at=NOW - timedelta(hours=1),
        by=FIRST,
    )
    therapy.erase_personal_details(FIRST.because("consent withdrawn"))
    return list(therapy.collect_events())


def golden_payloads() -> dict[str, Message]:
    """Message name -> payload, the first event of each message type."""
    return payloads_by_name(golden_events(), PAYLOAD_MAPPERS, first_of_each=True)


def golden_files(name: str) -> tuple[Path, Path]:
    return vector_files(GOLDEN_DIR, name)
