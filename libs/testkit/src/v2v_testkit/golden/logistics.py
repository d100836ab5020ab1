"""Golden contract vectors: one example of every v2v.logistics.events.v1 event message.

`make golden` (`python -m v2v_testkit.golden --write`) rewrites contracts/golden/logistics/v1/
(only when the contract changes on purpose; the diff is the review). The producer test checks
that the payload mappers still turn these fixed domain events into exactly those bytes and
JSON; consumers decode the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from google.protobuf.message import Message

from v2v_logistics.adapters.payloads import PAYLOAD_MAPPERS
from v2v_logistics.domain.shipment import Shipment
from v2v_testkit.contracts import golden_dir
from v2v_testkit.golden.vectors import payloads_by_name
from v2v_testkit.golden.vectors import to_json as to_json  # re-exported for the producer test

GOLDEN_DIR = golden_dir("logistics")
COI = "CHA123425000017"
SITE = "LOGI-1"
SHIPMENT_ID = UUID("6b1f3d5a-7c9e-4b2d-8f1a-3c5e7a9b1d2f")
DINS = ["A12342500000100", "A12342500000200"]
OTHER_COI_DIN = "A12342500003000"
AT = datetime(2025, 6, 1, 14, 0, tzinfo=UTC)
WINDOW_END = datetime(2025, 6, 3, 10, 0, tzinfo=UTC)
COURIER = {"user_id": "C-17", "printed_name": "Kim Courier", "role": "courier"}
NURSE = {"user_id": "u-1001", "printed_name": "Nora Nurse", "role": "collection"}
GMP = {"user_id": "u-2001", "printed_name": "Grace Operator", "role": "manufacturing"}
TOPIC = "v2v_logistics.domain.shipment:Shipment"


def _attributed(actor: dict[str, str], reason: str = "") -> dict[str, Any]:
    return {
        "coi": COI,
        "actor": actor,
        "site_id": SITE,
        "reason": reason,
        "traceparent": None,
        "timestamp": AT,
    }


def _event(event_class: type, version: int, **fields: Any) -> Any:
    return event_class(originator_id=SHIPMENT_ID, originator_version=version, **fields)


def golden_events() -> list[Any]:
    """One fixed domain event per published message."""
    scan = {"from_party": "site:HOSP-A", "receiving_party": "courier:C-17", "scanned_at": AT}
    return [
        _event(
            Shipment.Created,
            1,
            originator_topic=TOPIC,
            manifest=DINS,
            condition="fresh-cold",
            origin_site_id="HOSP-A",
            destination_site_id="GMP-B",
            shipper_id="DEWAR-9",
            data_logger_id="LOGGER-5",
            custodian="site:HOSP-A",
            assigned_courier_id="C-17",
            window_ends_at=WINDOW_END,
            window_rule="fresh apheresis: collection end + 48 h",
            created_at=AT,
            protocol_rules="v1",
            destination_department="gmp",
            **_attributed(NURSE),
        ),
        _event(Shipment.CourierAssigned, 2, courier_id="C-18", **_attributed(NURSE)),
        _event(
            Shipment.UnitScanned,
            3,
            din=DINS[0],
            late=False,
            idempotency_key="0d9e8f7a-1b2c-4d3e-8f4a-5b6c7d8e9f01",
            **scan,
            **_attributed(COURIER),
        ),
        _event(
            Shipment.ScanMismatchRecorded,
            4,
            reason_code="other-coi",
            explanation="unit A12342500003000 belongs to another patient (COI CHA123425000018)",
            scanned_label=OTHER_COI_DIN,
            idempotency_key="1e0f9a8b-2c3d-4e5f-9a0b-6c7d8e9f0a12",
            missing_dins=[],
            **scan,
            **_attributed(COURIER),
        ),
        _event(
            Shipment.CustodyHandedOver,
            5,
            from_party="site:HOSP-A",
            to_party="courier:C-17",
            status="picked-up",
            scanned_at=AT,
            late=True,
            idempotency_key="2f1a0b9c-3d4e-4f5a-8b1c-7d8e9f0a1b23",
            **_attributed(COURIER),
        ),
        _event(
            Shipment.TemperatureReadingsRecorded,
            6,
            device_id="LOGGER-5",
            readings=[
                {"measured_at": AT, "temperature_c": 5.5},
                {"measured_at": AT + timedelta(minutes=10), "temperature_c": 9.25},
            ],
            **_attributed(NURSE),
        ),
        _event(
            Shipment.TemperatureExcursionRecorded,
            7,
            device_id="LOGGER-5",
            condition="fresh-cold",
            started_at=AT + timedelta(minutes=10),
            ended_at=AT + timedelta(minutes=40),
            min_c=8.5,
            max_c=11.0,
            **_attributed(NURSE),
        ),
        _event(
            Shipment.StabilityWindowBreached,
            8,
            window_ends_at=WINDOW_END,
            detected_at=WINDOW_END + timedelta(hours=1),
            checkpoint="receipt",
            **_attributed(GMP),
        ),
        _event(
            Shipment.Delivered,
            9,
            from_party="courier:C-17",
            destination_site_id="GMP-B",
            received_at=WINDOW_END + timedelta(hours=1),
            window_overridden=True,
            override_signature={
                "user_id": "u-qp",
                "printed_name": "Dr. Quinn Person",
                "meaning": "approval",
                "signed_at": (WINDOW_END + timedelta(hours=1)).isoformat(),
            },
            signature_meaning="approval",
            destination_department="gmp",
            manifest_dins=DINS,
            **_attributed(GMP, "patient cannot wait; viability checked"),
        ),
        _event(
            Shipment.ReceiptInspected,
            10,
            intact=True,
            temperature_log_reviewed=True,
            excursion_count=1,
            notes="box intact; 30 min excursion to 11 C reviewed",
            inspected_at=WINDOW_END + timedelta(hours=2),
            **_attributed(GMP),
        ),
        _event(
            Shipment.ExceptionRecorded,
            11,
            kind="delayed",
            custodian="courier:C-17",
            recorded_at=WINDOW_END,
            occurred_at=WINDOW_END - timedelta(hours=3),
            **_attributed(NURSE, "flight cancelled"),
        ),
        _event(
            Shipment.HandoffOffered,
            12,
            from_party="courier:C-17",
            to_party="site:GMP-B/gmp",
            offered_at=WINDOW_END - timedelta(hours=1),
            idempotency_key="3a2b1c0d-4e5f-4a6b-9c2d-8e9f0a1b2c34",
            **_attributed(COURIER),
        ),
    ]


def golden_payloads() -> dict[str, Message]:
    """Message name -> payload built by the production mappers from the golden events."""
    return dict(sorted(payloads_by_name(golden_events(), PAYLOAD_MAPPERS).items()))
