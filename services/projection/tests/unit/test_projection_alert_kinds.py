"""Alerts that name the real problem (issue 14): each refused bedside scan raises the alert of
its reason (not always `identity-mismatch`), a batch start refused for inputs of two COIs is
an alert on both chains, and docs/alerts.md lists exactly the catalogue's kinds, severities,
triggers and bedside mapping."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

import v2v_projection.chain
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_infusion.domain import values as infusion_values
from v2v_projection.chain import alert_kinds
from v2v_projection.chain.alert_kinds import BEDSIDE_REFUSALS, CATALOGUE, SEVERITIES
from v2v_projection.fold import ChainFold
from v2v_testkit.contracts import golden_dir
from v2v_testkit.synthetic.chains import generate_history
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI, OTHER_COI = "CHA123425000017", "CHA123425000025"
PRODUCT = "B23452500000700"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
DOC = Path(__file__).resolve().parents[4] / "docs" / "alerts.md"
NOT_REASON_CODES = {"PHYSICIAN", "NURSE"}


def stamp(hours: float) -> Timestamp:
    return Timestamp(seconds=int((T0 + timedelta(hours=hours)).timestamp()))


def view_of(*written: tuple[str, str, Message, str, str]) -> dict[str, dict[str, Any]]:
    """Chain views (by COI) of hand-written facts: (coi, aggregate, payload, site, context)."""
    writer, fold = EnvelopeWriter(), ChainFold()
    for hours, (coi, aggregate, payload, site, context) in enumerate(written):
        fold.apply_bytes(
            writer.write(
                coi, aggregate, payload, T0 + timedelta(hours=hours), site=site, context=context
            )
        )
    return {coi: view for coi in fold.cois() if (view := fold.chain(coi)) is not None}


def bedside_refused(reason_code: str) -> dict[str, Any]:
    refused = infusion.BedsideMismatchRecorded(
        coi=COI,
        scanned_din=PRODUCT,
        wristband_coi=COI,
        reason_code=reason_code,
        explanation="refused",
        scanned_at=stamp(1),
    )
    return view_of((COI, "ProductAtSite:1", refused, "HOSP-A", "infusion"))[COI]


def infusion_reason_codes() -> set[str]:
    """Every reason code infusion's domain defines (its module-level string constants)."""
    return {
        value
        for name, value in vars(infusion_values).items()
        if name.isupper() and isinstance(value, str) and name not in NOT_REASON_CODES
    }


@pytest.mark.parametrize(
    ("reason_code", "kind"),
    [
        ("coi-mismatch", "identity-mismatch"),
        ("window-expired", "stability-window-breach"),
        ("rejected", "unreleased-product-at-bedside"),
        ("not-released", "unreleased-product-at-bedside"),
        ("unacknowledged-failure", "unacknowledged-post-release-failure"),
        ("already-infused", "double-infusion"),
        ("not-treating-site", "unrelated-author"),
        ("not-received", "custody-gap"),
        ("same-user", "two-person-check"),
        ("identity-conflict", "identity-conflict"),
    ],
)
def test_a_refused_bedside_scan_raises_the_alert_of_its_reason(reason_code: str, kind: str) -> None:
    view = bedside_refused(reason_code)

    [alert] = [a for a in view["alerts"] if reason_code in a["detail"]]
    assert alert["kind"] == kind
    assert alert["severity"] == CATALOGUE[kind].severity
    assert alert["at"] == (T0 + timedelta(hours=1)).isoformat()


def test_every_bedside_reason_code_of_infusion_has_its_alert_kind() -> None:
    codes = infusion_reason_codes()

    assert "window-expired" in codes and "coi-mismatch" in codes
    assert codes <= set(BEDSIDE_REFUSALS)
    assert set(BEDSIDE_REFUSALS.values()) <= set(CATALOGUE)


def test_an_unknown_bedside_reason_is_still_an_identity_mismatch() -> None:
    [alert] = bedside_refused("some-new-reason")["alerts"]

    assert alert["kind"] == "identity-mismatch"


def test_a_batch_of_two_cois_is_an_identity_mismatch_on_both_chains() -> None:
    """The manufacturing golden vector, recorded on each chain as the GMP site does."""
    golden = manufacturing.BatchInputsMismatchRecorded.FromString(
        (golden_dir("manufacturing") / "BatchInputsMismatchRecorded.bin").read_bytes()
    )
    mine, theirs = golden.input_cois
    on_theirs = manufacturing.BatchInputsMismatchRecorded()
    on_theirs.CopyFrom(golden)
    on_theirs.coi = theirs

    views = view_of(
        (mine, "BatchInputsMismatch:1", golden, "GMP-B", "manufacturing"),
        (theirs, "BatchInputsMismatch:2", on_theirs, "GMP-B", "manufacturing"),
    )

    assert sorted(views) == sorted([mine, theirs])
    for view in views.values():
        [alert] = view["alerts"]
        assert alert["kind"] == "identity-mismatch"
        assert alert["at"] == golden.refused_at.ToDatetime(UTC).isoformat()
        assert "mixed-coi" in alert["detail"]
        assert all(din in alert["detail"] for din in golden.input_dins)
        assert mine in alert["detail"] and theirs in alert["detail"]


def test_a_receipt_refused_for_an_identity_conflict_is_an_identity_conflict() -> None:
    refused = manufacturing.UnitReceiptMismatchRecorded(
        coi=COI, scanned_din=PRODUCT, scanned_coi=COI, reason_code="identity-conflict"
    )
    view = view_of((COI, "ReceiptMismatch:1", refused, "GMP-B", "manufacturing"))[COI]

    [alert] = view["alerts"]
    assert (alert["kind"], alert["severity"]) == ("identity-conflict", "critical")


def doc_table(heading: str) -> list[list[str]]:
    """The rows of the table under `heading` in docs/alerts.md, cells without backquotes."""
    section = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def test_the_alerts_doc_lists_exactly_the_catalogue() -> None:
    rows = doc_table("Alert kinds")

    assert [row[0] for row in rows] == list(CATALOGUE)
    assert {row[0]: (row[1], row[2]) for row in rows} == {
        kind: (entry.severity, entry.trigger) for kind, entry in CATALOGUE.items()
    }
    assert {entry.severity for entry in CATALOGUE.values()} <= set(SEVERITIES)


def test_the_alerts_doc_lists_exactly_the_bedside_mapping() -> None:
    rows = doc_table("Refused bedside scans")

    assert {row[0]: row[1] for row in rows} == BEDSIDE_REFUSALS
    assert len(rows) == len(BEDSIDE_REFUSALS)


def test_every_alert_raised_in_the_fold_names_a_catalogued_kind() -> None:
    """Each `.alert(` call passes a catalogue constant (or a kind the catalogue maps to), and
    a varied synthetic history raises only catalogued kinds."""
    constants = {
        name
        for name, value in vars(alert_kinds).items()
        if isinstance(value, str) and value in CATALOGUE
    }
    mapped = {"kind", "bedside_refusal(reason_code)", "scan_refusal(reason_code)"}
    package = Path(v2v_projection.chain.__file__).parent
    calls = [
        argument
        for path in sorted(package.glob("*.py"))
        for argument in re.findall(r"\.alert\(\s*([^,]+),", path.read_text())
    ]
    assert calls and set(calls) <= constants | mapped, set(calls) - constants - mapped

    history = generate_history(random.Random(14).randrange(1, 1_000), 40)
    fold = ChainFold()
    fold.apply_all(value for values in history.by_topic.values() for value in values)
    raised = {alert["kind"] for view in fold.chains() for alert in view["alerts"]}
    assert raised and raised <= set(CATALOGUE)
