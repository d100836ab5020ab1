"""Golden contract vectors: one example of every PUBLISHED v2v.manufacturing.events.v1 message.

Deprecated messages that are no longer published (SlotCapacitySet, ProductDinsReserved: their
facts are internal to the service now) have no vector.

`make golden` (`python -m v2v_testkit.golden --write`) rewrites contracts/golden/manufacturing/v1/
(only when the contract changes on purpose; the diff is the review). The producer test
checks that the payload mappers still turn these fixed domain events into exactly those
bytes and JSON; consumers decode the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from google.protobuf.message import Message

from v2v_manufacturing.adapters.payloads import PAYLOAD_MAPPERS
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.batch_mismatch import BatchInputsMismatch
from v2v_manufacturing.domain.receipt import ReceiptMismatch, ReceivedUnit
from v2v_manufacturing.domain.slot_booking import SlotBooking
from v2v_testkit.contracts import golden_dir
from v2v_testkit.golden.vectors import payloads_by_name
from v2v_testkit.golden.vectors import to_json as to_json  # re-exported for the producer test

GOLDEN_DIR = golden_dir("manufacturing")
COI = "CHA123425000017"
OTHER_COI = "CHA123425000018"
SITE = "GMP-B"
HOSPITAL = "HOSP-A"
BATCH_ID = UUID("3f6c2b1a-9d4e-4c7b-8a15-0e2d4f6a8b9c")
INPUT_DINS = ["A12342500000100", "A12342500000200"]
PRODUCT_DINS = ["W12342500000100", "W12342500000200"]
AT = datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
COLLECTION_END = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
FAILED_AT = datetime(2025, 6, 1, 22, 15, tzinfo=UTC)
"""When the golden batch failed (clinical time), entered after the fact (before `AT`)."""
OPERATOR = {"user_id": "u-2001", "printed_name": "Grace Operator", "role": "manufacturing"}


def _attributed(coi: str, reason: str = "", site_id: str = SITE) -> dict[str, Any]:
    return {
        "coi": coi,
        "actor": OPERATOR,
        "site_id": site_id,
        "reason": reason,
        "traceparent": None,
        "timestamp": AT,
    }


def _event(kind: type, aggregate_id: UUID, version: int, **fields: Any) -> Any:
    return kind(originator_id=aggregate_id, originator_version=version, **fields)


def golden_events() -> list[Any]:
    """One fixed domain event per published message, in message-name order."""
    slot = UUID("7a1e3c5d-2b4f-4a6e-9c8d-1f3e5a7c9b2d")
    unit = UUID("1c3e5a7b-9d2f-4b6a-8e1c-3a5b7d9f2e4c")
    day = {"manufacturing_site_id": SITE, "slot_date": "2025-06-02"}
    booker = {**OPERATOR, "role": "collection"}
    signed_at = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)
    return [
        _event(
            Batch.Failed,
            BATCH_ID,
            4,
            failure_reason="mycoplasma positive",
            failed_at=FAILED_AT,
            **_attributed(COI, "mycoplasma positive"),
        ),
        _event(
            BatchInputsMismatch.Recorded,
            UUID("8e2f4a6c-0b1d-4e3f-9a5c-7d9e1b3f5a2c"),
            1,
            originator_topic="v2v_manufacturing.domain.batch_mismatch:BatchInputsMismatch",
            input_dins=INPUT_DINS,
            input_cois=[COI, OTHER_COI],
            reason_code="mixed-coi",
            explanation=(
                f"input units belong to different COIs ({COI}, {OTHER_COI}):"
                f" {INPUT_DINS[0]} ({COI}), {INPUT_DINS[1]} ({OTHER_COI}); a batch is made"
                " from ONE patient's cells (I1): STOP, refused and recorded on each"
                " patient's chain"
            ),
            manufacturing_site_id=SITE,
            refused_at=AT,
            **_attributed(COI),
        ),
        _event(
            Batch.Started,
            BATCH_ID,
            1,
            originator_topic="v2v_manufacturing.domain.batch:Batch",
            manufacturing_site_id=SITE,
            input_dins=INPUT_DINS,
            started_at=AT,
            fresh_window_hours=48,
            window_overridden=True,
            override_signature={
                "user_id": "u-qp",
                "printed_name": "Dr. Quinn Person",
                "meaning": "approval",
                "signed_at": signed_at.isoformat(),
            },
            signature_meaning="approval",
            protocol_rules="v1",
            **_attributed(COI, "patient cannot wait; viability checked"),
        ),
        _event(
            Batch.InProcessQcRecorded,
            BATCH_ID,
            3,
            test="viability",
            value=92.5,
            unit="%",
            passed=True,
            measured_at=AT,
            **_attributed(COI),
        ),
        _event(
            Batch.ProcessStepRecorded,
            BATCH_ID,
            2,
            step_kind="transduction",
            device_type="Lonza Cocoon",
            device_serial="COC-7",
            reagent_lots=["TexMACS-L9"],
            vector_lot="LV-CD19-0031",
            parameters={"MOI": "5", "volume_ml": "40"},
            performed_at=AT,
            **_attributed(COI),
        ),
        _event(
            Batch.ProductUnitsCreated,
            BATCH_ID,
            5,
            product_dins=PRODUCT_DINS,
            input_dins=INPUT_DINS,
            hold_condition="cryo",
            created_at=AT,
            **_attributed(COI),
        ),
        _event(
            SlotBooking.Booked,
            slot,
            1,
            originator_topic="v2v_manufacturing.domain.slot_booking:SlotBooking",
            slot_id=f"{SITE}/2025-06-02/1",
            booking_site_id=HOSPITAL,
            **day,
            **{**_attributed(COI), "actor": booker},
        ),
        _event(
            SlotBooking.Released,
            slot,
            2,
            slot_id=f"{SITE}/2025-06-02/1",
            **day,
            **{**_attributed(COI, "patient unwell"), "actor": booker},
        ),
        _event(
            ReceivedUnit.AllocatedToBatch,
            unit,
            2,
            din=INPUT_DINS[0],
            batch_id=str(BATCH_ID),
            **_attributed(COI),
        ),
        _event(
            ReceiptMismatch.Recorded,
            UUID("5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"),
            1,
            originator_topic="v2v_manufacturing.domain.receipt:ReceiptMismatch",
            scanned_din=INPUT_DINS[1],
            scanned_coi=OTHER_COI,
            reason_code="coi-mismatch",
            explanation=f"the scanned COI {OTHER_COI!r} is not the unit's COI {COI}",
            manufacturing_site_id=SITE,
            **_attributed(COI),
        ),
        _event(
            ReceivedUnit.Received,
            unit,
            1,
            originator_topic="v2v_manufacturing.domain.receipt:ReceivedUnit",
            din=INPUT_DINS[0],
            manufacturing_site_id=SITE,
            slot_id=f"{SITE}/2025-06-02/1",
            condition="fresh-cold",
            window_starts_at=COLLECTION_END,
            received_at=AT,
            **_attributed(COI),
        ),
    ]


def golden_payloads() -> dict[str, Message]:
    """Message name -> payload built by the production mappers from the golden events."""
    return payloads_by_name(golden_events(), PAYLOAD_MAPPERS)
