"""Rich tables for `v2v audit replay`: every chain in one table, or one chain in detail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from v2v_projection.audit.views import (
    Chain,
    adverse_events,
    infusion_status,
    release_statuses,
    short_time,
)


def _text(value: Any) -> Text:
    """Plain text (never rich markup): chain values come from the audited records."""
    if value is None or value == "":
        return Text("-")
    if isinstance(value, list | tuple):
        return Text(", ".join(str(item) for item in value) or "-")
    return Text(str(value))


def _table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, header: bool = True
) -> Table:
    table = Table(title=title, title_justify="left", expand=False, show_header=header)
    for number, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=number == 0)
    for row in rows:
        table.add_row(*(_text(cell) for cell in row))
    return table


def chains_table(chains: Sequence[Chain], title: str) -> Table:
    rows = [
        (
            chain["coi"],
            chain["stage"],
            chain["treating_site_id"],
            len(chain["units"]),
            release_statuses(chain, with_batch=False),
            infusion_status(chain),
            len(chain["alerts"]),
            short_time(chain["updated_at"]),
        )
        for chain in chains
    ]
    columns = ("COI", "Stage", "Treating", "Units", "Release", "Infusion", "Alerts", "Updated")
    return _table(title, columns, rows)


def _summary(chain: Chain) -> Table:
    infusion = chain.get("infusion") or {}
    rows = [
        ("COI", chain["coi"]),
        ("Stage", chain["stage"]),
        ("Treating site", chain["treating_site_id"]),
        ("Sites", chain["sites"]),
        ("Release", release_statuses(chain)),
        ("Infusion", infusion_status(chain)),
        ("Infused unit", infusion.get("din")),
        ("Administered", infusion.get("administered_at")),
        ("Adverse events", "; ".join(adverse_events(chain))),
        ("Updated", chain["updated_at"]),
    ]
    return _table(f"Chain {chain['coi']}", ("", ""), rows, header=False)


def _units(chain: Chain) -> Table:
    rows = [
        (u["din"], u["kind"], u["condition"], u["parents"], u["batch_id"], u["created_at"])
        for u in chain["units"]
    ]
    columns = ("DIN", "Kind", "Condition", "Parents", "Batch", "Created")
    return _table("Units and lineage", columns, rows)


def _batches(chain: Chain) -> Table:
    rows = [
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
    ]
    columns = ("Batch", "Site", "Status", "Inputs", "Products", "Started", "Ended")
    return _table("Batches", columns, rows)


def _custody(chain: Chain) -> Table:
    rows = [
        (u["din"], c["custodian"], c["site_id"], c["from"], c["to"] or "current")
        for u in chain["units"]
        for c in u["custody"]
    ]
    return _table("Custody", ("DIN", "Custodian", "Site", "From", "To"), rows)


def _shipments(chain: Chain) -> Table:
    """The chain of condition: each shipment's range, readings and excursions."""
    from v2v_projection.charts import range_text  # matplotlib: imported only when needed

    rows = []
    for shipment in chain.get("shipments") or []:
        readings = [r["c"] for r in shipment.get("readings") or [] if r.get("c") is not None]
        measured = f"{min(readings):g} to {max(readings):g} °C" if readings else None
        excursions = [
            f"{e.get('started_at')} to {e.get('ended_at') or '?'}"
            f" ({e.get('min_c')} to {e.get('max_c')} °C)"
            for e in shipment.get("excursions") or []
        ]
        rows.append(
            (
                shipment.get("shipment_id"),
                f"{shipment.get('origin_site_id') or '?'}"
                f" -> {shipment.get('destination_site_id') or '?'}",
                shipment.get("condition"),
                range_text(shipment),
                len(readings),
                measured,
                excursions,
            )
        )
    columns = ("Shipment", "Route", "Condition", "Range", "Readings", "Measured", "Excursions")
    return _table("Shipments (temperature)", columns, rows)


def _releases(chain: Chain) -> Table:
    rows = []
    for release in chain["releases"]:
        decisions = [
            f"{d['decision']} {d['at']} ({(d.get('signature') or {}).get('printed_name', '-')})"
            for d in release["decisions"]
        ]
        failures = [
            f"{f['test']}{'' if f['acknowledged'] else ' (unacknowledged)'}"
            for f in release["post_release_failures"]
        ]
        rows.append(
            (release["batch_id"], release["status"], release["spec_version"], decisions, failures)
        )
    columns = ("Batch", "Status", "Spec", "Decisions", "Post-release failures")
    return _table("Releases", columns, rows)


def _signatures(chain: Chain) -> Table:
    rows = [
        (
            s["printed_name"],
            s["user_id"],
            s["meaning"],
            s["signed_at"],
            s["event_type"],
            s["record_hash"],
        )
        for s in chain["signatures"]
    ]
    columns = ("Printed name", "User", "Meaning", "Signed (UTC)", "Record", "Record hash")
    return _table("E-signatures", columns, rows)


def _alerts(chain: Chain) -> Table:
    rows = [(a["kind"], a["at"], a["detail"]) for a in chain["alerts"]]
    return _table("Alerts", ("Kind", "At", "Detail"), rows)


def chain_detail(chain: Chain) -> list[RenderableType]:
    return [
        _summary(chain),
        _units(chain),
        _batches(chain),
        _custody(chain),
        _shipments(chain),
        _releases(chain),
        _signatures(chain),
        _alerts(chain),
    ]
