"""The HTML report on a hand-written chain view: content, the SVG chart, escaping, no script;
each shipment's temperature chart; and the integrity section over a generated history with
signed checkpoints (clean, tampered, truncated, another chain tampered), in process and through
`v2v audit report --keys`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from v2v_platform.envelope.codec import decode, encode
from v2v_projection.audit.cli import app
from v2v_projection.audit.replay import replay
from v2v_projection.audit.report import ReportContext, render_report
from v2v_projection.audit.report_integrity import ChainIntegrity, IntegrityCheck
from v2v_projection.audit.sources import History
from v2v_projection.audit.timeline import custody_svg
from v2v_projection.history_file import HistoryHeader, HistoryRecord, write_history
from v2v_testkit.audit import partitioned, write_key_ring
from v2v_testkit.checkpointed import is_checkpoint, remove_renumbered, with_checkpoints
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

DIN_A = "A123425000001E0"
DIN_P = "B234525000007A0"


def _signature(name: str, meaning: str, at: str) -> dict[str, Any]:
    return {
        "event_type": "v2v.release.events.v1.ProductCertified",
        "aggregate_id": "release-1",
        "version": 3,
        "user_id": "u-qp-1",
        "printed_name": name,
        "meaning": meaning,
        "signed_at": at,
        "record_hash": "ab" * 32,
    }


def _chain() -> dict[str, Any]:
    custody_a = [
        {
            "custodian": "Nurse Ada",
            "site_id": "HOSP-A",
            "from": "2025-03-01T08:00:00+00:00",
            "to": "2025-03-01T10:00:00+00:00",
        },
        {
            "custodian": "courier C-17",
            "site_id": "LOGI-1",
            "from": "2025-03-01T10:00:00+00:00",
            "to": "2025-03-02T09:00:00+00:00",
        },
        {"custodian": "GMP-B", "site_id": "GMP-B", "from": "2025-03-02T09:00:00+00:00", "to": None},
    ]
    custody_p = [
        {"custodian": "GMP-B", "site_id": "GMP-B", "from": "2025-03-12T09:00:00+00:00", "to": None},
    ]
    return {
        "coi": "CHA123425000017",
        "stage": "released",
        "treating_site_id": "HOSP-A",
        "sites": ["GMP-B", "HOSP-A", "LOGI-1"],
        "updated_at": "2025-03-13T10:00:00+00:00",
        "units": [
            {
                "din": DIN_A,
                "kind": "apheresis",
                "condition": "fresh_cold",
                "created_at": "2025-03-01T08:00:00+00:00",
                "parents": [],
                "batch_id": None,
                "custody": custody_a,
            },
            {
                "din": DIN_P,
                "kind": "product",
                "condition": "cryo",
                "created_at": "2025-03-12T09:00:00+00:00",
                "parents": [DIN_A],
                "batch_id": "B-1",
                "custody": custody_p,
            },
        ],
        "batches": [
            {
                "batch_id": "B-1",
                "site_id": "GMP-B",
                "status": "completed",
                "input_dins": [DIN_A],
                "product_dins": [DIN_P],
                "started_at": "2025-03-02T10:00:00+00:00",
                "ended_at": "2025-03-12T09:00:00+00:00",
            },
        ],
        "releases": [
            {
                "batch_id": "B-1",
                "status": "final",
                "spec_version": "v1",
                "decisions": [
                    {
                        "decision": "final",
                        "at": "2025-03-13T10:00:00+00:00",
                        "signature": _signature(
                            "Dr. Quinn Person", "approval", "2025-03-13T10:00:00+00:00"
                        ),
                    }
                ],
                "post_release_failures": [
                    {"failure_id": "F-1", "test": "sterility", "acknowledged": False}
                ],
            },
        ],
        "infusion": None,
        "signatures": [
            _signature("Dr. Quinn Person", "approval", "2025-03-13T10:00:00+00:00"),
            _signature("<script>alert(1)</script> & Co", "review", "2025-03-13T09:00:00+00:00"),
        ],
        "alerts": [
            {
                "kind": "post_release_failure_unacknowledged",
                "at": "2025-03-13T11:00:00+00:00",
                "detail": "sterility failed after release",
                "event_id": "e-1",
            },
        ],
        "kpis": {},
    }


CONTEXT = ReportContext("test.v2v", datetime(2025, 3, 14, tzinfo=UTC), None, 42)


def test_the_report_shows_each_signature_with_name_time_meaning_and_hash() -> None:
    html = render_report(_chain(), CONTEXT)
    assert "Dr. Quinn Person" in html
    assert "2025-03-13T10:00:00+00:00" in html
    assert "approval" in html and "ab" * 32 in html
    assert "post_release_failure_unacknowledged" in html
    assert DIN_A in html and "B-1" in html


def test_all_text_is_escaped_and_the_page_has_no_script() -> None:
    html = render_report(_chain(), CONTEXT)
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html


def test_the_page_is_self_contained_with_print_css() -> None:
    html = render_report(_chain(), CONTEXT)
    assert "@media print" in html and "<style>" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)


def test_the_timeline_has_one_lane_per_unit_and_a_bar_per_custody_interval() -> None:
    svg = custody_svg(_chain()["units"], datetime(2025, 3, 14, tzinfo=UTC))
    root = ElementTree.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    labels = [t.text for t in root.iter(f"{namespace}text")]
    assert DIN_A in labels and DIN_P in labels
    bars = [r for r in root.iter(f"{namespace}rect") if r.get("class") == "bar"]
    assert len(bars) == 4
    titles = [t.text or "" for t in root.iter(f"{namespace}title")]
    assert any("courier C-17 at LOGI-1" in t for t in titles)
    assert sum("(current custodian)" in t for t in titles) == 2


def test_custodians_get_distinct_colours_and_a_legend() -> None:
    svg = custody_svg(_chain()["units"], datetime(2025, 3, 14, tzinfo=UTC))
    root = ElementTree.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{namespace}rect") if r.get("class") == "bar"]
    by_colour = {r.get("fill") for r in bars}
    assert len(by_colour) == 3
    legend = [t.text for t in root.iter(f"{namespace}text")]
    assert {"Nurse Ada", "courier C-17", "GMP-B"} <= set(legend)


def test_a_chain_without_custody_still_draws_a_chart() -> None:
    chain = _chain()
    for unit in chain["units"]:
        unit["custody"] = []
    html = render_report(chain, CONTEXT)
    assert "<svg" in html and DIN_P in html


# ---------------------------------------------------------------- chain of condition


def _shipment(excursions: int = 1) -> dict[str, Any]:
    return {
        "shipment_id": "SHP-7",
        "origin_site_id": "HOSP-A",
        "destination_site_id": "GMP-B",
        "condition": "fresh-cold",
        "range_c": [2.0, 8.0],
        "created_at": "2025-03-01T10:00:00+00:00",
        "delivered_at": "2025-03-02T09:00:00+00:00",
        "readings": [
            {"at": f"2025-03-01T{hour:02d}:00:00+00:00", "c": c, "device_id": "LOGGER-7"}
            for hour, c in ((10, 4.5), (11, 5.0), (12, 9.5), (13, 5.5), (14, 4.0))
        ],
        "excursions": [
            {
                "started_at": "2025-03-01T11:40:00+00:00",
                "ended_at": "2025-03-01T12:25:00+00:00",
                "duration_s": 2700,
                "min_c": 8.4,
                "max_c": 9.5,
                "device_id": "LOGGER-7",
            }
        ][:excursions],
    }


def _figures(html: str) -> list[str]:
    return re.findall(r'<figure class="chart">(.*?)</figure>', html, re.S)


def test_each_shipment_gets_its_temperature_chart_range_and_excursions() -> None:
    chain = _chain()
    chain["shipments"] = [_shipment(), _shipment(0) | {"shipment_id": "SHP-8"}]
    html = render_report(chain, CONTEXT)
    figures = _figures(html)
    assert len(figures) == 2
    first = ElementTree.fromstring(figures[0])
    found = {element.get("id") for element in first.iter()}
    assert {"readings", "range-band", "excursion-0"} <= found
    assert "excursion-0" not in {e.get("id") for e in ElementTree.fromstring(figures[1]).iter()}
    assert "Shipment SHP-7: HOSP-A \u2192 GMP-B" in html
    assert "2 to 8 °C" in html and "Excursions (1)" in html and "Excursions (0)" in html
    assert "2025-03-01T11:40:00+00:00" in html and "<td>45</td>" in html  # minutes
    assert "<td>8.4</td>" in html and "<td>9.5</td>" in html


def test_a_chain_without_shipments_says_so() -> None:
    html = render_report(_chain(), CONTEXT)
    assert "No shipments recorded." in html and "<figure" not in html


def test_the_charts_keep_to_the_page_when_printed() -> None:
    chain = _chain()
    chain["shipments"] = [_shipment()]
    html = render_report(chain, CONTEXT)
    assert re.search(r"@media print \{[^@]*figure\.chart[^}]*break-inside: avoid", html)
    assert "figure.chart svg { display: block; width: 100%" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)


# ---------------------------------------------------------------- integrity


def test_without_a_key_ring_the_integrity_is_said_not_checked() -> None:
    html = render_report(_chain(), CONTEXT)
    assert "NOT CHECKED" in html and "--keys" in html
    assert "not by this report" not in html


@dataclass(frozen=True)
class Checkpointed:
    generated: GeneratedHistory
    header: HistoryHeader
    records: list[HistoryRecord]
    coi: str  # a chain with a temperature excursion
    other: str  # another chain


@pytest.fixture(scope="module")
def checkpointed() -> Checkpointed:
    generated = generate_history(15_016, 12)
    header, records = partitioned(with_checkpoints(generated.by_topic, generated.signers))
    chains = replay(History(header, iter(records), "generated")).chains()
    excursions = [c["coi"] for c in chains if any(s["excursions"] for s in c["shipments"])]
    assert excursions, "the generated history has a temperature excursion"
    other = next(c["coi"] for c in chains if c["coi"] != excursions[0])
    return Checkpointed(generated, header, records, excursions[0], other)


def _checked(
    history: Checkpointed, records: Sequence[HistoryRecord] | None = None, coi: str = ""
) -> tuple[dict[str, Any], ChainIntegrity]:
    coi = coi or history.coi
    check = IntegrityCheck(history.header, coi, history.generated.keys)
    source = History(history.header, check.through(records or history.records), "generated")
    chain = replay(source).chain(coi)
    assert chain is not None
    return chain, check.finish()


def _tampered(history: Checkpointed, coi: str) -> tuple[list[HistoryRecord], str]:
    """The history with one event of `coi` (a middle version of its longest stream) changed
    without re-signing: its clinical time moved by a second."""
    records = list(history.records)
    ours = [
        (index, decode(record.value))
        for index, record in enumerate(records)
        if not is_checkpoint(record) and decode(record.value).coi == coi
    ]
    index, envelope = max(ours, key=lambda pair: pair[1].aggregate_version)
    envelope.occurred_at.seconds += 1
    records[index] = replace(records[index], value=encode(envelope))
    return records, envelope.aggregate_id


def test_a_clean_history_says_clean_with_each_head_proven_and_the_records_counted(
    checkpointed: Checkpointed,
) -> None:
    chain, integrity = _checked(checkpointed)
    assert integrity.clean and not integrity.breaks and integrity.other_breaks == 0
    assert integrity.records_verified == len(checkpointed.records)
    assert integrity.proofs and all(p.shown.startswith("proof verified") for p in integrity.proofs)
    html = render_report(chain, CONTEXT, integrity)
    assert '<p class="verdict clean">CLEAN:' in html and "NOT CLEAN" not in html
    assert f"Verified now from the same history: {len(checkpointed.records)} records" in html
    assert html.count("proof verified") == len(integrity.proofs)
    for stream in integrity.proofs:
        assert stream.proof.aggregate_id in html
        assert f"{stream.proof.site_id} / {stream.proof.sequence}" in html
    assert any("excursion-0" in figure for figure in _figures(html))


def test_a_tampered_record_of_the_chain_makes_it_not_clean(checkpointed: Checkpointed) -> None:
    records, stream = _tampered(checkpointed, checkpointed.coi)
    chain, integrity = _checked(checkpointed, records)
    assert not integrity.clean
    assert integrity.breaks and all(b.aggregate_id == stream for b in integrity.breaks)
    html = render_report(chain, CONTEXT, integrity)
    assert '<p class="verdict not-clean">NOT CLEAN:' in html
    assert f"{len(integrity.breaks)} break(s) concern this chain" in html
    assert stream in html and "CLEAN:" not in html.replace("NOT CLEAN:", "")
    # its head's proof may verify (it checks the hash field), the row still says the stream broke
    assert re.search(r'<td class="bad">[^<]*break\(s\) on this stream</td>', html)


def test_a_truncated_stream_fails_its_proof(checkpointed: Checkpointed) -> None:
    last = max(
        (
            (decode(r.value).aggregate_version, index)
            for index, r in enumerate(checkpointed.records)
            if not is_checkpoint(r) and decode(r.value).coi == checkpointed.coi
        ),
    )[1]
    header, records = remove_renumbered(checkpointed.header, checkpointed.records, {last})
    chain, integrity = _checked(replace(checkpointed, header=header), records)
    assert not integrity.clean and integrity.failed_proofs
    html = render_report(chain, CONTEXT, integrity)
    assert "NOT CLEAN" in html and "stream head(s) not proven" in html
    assert '<td class="bad">PROOF FAILED:' in html and "truncated" in html


def test_another_chains_break_is_counted_but_leaves_this_chain_clean(
    checkpointed: Checkpointed,
) -> None:
    records, _ = _tampered(checkpointed, checkpointed.other)
    chain, integrity = _checked(checkpointed, records)
    assert integrity.clean and not integrity.breaks and integrity.other_breaks > 0
    html = render_report(chain, CONTEXT, integrity)
    assert "CLEAN:" in html and f"{integrity.other_breaks} other break(s)" in html


def test_the_report_command_checks_the_integrity_with_keys(
    checkpointed: Checkpointed, tmp_path: Path
) -> None:
    keys = write_key_ring(tmp_path / "pki", checkpointed.generated.keys)
    clean, tampered = tmp_path / "clean.v2v", tmp_path / "tampered.v2v"
    write_history(clean, checkpointed.header, checkpointed.records)
    write_history(tampered, checkpointed.header, _tampered(checkpointed, checkpointed.coi)[0])
    env = {"COLUMNS": "240", "V2V_KAFKA_BOOTSTRAP": None, "V2V_PKI_DIR": None}
    runs = {}
    for name, path, extra in (
        ("clean", clean, ("--keys", str(keys))),
        ("tampered", tampered, ("--keys", str(keys))),
        ("unchecked", clean, ()),
        ("copy", clean, ("--keys", str(keys), "--checkpoints", str(clean))),
    ):
        out = tmp_path / f"{name}.html"
        args = ["report", "--file", str(path), "--coi", checkpointed.coi, "--out", str(out)]
        result = CliRunner().invoke(app, [*args, *extra], env=env)
        assert result.exit_code == 0, result.output
        runs[name] = (result.stdout, out.read_text())
    assert "(integrity clean)" in runs["clean"][0]
    assert "proof verified" in runs["clean"][1] and "excursion-0" in runs["clean"][1]
    assert "(integrity NOT CLEAN)" in runs["tampered"][0]
    assert "NOT CLEAN:" in runs["tampered"][1]
    assert "(integrity not checked (no --keys))" in runs["unchecked"][0]
    assert "NOT CHECKED" in runs["unchecked"][1]
    assert "(integrity clean)" in runs["copy"][0]
    assert "the external copy given (--checkpoints)" in runs["copy"][1]
