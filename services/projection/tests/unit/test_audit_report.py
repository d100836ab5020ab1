"""The HTML report on a hand-written chain view: content, the SVG chart, escaping, no script."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from v2v_projection.audit.report import ReportContext, render_report
from v2v_projection.audit.timeline import custody_svg

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
