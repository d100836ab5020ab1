"""Server-side SVG charts (matplotlib, Agg backend, object-oriented API only: no pyplot):
the temperature chart of one shipment (chain of condition) and the programme's KPI charts.

Every function returns SVG markup to inline in a page: no XML prolog or doctype, a viewBox
and no fixed width/height (the chart takes its container's width), text as SVG text (no
embedded glyphs, no font download: the page works offline), and the same bytes for the same
input (fixed `svg.hashsalt`, no date in the metadata). Figures are drawn under one lock:
matplotlib's rc settings are process-wide.

Data artists carry ids (`gid`) so a browser test can find them:

- `temperature_chart`: `readings` (the logger line; with several loggers, `readings` for the
  first and `readings-2`, `readings-3`, ... for the others), `range-band` (the condition's
  range), `excursion-0`, `excursion-1`, ... (one shaded span per excursion);
- `kpi_charts`: `vein_to_vein`: `bars` (histogram of per-chain days), `median`;
  `stage_times`: `bars-consortium`, `bars-<site>` (median days per stage);
  `manufacturing_success`: `bars` (rate per manufacturing site), `consortium`;
  `rates_over_time`: `line-oos`, `line-second-apheresis`.

A chart without data says so ("no logger readings", "no data yet") and has none of them.
"""

from __future__ import annotations

import io
import math
import re
import statistics
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from v2v_projection.chain.checks import RELEASING
from v2v_projection.chain.kpis import STAGE_SPANS, VEIN_TO_VEIN

NO_READINGS = "no logger readings"
NO_DATA = "no data yet"
KPI_CHARTS = ("vein_to_vein", "stage_times", "manufacturing_success", "rates_over_time")
STAGE_LABELS = {
    "enrolment_to_collection": "enrolment\u2192collection",
    "collection_to_manufacturing": "collection\u2192manufacturing",
    "manufacturing": "manufacturing",
    "release": "QC and release",
    "release_to_infusion": "release\u2192infusion",
}
OPEN_BELOW_C = -273.0
"""A range whose low end is at or below this (cryo: absolute zero) is open below: only
<= high is shaded, and the y axis follows the readings, not absolute zero."""

INK = "#1f4e79"
BAND = "#2e8b57"
WARNING = "#d9480f"
SERIES = ("#1f4e79", "#e67700", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#5c940d", "#a61e4d")
RC = {
    "svg.hashsalt": "v2v-charts",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
}
KPI_MARGINS = (0.09, 0.17, 0.985, 0.9)
ABOVE: dict[str, Any] = {"loc": "lower right", "bbox_to_anchor": (1.0, 1.0), "borderaxespad": 0.2}
"""A legend right-aligned above the axes, beside the (left-aligned) title."""
"""Fixed margins (left, bottom, right, top): every label of these charts has a known size."""
_LOCK = threading.Lock()


# ---------------------------------------------------------------- rendering


def _svg(figure: Figure) -> str:
    """The figure as inline SVG: from `<svg` on, without width/height (viewBox kept)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches=None)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    head_end = text.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", text[:head_end])
    return head + ' preserveAspectRatio="xMidYMid meet"' + text[head_end:]


def _plain(text: str) -> str:
    """Text shown as written: `$` would start mathtext."""
    return text.replace("$", r"\$")


def _figure(
    width: float, height: float, margins: tuple[float, float, float, float] | None = None
) -> Figure:
    """A figure; with `margins` (left, bottom, right, top as fractions) fixed ones, drawn once
    (a layout engine draws the figure twice: a shipment's chart takes half the time)."""
    figure = Figure(figsize=(width, height), dpi=72, layout=None if margins else "constrained")
    if margins:
        left, bottom, right, top = margins
        figure.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    figure.patch.set_facecolor("white")
    return figure


def _message(title: str, message: str, width: float = 7.5, height: float = 1.4) -> str:
    """A small chart that only says why there is nothing to draw."""
    with _LOCK, matplotlib.rc_context(RC):
        figure = _figure(width, height)
        axes = figure.add_subplot()
        axes.set_axis_off()
        axes.set_title(_plain(title), loc="left")
        axes.text(
            0.5,
            0.45,
            message,
            ha="center",
            va="center",
            color="#555",
            style="italic",
            transform=axes.transAxes,
            gid="message",
        )
        return _svg(figure)


# ---------------------------------------------------------------- temperature


def _num(moment: datetime) -> float:
    """matplotlib's date number (days since its epoch) of a UTC time."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


def excursion_span(excursion: Mapping[str, Any], fallback_end: datetime | None) -> Span | None:
    """Where an excursion is shaded: started_at to ended_at (or started_at + duration_s, or
    the last reading when neither is known; at least one minute wide so it shows)."""
    if not excursion.get("started_at"):
        return None
    start = _when(excursion["started_at"])
    if excursion.get("ended_at"):
        end = _when(excursion["ended_at"])
    elif excursion.get("duration_s"):
        end = start + timedelta(seconds=float(excursion["duration_s"]))
    else:
        end = fallback_end or start
    return Span(start, max(end, start + timedelta(minutes=1)))


def y_limits(
    temperatures: Sequence[float], band: tuple[float, float] | None
) -> tuple[float, float]:
    """The y range: the readings and the range's finite ends, with a margin (an open-below
    range, cryo's, does not pull the axis down to absolute zero)."""
    values = list(temperatures)
    if band is not None:
        low, high = band
        values.append(high)
        if low > OPEN_BELOW_C:
            values.append(low)
    if not values:
        return (0.0, 1.0)
    bottom, top = min(values), max(values)
    margin = max((top - bottom) * 0.12, 2.0)
    return (bottom - margin, top + margin)


def _range(shipment: Mapping[str, Any]) -> tuple[float, float] | None:
    found = shipment.get("range_c")
    if not found or len(found) != 2 or found[0] is None or found[1] is None:
        return None
    low, high = float(found[0]), float(found[1])
    if shipment.get("condition") == "cryo":
        low = min(low, OPEN_BELOW_C)
    return (low, high)


def range_text(shipment: Mapping[str, Any]) -> str:
    """``2 to 8 °C``, ``<= -150 °C`` (open below), or ``no range`` (condition unknown)."""
    band = _range(shipment)
    if band is None:
        return "no range"
    low, high = band
    return f"<= {high:g} °C" if low <= OPEN_BELOW_C else f"{low:g} to {high:g} °C"


def _title(shipment: Mapping[str, Any]) -> str:
    condition = shipment.get("condition") or "condition not recorded"
    return (
        f"Shipment {shipment.get('shipment_id', '?')} \u00b7 {condition} ({range_text(shipment)})"
    )


def _by_device(readings: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[datetime, float]]]:
    lines: dict[str, list[tuple[datetime, float]]] = {}
    for reading in readings:
        at, value = reading.get("at"), reading.get("c")
        if not at or value is None:
            continue
        lines.setdefault(str(reading.get("device_id") or ""), []).append((_when(at), float(value)))
    for points in lines.values():
        points.sort()
    return lines


def temperature_chart(shipment: dict[str, Any]) -> str:
    """The shipment's logger readings over clinical time (UTC), its condition's range shaded,
    each excursion shaded as a span in a warning colour. See the module docstring for ids."""
    title = _title(shipment)
    lines = _by_device(shipment.get("readings") or [])
    points = [point for line in lines.values() for point in line]
    last = max((at for at, _ in points), default=None)
    spans = [excursion_span(e, last) for e in shipment.get("excursions") or []]
    if not points and not any(spans):
        return _message(title, NO_READINGS)
    band = _range(shipment)
    bottom, top = y_limits([c for _, c in points], band)
    with _LOCK, matplotlib.rc_context(RC):
        figure = _figure(7.5, 3.0, (0.085, 0.27, 0.985, 0.9))
        axes = figure.add_subplot()
        if band is not None:
            low = max(band[0], bottom)
            axes.axhspan(
                low,
                band[1],
                color=BAND,
                alpha=0.14,
                lw=0,
                gid="range-band",
                label=f"range {range_text(shipment)}",
            )
        for index, span in enumerate(spans):
            if span is None:
                continue
            axes.axvspan(
                _num(span.start),
                _num(span.end),
                color=WARNING,
                alpha=0.28,
                lw=0,
                gid=f"excursion-{index}",
                label="excursion" if index == 0 else None,
            )
        for number, (device, line) in enumerate(sorted(lines.items())):
            times = [_num(at) for at, _ in line]
            axes.plot(
                times,
                [c for _, c in line],
                color=SERIES[number % len(SERIES)],
                lw=1.3,
                marker="o" if len(line) <= 40 else None,
                markersize=2.5,
                gid="readings" if number == 0 else f"readings-{number + 1}",
                label=_plain(f"logger {device}" if device else "logger"),
            )
        if not points:
            axes.text(
                0.5,
                0.5,
                NO_READINGS,
                ha="center",
                va="center",
                color="#555",
                style="italic",
                transform=axes.transAxes,
            )
        axes.set_ylim(bottom, top)
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_formatter(formatter)
        if not points:
            valid = [s for s in spans if s is not None]
            start = min(s.start for s in valid)
            end = max(s.end for s in valid)
            pad = (end - start) * 0.2 + timedelta(minutes=10)
            axes.set_xlim(_num(start - pad), _num(end + pad))
        axes.set_title(_plain(title), loc="left")
        axes.set_ylabel("°C")
        axes.set_xlabel("clinical time (UTC)")
        axes.grid(True, color="#e5e5e5", lw=0.6)
        figure.legend(loc="lower center", fontsize=7.5, frameon=False, ncols=6)
        return _svg(figure)


# ---------------------------------------------------------------- KPI series (pure)


def vein_to_vein_days(chains: Iterable[Mapping[str, Any]]) -> list[float]:
    """Each chain's vein-to-vein time in days (chains not infused yet have none)."""
    days = []
    for chain in chains:
        hours = (chain.get("kpis") or {}).get(VEIN_TO_VEIN)
        if hours is not None:
            days.append(hours / 24)
    return days


def stage_medians(kpis: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Median days per stage, for the consortium then each site with any (site order)."""
    groups = {"consortium": kpis.get("consortium") or {}}
    groups.update(sorted((kpis.get("sites") or {}).items()))
    result: dict[str, dict[str, float | None]] = {}
    for name, summary in groups.items():
        stages = summary.get("stage_hours") or {}
        medians = {
            stage: None if (m := (stages.get(stage) or {}).get("median")) is None else m / 24
            for stage in STAGE_SPANS
        }
        if any(value is not None for value in medians.values()):
            result[name] = medians
    return result


def success_rates(kpis: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(site, manufacturing success rate) for each site with a rate (manufacturing sites
    with a harvested or failed batch), in site order."""
    sites = kpis.get("sites") or {}
    return [
        (site, float(rate))
        for site, summary in sorted(sites.items())
        if (rate := summary.get("manufacturing_success_rate")) is not None
    ]


@dataclass(frozen=True)
class MonthRates:
    """One calendar month (UTC): released batches and how many went through OOS; patients
    whose first apheresis was that month and how many needed a second one."""

    month: str
    released: int = 0
    oos: int = 0
    collected: int = 0
    second_apheresis: int = 0

    @property
    def oos_rate(self) -> float | None:
        return self.oos / self.released if self.released else None

    @property
    def second_apheresis_rate(self) -> float | None:
        return self.second_apheresis / self.collected if self.collected else None


def _month(text: str) -> str:
    return _when(text).strftime("%Y-%m")


def first_release_at(chain: Mapping[str, Any], batch_id: str) -> str | None:
    """The batch's first releasing decision (provisional, final, accepted OOS)."""
    times = [
        decision["at"]
        for release in chain.get("releases") or []
        if release.get("batch_id") == batch_id
        for decision in release.get("decisions") or []
        if decision.get("decision") in RELEASING and decision.get("at")
    ]
    return min(times, key=_when, default=None)


def first_collection_at(chain: Mapping[str, Any]) -> str | None:
    """When the patient's first apheresis unit was made (its label: the collection)."""
    times = [
        unit["created_at"]
        for unit in chain.get("units") or []
        if unit.get("kind") == "apheresis" and unit.get("created_at")
    ]
    return min(times, key=_when, default=None)


def monthly_rates(chains: Iterable[Mapping[str, Any]]) -> list[MonthRates]:
    """The OOS rate (docs/kpis.md: released batches that went through OOS / released
    batches) by the month of each batch's first release, and the second-apheresis rate
    (patients with more than one collection / with at least one) by the month of the
    patient's first collection; every month from the first to the last, in order."""
    released: dict[str, list[int]] = {}
    collected: dict[str, list[int]] = {}
    for chain in chains:
        kpis = chain.get("kpis") or {}
        for outcome in kpis.get("batches") or []:
            if not outcome.get("released"):
                continue
            at = first_release_at(chain, outcome["batch_id"])
            if at is not None:
                counts = released.setdefault(_month(at), [0, 0])
                counts[0] += 1
                counts[1] += bool(outcome.get("oos"))
        if kpis.get("collections"):
            at = first_collection_at(chain)
            if at is not None:
                counts = collected.setdefault(_month(at), [0, 0])
                counts[0] += 1
                counts[1] += bool(kpis.get("second_apheresis"))
    months = sorted(released.keys() | collected.keys())
    if not months:
        return []
    result = []
    for month in _month_range(months[0], months[-1]):
        r, c = released.get(month, [0, 0]), collected.get(month, [0, 0])
        result.append(MonthRates(month, r[0], r[1], c[0], c[1]))
    return result


def _month_range(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    months = []
    while True:
        shown = f"{year:04d}-{month:02d}"
        months.append(shown)
        if shown >= last:
            return months
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# ---------------------------------------------------------------- KPI charts


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name) or "_"


def _bars(
    axes: Axes,
    xs: Sequence[float],
    heights: Sequence[float],
    width: float,
    gid: str,
    color: str,
) -> None:
    """One collection of bars (one SVG group `gid` holding a path per bar)."""
    rectangles = [
        Rectangle((x - width / 2, 0.0), width, h) for x, h in zip(xs, heights, strict=True)
    ]
    collection = PatchCollection(
        rectangles, facecolor=color, edgecolor="white", linewidth=0.6, gid=gid, zorder=2
    )
    axes.add_collection(collection, autolim=True)
    axes.autoscale_view()


def _vein_to_vein(chains: Sequence[Mapping[str, Any]]) -> str:
    days = vein_to_vein_days(chains)
    title = "Vein-to-vein time"
    if not days:
        return _message(title, NO_DATA)
    low, high = min(days), max(days)
    width = max(1.0, math.ceil((high - low) / 20)) if high > low else 1.0
    start = math.floor(low / width) * width
    bins = max(1, math.ceil((high - start) / width + 1e-9)) if high > start else 1
    counts = [0] * bins
    for value in days:
        counts[min(bins - 1, int((value - start) // width))] += 1
    centres = [start + width * (i + 0.5) for i in range(bins)]
    median = statistics.median(days)
    with _LOCK, matplotlib.rc_context(RC):
        figure = _figure(7.5, 3.0, KPI_MARGINS)
        axes = figure.add_subplot()
        _bars(axes, centres, counts, width * 0.95, "bars", INK)
        axes.axvline(median, color=WARNING, lw=1.4, ls="--", gid="median")
        axes.set_xlim(start - width * 0.2, start + width * (bins + 0.2))
        axes.set_ylim(0, max(counts) * 1.15 + 0.5)
        axes.set_title(f"{title}: {len(days)} patients, median {median:.1f} d", loc="left")
        axes.set_xlabel("days, end of first apheresis \u2192 first infusion")
        axes.set_ylabel("patients")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole patients
        axes.grid(True, axis="y", color="#e5e5e5", lw=0.6)
        return _svg(figure)


def _stage_times(kpis: Mapping[str, Any]) -> str:
    groups = stage_medians(kpis)
    title = "Median time per stage (days)"
    if not groups:
        return _message(title, NO_DATA)
    width = 0.8 / len(groups)
    with _LOCK, matplotlib.rc_context(RC):
        figure = _figure(7.5, 3.2, KPI_MARGINS)
        axes = figure.add_subplot()
        handles = []
        for number, (name, medians) in enumerate(groups.items()):
            color = SERIES[number % len(SERIES)]
            offset = -0.4 + width * (number + 0.5)
            xs = [i + offset for i, s in enumerate(STAGE_SPANS) if medians[s] is not None]
            heights = [m for s in STAGE_SPANS if (m := medians[s]) is not None]
            _bars(axes, xs, heights, width * 0.92, f"bars-{_slug(name)}", color)
            handles.append(Patch(facecolor=color, label=_plain(name)))
        axes.set_xticks(range(len(STAGE_SPANS)), [STAGE_LABELS[s] for s in STAGE_SPANS])
        axes.tick_params(axis="x", labelsize=7.5)
        axes.set_xlim(-0.5, len(STAGE_SPANS) - 0.5)
        axes.set_ylim(0, None)
        axes.set_ylabel("median days")
        axes.set_title(title, loc="left")
        axes.grid(True, axis="y", color="#e5e5e5", lw=0.6)
        if len(handles) <= 4:
            axes.legend(handles=handles, fontsize=7.5, frameon=False, ncols=4, **ABOVE)
        else:  # many sites: inside, over a white frame, 4 per row
            axes.legend(handles=handles, fontsize=7, ncols=4, loc="upper left", framealpha=0.9)
        return _svg(figure)


def _manufacturing_success(kpis: Mapping[str, Any]) -> str:
    rates = success_rates(kpis)
    title = "Manufacturing success per site: harvested / (harvested + failed)"
    if not rates:
        return _message(title, NO_DATA)
    consortium = (kpis.get("consortium") or {}).get("manufacturing_success_rate")
    with _LOCK, matplotlib.rc_context(RC):
        figure = _figure(7.5, 3.0, KPI_MARGINS)
        axes = figure.add_subplot()
        xs = list(range(len(rates)))
        _bars(axes, xs, [100 * rate for _, rate in rates], 0.6, "bars", INK)
        for x, (_, rate) in zip(xs, rates, strict=True):
            axes.text(x, 100 * rate + 1.5, f"{100 * rate:.0f} %", ha="center", fontsize=7.5)
        if consortium is not None:
            axes.axhline(100 * consortium, color=WARNING, lw=1.2, ls="--", gid="consortium")
            title += f" (dashed: consortium {100 * consortium:.0f} %)"
        axes.set_xticks(xs, [_plain(site) for site, _ in rates])
        axes.set_xlim(-0.6, len(rates) - 0.4)
        axes.set_ylim(0, 110)
        axes.set_ylabel("% harvested")
        axes.set_title(title, loc="left")
        axes.grid(True, axis="y", color="#e5e5e5", lw=0.6)
        return _svg(figure)


def _rates_over_time(chains: Sequence[Mapping[str, Any]]) -> str:
    months = monthly_rates(chains)
    title = "Rates per month"
    if not months:
        return _message(title, NO_DATA)

    def percent(value: float | None) -> float:
        return math.nan if value is None else 100 * value

    xs = list(range(len(months)))
    with _LOCK, matplotlib.rc_context(RC):
        figure = _figure(7.5, 3.0, KPI_MARGINS)
        axes = figure.add_subplot()
        axes.plot(
            xs,
            [percent(m.oos_rate) for m in months],
            color=WARNING,
            marker="o",
            markersize=3,
            lw=1.4,
            gid="line-oos",
            label="OOS rate (released batches)",
        )
        axes.plot(
            xs,
            [percent(m.second_apheresis_rate) for m in months],
            color=INK,
            marker="s",
            markersize=3,
            lw=1.4,
            gid="line-second-apheresis",
            label="second apheresis (patients collected)",
        )
        step = max(1, math.ceil(len(months) / 12))
        axes.set_xticks(xs[::step], [m.month for m in months][::step])
        axes.set_xlim(-0.5, len(months) - 0.5)
        shown = [
            value
            for m in months
            for value in (m.oos_rate, m.second_apheresis_rate)
            if value is not None
        ]
        axes.set_ylim(0, min(105.0, max(10.0, 130 * max(shown, default=0.0))))
        axes.set_ylabel("% per month")
        axes.set_xlabel("month (UTC): first release / first collection")
        axes.set_title(title, loc="left")
        axes.grid(True, color="#e5e5e5", lw=0.6)
        axes.legend(fontsize=7.5, frameon=False, ncols=2, **ABOVE)
        return _svg(figure)


def kpi_charts(kpis: dict[str, Any], chains: list[dict[str, Any]]) -> dict[str, str]:
    """The programme's KPI charts: `kpis` as `ChainQueries.kpis(scope)` returns it
    (chain/kpis.py `summarize`), `chains` the chain views the caller may read. Keys:
    vein_to_vein, stage_times, manufacturing_success, rates_over_time."""
    return {
        "vein_to_vein": _vein_to_vein(chains),
        "stage_times": _stage_times(kpis),
        "manufacturing_success": _manufacturing_success(kpis),
        "rates_over_time": _rates_over_time(chains),
    }
