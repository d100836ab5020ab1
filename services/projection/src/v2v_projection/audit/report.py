"""`v2v audit report`: one chain as a printable, self-contained HTML page.

Inline CSS (with print rules) and inline SVG only: no script, no external resource, so the
file can be archived and printed as is. Every value from the history is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from v2v_projection.audit.timeline import custody_svg
from v2v_projection.audit.views import adverse_events, infusion_status, release_statuses
from v2v_projection.chain.kpis import VEIN_TO_VEIN

STYLE = """
@page { size: A4 landscape; margin: 12mm; }
body { font: 10.5pt/1.4 "Helvetica Neue", Arial, sans-serif; color: #111; margin: 24px; }
h1 { font-size: 17pt; margin: 0 0 4px; }
h2 { font-size: 12.5pt; margin: 22px 0 6px; border-bottom: 1px solid #999; }
.meta { color: #444; margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; }
td.mono, span.mono { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 8.5pt;
  word-break: break-all; }
.empty { color: #666; font-style: italic; }
svg { border: 1px solid #ccc; background: #fff; }
svg .grid { stroke: #ddd; stroke-width: 1; }
svg .tick { font-size: 10px; fill: #444; }
svg .lane { font-size: 11px; fill: #111; font-family: monospace; }
svg .bar { stroke: #333; stroke-width: 0.6; }
svg .bar-label { font-size: 10px; fill: #fff; }
.footer { margin-top: 24px; color: #555; font-size: 9pt; }
@media print {
  body { margin: 0; }
  h2 { break-after: avoid; }
  tr, svg { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


@dataclass(frozen=True)
class ReportContext:
    """Where the chain came from, shown in the report's header."""

    source: str
    generated_at: datetime
    as_of: datetime | None
    records: int


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return '<span class="empty">-</span>'
    if isinstance(value, list | tuple):
        return escape(", ".join(str(item) for item in value))
    return escape(str(value))


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], mono: Sequence[int] = ()) -> str:
    body = [
        "<tr>"
        + "".join(
            f'<td class="mono">{_cell(v)}</td>' if i in mono else f"<td>{_cell(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    ]
    if not body:
        return '<p class="empty">None recorded.</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary(chain: dict[str, Any]) -> str:
    infusion = chain.get("infusion") or {}
    rows = [
        ("Stage", chain["stage"]),
        ("Treating site", chain["treating_site_id"]),
        ("Related sites (who may read it)", chain["sites"]),
        ("Release", release_statuses(chain)),
        ("Infusion", infusion_status(chain)),
        ("Infused unit", infusion.get("din")),
        ("Administered (UTC)", infusion.get("administered_at")),
        ("Adverse events", "; ".join(adverse_events(chain))),
        ("Apheresis collections", (chain.get("kpis") or {}).get("collections")),
        ("Last event (UTC)", chain["updated_at"]),
    ]
    return _table(("", ""), rows)


def _custody_rows(chain: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (u["din"], c["custodian"], c["site_id"], c["from"], c["to"] or "current")
        for u in chain["units"]
        for c in u["custody"]
    ]


def _lineage(chain: dict[str, Any]) -> str:
    units = _table(
        ("DIN", "Kind", "Condition", "Made from", "Batch", "Created (UTC)"),
        [
            (u["din"], u["kind"], u["condition"], u["parents"], u["batch_id"], u["created_at"])
            for u in chain["units"]
        ],
    )
    batches = _table(
        ("Batch", "Site", "Status", "Input units", "Product units", "Started", "Ended"),
        [
            (
                b["batch_id"],
                b["site_id"],
                b["status"],
                b["input_dins"],
                b["product_dins"],
                b["started_at"],
                b["ended_at"],
            )
            for b in chain["batches"]
        ],
    )
    return units + "<h3>Batches</h3>" + batches


def _releases(chain: dict[str, Any]) -> str:
    rows = []
    for release in chain["releases"]:
        for decision in release["decisions"] or [{"decision": None, "at": None}]:
            signer = (decision.get("signature") or {}).get("printed_name")
            rows.append(
                (
                    release["batch_id"],
                    release["status"],
                    release["spec_version"],
                    decision["decision"],
                    decision["at"],
                    signer,
                )
            )
    failures = [
        (r["batch_id"], f["failure_id"], f["test"], "yes" if f["acknowledged"] else "NO")
        for r in chain["releases"]
        for f in r["post_release_failures"]
    ]
    return (
        _table(("Batch", "Status", "Spec", "Decision", "At (UTC)", "Signed by"), rows)
        + "<h3>Post-release failures</h3>"
        + _table(("Batch", "Failure", "Test", "Acknowledged"), failures)
    )


def _signatures(chain: dict[str, Any]) -> str:
    rows = [
        (
            s["printed_name"],
            s["user_id"],
            s["signed_at"],
            s["meaning"],
            f"{s['event_type']} ({s['aggregate_id']} v{s['version']})",
            s["record_hash"],
        )
        for s in chain["signatures"]
    ]
    columns = ("Printed name", "User id", "Signed (UTC)", "Meaning", "Record", "Record hash")
    return _table(columns, rows, mono=(5,))


def _alerts(chain: dict[str, Any]) -> str:
    rows = [
        (a["kind"], a.get("severity"), a["at"], a["detail"], a["event_id"]) for a in chain["alerts"]
    ]
    return _table(("Alert", "Severity", "At (UTC)", "Detail", "Event"), rows, mono=(4,))


KPI_ROWS = (
    ("Vein-to-vein", "end of the first apheresis -> first infusion", ""),
    (
        "Enrolment to collection",
        "enrolment -> start of the first apheresis",
        "enrolment_to_collection",
    ),
    (
        "Collection to manufacturing",
        "end of the delivered batch's collection(s) -> its start",
        "collection_to_manufacturing",
    ),
    ("Manufacturing", "batch start -> harvest", "manufacturing"),
    ("QC and release", "harvest -> first release", "release"),
    ("Release to infusion", "first release -> first infusion", "release_to_infusion"),
)
"""(KPI, its interval, its key in `stage_hours`; "" for vein-to-vein): docs/kpis.md."""


def _duration(hours: float | None) -> tuple[str | None, str | None]:
    return (None, None) if hours is None else (f"{hours:g}", f"{hours / 24:.1f}")


def _kpis(chain: dict[str, Any]) -> str:
    """The chain's KPIs as docs/kpis.md defines them (clinical times only), and the intervals
    left out because they end before they start."""
    kpis = chain.get("kpis") or {}
    stages = kpis.get("stage_hours") or {}
    rows = [
        (name, span, *_duration(stages.get(key) if key else kpis.get(VEIN_TO_VEIN)))
        for name, span, key in KPI_ROWS
    ]
    table = _table(("KPI", "From -> to", "Hours", "Days"), rows)
    excluded = [(f["kpi"], f["from"], f["to"]) for f in kpis.get("excluded_intervals") or []]
    if not excluded:
        return table
    return (
        table
        + "<h3>Data-quality findings (end before start: left out of every KPI)</h3>"
        + _table(("KPI", "From (UTC)", "To (UTC)"), excluded)
    )


def render_report(chain: dict[str, Any], context: ReportContext) -> str:
    """The whole HTML document for one chain view (the fold's chain dict)."""
    coi = escape(chain["coi"])
    as_of = context.as_of.isoformat() if context.as_of else "end of history"
    closing = context.as_of or _time(chain["updated_at"]) or context.generated_at
    meta = (
        f"Generated {escape(context.generated_at.isoformat())} from {escape(context.source)}"
        f" ({context.records} records replayed), as of {escape(as_of)}."
    )
    sections = [
        ("Summary", _summary(chain)),
        ("Custody timeline", custody_svg(chain["units"], closing)),
        (
            "Custody intervals",
            _table(("DIN", "Custodian", "Site", "From (UTC)", "To (UTC)"), _custody_rows(chain)),
        ),
        ("KPIs (clinical times, docs/kpis.md)", _kpis(chain)),
        ("Lineage", _lineage(chain)),
        ("Release", _releases(chain)),
        ("Electronic signatures", _signatures(chain)),
        ("Alerts", _alerts(chain)),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>{content}" for title, content in sections)
    footer = (
        '<p class="footer">Replayed with the projection fold; envelope hashes, signatures and'
        " version continuity are checked by <code>v2v audit verify</code>, not by this report."
        "</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Chain report {coi}</title><style>{STYLE}</style></head><body>"
        f'<h1>Chain of identity and custody: {coi}</h1><p class="meta">{meta}</p>'
        f"{body}{footer}</body></html>\n"
    )
