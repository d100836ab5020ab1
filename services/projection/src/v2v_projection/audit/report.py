"""`v2v audit report`: one chain as a printable, self-contained HTML page.

Inline CSS (with print rules) and inline SVG only: no script, no external resource, so the
file can be archived and printed as is. Every value from the history is HTML-escaped (the
temperature charts are matplotlib's SVG, whose text matplotlib escapes).

The page states the chain's integrity (`report_integrity`: its streams verified now from the
same history, and the inclusion proofs of their heads in the latest checkpoints), and shows
each shipment's temperature chart with its range and excursions (the chain of condition).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from v2v_platform.envelope.verify import Break
from v2v_projection.audit.report_integrity import FAILED, VERIFIED, ChainIntegrity
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
figure.chart { margin: 6px 0 4px; }
figure.chart svg { display: block; width: 100%; max-width: 250mm; height: auto; }
.verdict { font-size: 12pt; font-weight: bold; padding: 6px 10px; margin: 4px 0 8px;
  border: 2px solid; }
.verdict.clean { color: #1b5e20; border-color: #2e7d32; background: #e8f5e9; }
.verdict.not-clean { color: #b71c1c; border-color: #c62828; background: #ffebee; }
.verdict.unchecked { color: #6d4c00; border-color: #b28704; background: #fff8e1; }
td.bad { color: #b71c1c; font-weight: bold; }
svg .grid { stroke: #ddd; stroke-width: 1; }
svg .tick { font-size: 10px; fill: #444; }
svg .lane { font-size: 11px; fill: #111; font-family: monospace; }
svg .bar { stroke: #333; stroke-width: 0.6; }
svg .bar-label { font-size: 10px; fill: #fff; }
.footer { margin-top: 24px; color: #555; font-size: 9pt; }
@media print {
  body { margin: 0; }
  h2 { break-after: avoid; }
  tr, svg, figure.chart, .verdict { break-inside: avoid; }
  figure.chart svg { max-width: 190mm; }
  h3 { break-after: avoid; }
  .verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
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


class Alarm(str):
    """A cell shown as a problem (red, bold)."""


def _td(value: Any, mono: bool) -> str:
    if isinstance(value, Alarm):
        return f'<td class="bad">{_cell(value)}</td>'
    return f'<td class="mono">{_cell(value)}</td>' if mono else f"<td>{_cell(value)}</td>"


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], mono: Sequence[int] = ()) -> str:
    body = [
        "<tr>" + "".join(_td(v, i in mono) for i, v in enumerate(row)) + "</tr>" for row in rows
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


def _shipments(chain: dict[str, Any]) -> str:
    """Each shipment: its temperature chart (range shaded, excursions shaded), then its range
    and excursions in words."""
    shipments = chain.get("shipments") or []
    if not shipments:
        return '<p class="empty">No shipments recorded.</p>'
    from v2v_projection.charts import range_text, temperature_chart  # matplotlib: when needed

    parts = []
    for shipment in shipments:
        readings = shipment.get("readings") or []
        loggers = sorted({str(r.get("device_id") or "") for r in readings} - {""})
        heading = (
            f"Shipment {shipment.get('shipment_id')}: {shipment.get('origin_site_id') or '?'}"
            f" \u2192 {shipment.get('destination_site_id') or '?'}"
        )
        facts = _table(
            ("Condition", "Range", "Created (UTC)", "Delivered (UTC)", "Readings", "Loggers"),
            [
                (
                    shipment.get("condition") or "not recorded",
                    range_text(shipment),
                    shipment.get("created_at") or "not recorded",
                    shipment.get("delivered_at") or "not delivered",
                    len(readings),
                    loggers,
                )
            ],
        )
        excursions = [
            (
                e.get("started_at"),
                e.get("ended_at"),
                None if e.get("duration_s") is None else f"{e['duration_s'] / 60:g}",
                e.get("min_c"),
                e.get("max_c"),
                e.get("device_id"),
            )
            for e in shipment.get("excursions") or []
        ]
        columns = ("Started (UTC)", "Ended (UTC)", "Minutes", "Min °C", "Max °C", "Logger")
        listed = (
            _table(columns, excursions)
            if excursions
            else '<p class="empty">No excursion recorded.</p>'
        )
        parts.append(
            f"<h3>{escape(heading)}</h3>"
            f'<figure class="chart">{temperature_chart(shipment)}</figure>'
            f"{facts}<h4>Excursions ({len(excursions)})</h4>{listed}"
        )
    return "".join(parts)


def _verdict(integrity: ChainIntegrity) -> str:
    if integrity.clean:
        return (
            '<p class="verdict clean">CLEAN: every record of this chain\'s streams verifies'
            " and every stream head is proven in its service's latest checkpoint, or was"
            " published after it.</p>"
        )
    reasons = []
    if not integrity.streams:
        reasons.append("none of its records was found")
    if integrity.breaks:
        reasons.append(f"{len(integrity.breaks)} break(s) concern this chain")
    if integrity.failed_proofs:
        reasons.append(f"{len(integrity.failed_proofs)} stream head(s) not proven")
    return f'<p class="verdict not-clean">NOT CLEAN: {escape("; ".join(reasons))}.</p>'


def _where(found: Break) -> str:
    return "" if found.location.partition < 0 else str(found.location)


def _integrity(integrity: ChainIntegrity | None, coi: str) -> str:
    if integrity is None:
        return (
            '<p class="verdict unchecked">NOT CHECKED: no consortium key ring was given to'
            " this report (<code>v2v audit report --keys DIR</code>, or V2V_PKI_DIR); run"
            f" <code>v2v audit verify</code> and <code>v2v audit prove --coi {escape(coi)}"
            "</code>.</p>"
        )
    outcome = integrity.outcome
    external = (
        " The checkpoints were compared with, and the proofs made against, the external copy"
        " given (--checkpoints)."
        if integrity.external_checkpoints
        else ""
    )
    others = (
        f" {integrity.other_breaks} other break(s) in the history concern other chains or"
        " services: <code>v2v audit verify</code> lists them."
        if integrity.other_breaks
        else ""
    )
    counts = (
        f"<p>Verified now from the same history: {outcome.records} records (all the history"
        f" read, {outcome.checkpoints} of them checkpoints; not limited by --as-of), of which"
        f" {integrity.chain_records} are this chain's, in {len(integrity.streams)} streams;"
        f" {outcome.signatures_checked} signatures checked one by one,"
        f" {outcome.covered_by_checkpoints} events covered by checkpoints.{external}{others}"
        "</p>"
    )
    breaks = _table(
        ("Check", "Where", "Stream", "Version", "Detail"),
        [
            (b.check, _where(b), b.aggregate_id, b.version or None, b.detail)
            for b in integrity.breaks
        ],
        mono=(2,),
    )
    return (
        _verdict(integrity)
        + counts
        + f"<h3>Breaks concerning this chain ({len(integrity.breaks)})</h3>"
        + (breaks if integrity.breaks else '<p class="empty">None.</p>')
        + "<h3>Stream heads in the latest checkpoints</h3>"
        + _proofs(integrity)
    )


def _proofs(integrity: ChainIntegrity) -> str:
    """One row per stream; a proof that verifies on a stream with breaks says so: the proof
    checks the head's hash, the breaks say which records do not match theirs."""
    broken = Counter(b.aggregate_id for b in integrity.breaks)
    rows = []
    for stream in integrity.proofs:
        proof = stream.proof
        shown: str = stream.shown
        if broken[proof.aggregate_id]:
            shown = Alarm(f"{shown}; but {broken[proof.aggregate_id]} break(s) on this stream")
        elif stream.status == FAILED:
            shown = Alarm(shown)
        checkpoint = f"{proof.site_id} / {proof.sequence}" if proof.sequence else None
        committed = proof.version or None
        leaf = f"{proof.leaf_index} of {proof.tree_size}" if stream.status == VERIFIED else None
        rows.append(
            (
                proof.aggregate_id,
                proof.topic,
                proof.history_version,
                checkpoint,
                committed,
                leaf,
                proof.root.hex() if stream.status == VERIFIED else None,
                shown,
            )
        )
    columns = (
        "Stream",
        "Topic",
        "Head version",
        "Checkpoint (site / sequence)",
        "Committed version",
        "Leaf",
        "Root",
        "Proof",
    )
    return _table(columns, rows, mono=(0, 6))


def render_report(
    chain: dict[str, Any], context: ReportContext, integrity: ChainIntegrity | None = None
) -> str:
    """The whole HTML document for one chain view (the fold's chain dict); `integrity`: its
    streams verified and proven (`report_integrity.IntegrityCheck`), or None when no key
    ring was given (the section then says it was not checked)."""
    coi = escape(chain["coi"])
    as_of = context.as_of.isoformat() if context.as_of else "end of history"
    closing = context.as_of or _time(chain["updated_at"]) or context.generated_at
    meta = (
        f"Generated {escape(context.generated_at.isoformat())} from {escape(context.source)}"
        f" ({context.records} records replayed), as of {escape(as_of)}."
    )
    sections = [
        ("Summary", _summary(chain)),
        ("Integrity of this chain's records", _integrity(integrity, chain["coi"])),
        ("Custody timeline", custody_svg(chain["units"], closing)),
        (
            "Custody intervals",
            _table(("DIN", "Custodian", "Site", "From (UTC)", "To (UTC)"), _custody_rows(chain)),
        ),
        ("Chain of condition (temperature per shipment)", _shipments(chain)),
        ("KPIs (clinical times, docs/kpis.md)", _kpis(chain)),
        ("Lineage", _lineage(chain)),
        ("Release", _releases(chain)),
        ("Electronic signatures", _signatures(chain)),
        ("Alerts", _alerts(chain)),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>{content}" for title, content in sections)
    footer = (
        '<p class="footer">Replayed with the projection fold. The integrity section covers this'
        " chain's streams only; <code>v2v audit verify</code> checks the whole history.</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Chain report {coi}</title><style>{STYLE}</style></head><body>"
        f'<h1>Chain of identity and custody: {coi}</h1><p class="meta">{meta}</p>'
        f"{body}{footer}</body></html>\n"
    )
