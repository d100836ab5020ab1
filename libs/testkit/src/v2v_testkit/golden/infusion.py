"""Golden contract vectors: one example of every v2v.infusion.events.v1 message.

`make golden` (`python -m v2v_testkit.golden --write`) rewrites contracts/golden/infusion/v1/ (only
when the contract changes on purpose; the diff is the review). The producer test checks that
the payload mappers still turn these fixed domain events into exactly those bytes and JSON;
consumers decode the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from google.protobuf.message import Message

from v2v_infusion.adapters.payloads import PAYLOAD_MAPPERS
from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.bedside import bedside_record
from v2v_infusion.domain.mismatches import BedsideMismatch
from v2v_infusion.domain.product import ProductAtSite
from v2v_platform.esign import record_hash
from v2v_testkit.contracts import golden_dir
from v2v_testkit.golden.vectors import payloads_by_name
from v2v_testkit.golden.vectors import to_json as to_json  # re-exported for the producer test

GOLDEN_DIR = golden_dir("infusion")
COI = "CHA123425000017"
OTHER_COI = "CHA123425000018"
SITE = "HOSP-A"
BATCH_ID = "3f6c2b1a-9d4e-4c7b-8a15-0e2d4f6a8b9c"
DIN = "W12342500000100"
UNIT = UUID("6b1d3f5a-7c9e-4b2d-8f1a-3c5e7a9b1d2f")
AT = datetime(2025, 6, 4, 9, 0, tzinfo=UTC)
NURSE = {"user_id": "u-nurse", "printed_name": "Nora Nurse", "role": "infusion"}
SECOND_NURSE = {"user_id": "u-nurse-2", "printed_name": "Ned Nurse", "role": "infusion"}
PRODUCT_TOPIC = "v2v_infusion.domain.product:ProductAtSite"


def bedside(scanned_at: datetime) -> dict[str, Any]:
    """What a bedside scanner of the golden unit signs."""
    return bedside_record(DIN, COI, scanned_at)


def _person(actor: dict[str, str]) -> dict[str, str]:
    return {"user_id": actor["user_id"], "printed_name": actor["printed_name"]}


def _attributed(actor: dict[str, str] = NURSE, coi: str = COI, reason: str = "") -> dict[str, Any]:
    return {
        "coi": coi,
        "actor": actor,
        "site_id": SITE,
        "reason": reason,
        "traceparent": None,
        "timestamp": AT,
    }


def _signed(actor: dict[str, str], meaning: str, at: datetime, record: dict[str, Any]) -> Any:
    """A person's manifestation (re-authenticated), as events store it."""
    return {
        "user_id": actor["user_id"],
        "printed_name": actor["printed_name"],
        "meaning": meaning,
        "signed_at": at.isoformat(),
        "record_hash": record_hash(record),
    }


def _event(event_class: type, aggregate_id: UUID, version: int, /, **fields: Any) -> Any:
    return event_class(originator_id=aggregate_id, originator_version=version, **fields)


def _unit_events() -> list[Any]:
    thawed = AT + timedelta(hours=1)
    infuse_by = thawed + timedelta(minutes=30)
    first_scan, second_scan = thawed + timedelta(minutes=5), thawed + timedelta(minutes=6)
    infused_at = thawed + timedelta(minutes=10)
    first = _signed(NURSE, "verification", first_scan, bedside(first_scan))
    second = _signed(SECOND_NURSE, "verification", second_scan, bedside(second_scan))
    infusion = {
        "check": "infusion-witness",
        "coi": COI,
        "din": DIN,
        "administered_at": infused_at,
        "dose_car_cells_per_kg": 1.0e6,
        "volume_ml": 68.5,
        "administered_by": NURSE["user_id"],
    }
    witness = _signed(SECOND_NURSE, "witness", infused_at, infusion)
    return [
        _event(
            ProductAtSite.Received,
            UNIT,
            1,
            originator_topic=PRODUCT_TOPIC,
            din=DIN,
            treating_site_id=SITE,
            batch_id=BATCH_ID,
            condition="cryo",
            received_at=AT,
            **_attributed(),
        ),
        _event(
            ProductAtSite.Stored,
            UNIT,
            2,
            din=DIN,
            location="LN2-DEWAR-3",
            condition="cryo",
            stored_at=AT,
            **_attributed(),
        ),
        _event(
            ProductAtSite.ThawStarted,
            UNIT,
            3,
            din=DIN,
            thaw_started_at=thawed,
            infuse_by=infuse_by,
            window_minutes=30,
            protocol_rules="v1",
            **_attributed(),
        ),
        _event(
            ProductAtSite.BedsideScanRecorded,
            UNIT,
            4,
            din=DIN,
            wristband_coi=COI,
            scanned_at=first_scan,
            signature=first,
            signature_meaning="verification",
            **_attributed(),
        ),
        _event(
            ProductAtSite.BedsideVerified,
            UNIT,
            5,
            din=DIN,
            first_user=_person(NURSE),
            second_user=_person(SECOND_NURSE),
            verified_at=second_scan,
            release_basis="provisional",
            infuse_by=infuse_by,
            protocol_rules="v1",
            first_signature=first,
            second_signature=second,
            signature_meaning="verification",
            **_attributed(SECOND_NURSE),
        ),
        _event(
            ProductAtSite.InfusionAdministered,
            UNIT,
            6,
            din=DIN,
            administered_at=infused_at,
            dose_car_cells_per_kg=1.0e6,
            volume_ml=68.5,
            administered_by=_person(NURSE),
            witnessed_by=_person(SECOND_NURSE),
            release_basis="provisional",
            witness_signature=witness,
            signature_meaning="witness",
            **_attributed(),
        ),
        _event(
            ProductAtSite.AdverseEventRecorded,
            UNIT,
            7,
            din=DIN,
            kind="crs",
            grade=2,
            onset_at=thawed + timedelta(days=2),
            notes="fever 39.1 C, hypotension responsive to fluids",
            **_attributed(),
        ),
    ]


def golden_events() -> list[Any]:
    """One fixed domain event per published message."""
    physician = {"user_id": "u-doc", "printed_name": "Dr. Petra Physician", "role": "infusion"}
    signed_at = AT + timedelta(days=3)
    failure_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    decision = "do not infuse; patient informed"
    signed = {
        "failure_id": failure_id,
        "coi": COI,
        "batch_id": BATCH_ID,
        "test": "sterility",
        "product_dins": [DIN],
        "decision": decision,
    }
    return [
        *_unit_events(),
        _event(
            BedsideMismatch.Recorded,
            UUID("2e4a6c8b-0d1f-4e3a-9b5c-7d9f1b3d5e7a"),
            1,
            originator_topic="v2v_infusion.domain.mismatches:BedsideMismatch",
            scanned_din=DIN,
            wristband_coi=OTHER_COI,
            reason_code="coi-mismatch",
            explanation=f"the wristband COI {OTHER_COI} is not the COI {COI} of unit {DIN}",
            scanned_at=AT,
            **_attributed(),
        ),
        _event(
            FailureAcknowledgement.Acknowledged,
            UUID("9c1e3a5b-7d9f-4b1d-8e3a-5c7e9a1b3d5f"),
            1,
            originator_topic="v2v_infusion.domain.acknowledgement:FailureAcknowledgement",
            failure_id=failure_id,
            batch_id=BATCH_ID,
            test="sterility",
            product_dins=[DIN],
            decision=decision,
            acknowledged_at=signed_at,
            physician_signature={
                "user_id": "u-doc",
                "printed_name": "Dr. Petra Physician",
                "meaning": "responsibility",
                "signed_at": signed_at.isoformat(),
                "record_hash": record_hash(signed),
            },
            signature_meaning="responsibility",
            **_attributed(physician),
        ),
    ]


def golden_payloads() -> dict[str, Message]:
    """Message name -> payload built by the production mappers from the golden events."""
    return payloads_by_name(golden_events(), PAYLOAD_MAPPERS)
