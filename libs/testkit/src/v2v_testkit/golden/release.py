"""Golden contract vectors: one example of every v2v.release.events.v1 event message.

`make golden` (`python -m v2v_testkit.golden --write`) rewrites contracts/golden/release/v1/ (only
when the contract changes on purpose; the diff is the review). The producer test checks that
the payload mappers still turn these fixed domain events into exactly those bytes and JSON;
consumers (infusion, projection) decode the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from v2v_release.adapters.payloads import PAYLOAD_MAPPERS
from v2v_release.domain.batch_release import BatchRelease, release_id
from v2v_release.domain.specification import SPEC_V1
from v2v_testkit.contracts import golden_dir
from v2v_testkit.golden.vectors import payloads_by_name
from v2v_testkit.golden.vectors import to_json as to_json  # re-exported for the producer test

GOLDEN_DIR = golden_dir("release")
COI = "CHA123425000017"
SITE = "QC-1"
BATCH_ID = "3f6c2b1a-9d4e-4c7b-8a15-0e2d4f6a8b9c"
RELEASE_ID = release_id(BATCH_ID)
PRODUCT_DINS = ["W12342500000100", "W12342500000200"]
STARTED = datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
AT = datetime(2025, 6, 10, 14, 0, tzinfo=UTC)
ANALYST = {"user_id": "u-lab", "printed_name": "Lee Lab"}
STERILITY_ID = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
HASH = "72bb9e74edd452c77b6b091688c96175e8f283d4b5d5adc2595d8da3018755b7"
FAILED = ["viability"]


def _signature(user_id: str, name: str, meaning: str) -> dict[str, str]:
    return {
        "user_id": user_id,
        "printed_name": name,
        "meaning": meaning,
        "signed_at": AT.isoformat(),
        "record_hash": HASH,
    }


QP = _signature("u-qp", "Dr. Quinn Person", "approval")
PHYSICIAN = _signature("u-doc", "Dr. Tara Treat", "responsibility")


def _attributed(reason: str = "", role: str = "qc", user: str = "u-analyst") -> dict[str, Any]:
    return {
        "coi": COI,
        "batch_id": BATCH_ID,
        "actor": {"user_id": user, "printed_name": "Ann Analyst", "role": role},
        "site_id": SITE,
        "reason": reason,
        "traceparent": None,
        "timestamp": AT,
    }


def _event(kind: type, version: int, **fields: Any) -> Any:
    return kind(originator_id=RELEASE_ID, originator_version=version, **fields)


def _decided(signature: dict[str, str] = QP) -> dict[str, Any]:
    return {
        "spec_version": "v1",
        "product_dins": PRODUCT_DINS,
        "signature_meaning": signature["meaning"],
    }


def golden_events() -> list[Any]:
    """One fixed domain event per message, in message-name order."""
    return [
        _event(
            BatchRelease.Rejected,
            5,
            rejected_at=AT,
            failed_tests=FAILED,
            qp_signature=QP,
            **_decided(),
            **_attributed("viability below specification"),
        ),
        _event(
            BatchRelease.Opened,
            1,
            originator_topic="v2v_release.domain.batch_release:BatchRelease",
            manufacturing_site_id="GMP-B",
            product_dins=PRODUCT_DINS,
            condition="fresh-cold",
            batch_started_at=STARTED,
            spec_version="v1",
            criteria=[c.as_dict() for c in SPEC_V1.criteria],
            **_attributed(),
        ),
        _event(
            BatchRelease.FinallyCertified,
            6,
            certified_at=AT,
            qp_signature=QP,
            **_decided(),
            **_attributed(),
        ),
        _event(
            BatchRelease.OosReleaseAccepted,
            8,
            treating_site_id="HOSP-A",
            accepted_at=AT,
            physician_signature=PHYSICIAN,
            **_decided(PHYSICIAN),
            **_attributed(role="infusion", user="u-doc"),
        ),
        _event(
            BatchRelease.OosReleaseJustified,
            7,
            failed_tests=FAILED,
            justification="no alternative therapy; viability 65 % still clinically acceptable",
            justified_at=AT,
            qp_signature=QP,
            **_decided(),
            **_attributed("no alternative therapy; viability 65 % still clinically acceptable"),
        ),
        _event(
            BatchRelease.PostReleaseFailureRecorded,
            4,
            failure_id=STERILITY_ID,
            spec_version="v1",
            product_dins=PRODUCT_DINS,
            test="sterility",
            value="positive",
            unit="",
            criterion="negative",
            result_at=AT,
            released_as="provisional",
            **_attributed(),
        ),
        _event(
            BatchRelease.ProvisionallyCertified,
            3,
            certified_at=AT,
            qp_signature=QP,
            pending_tests=["sterility", "vcn", "rcl"],
            **_decided(),
            **_attributed(),
        ),
        _event(
            BatchRelease.QcResultRecorded,
            2,
            result_id="1c3e5a7b-9d2f-4b6a-8e1c-3a5b7d9f2e4c",
            test="mycoplasma",
            method="PCR",
            value="negative",
            unit="",
            result_at=AT,
            analyst=ANALYST,
            spec_version="v1",
            criterion="negative by PCR",
            passed=True,
            corrects_result_id="7a1e3c5d-2b4f-4a6e-9c8d-1f3e5a7c9b2d",
            pending_tests=["sterility", "vcn", "rcl"],
            **_attributed("sample mislabelled; retested"),
        ),
    ]


def golden_payloads() -> dict[str, Message]:
    """Message name -> payload built by the production mappers from the golden events."""
    return payloads_by_name(golden_events(), PAYLOAD_MAPPERS)
