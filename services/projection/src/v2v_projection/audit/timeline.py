"""The custody timeline as inline SVG: one lane per unit, one bar per custody interval,
coloured by custodian and labelled; a time axis on top and a legend below. Static (no script),
so it prints as drawn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

WIDTH = 1000
LABEL_WIDTH = 190
RIGHT_MARGIN = 20
AXIS_HEIGHT = 34
LANE_HEIGHT = 30
BAR_HEIGHT = 20
LEGEND_ROW = 18
CHAR_WIDTH = 6.2
TICKS = 6
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
)


@dataclass(frozen=True)
class Interval:
    din: str
    custodian: str
    site_id: str
    start: datetime
    end: datetime
    current: bool


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def intervals(units: list[dict[str, Any]], closing: datetime) -> list[Interval]:
    found = []
    for unit in units:
        for custody in unit["custody"]:
            end = _time(custody["to"]) if custody["to"] else closing
            found.append(
                Interval(
                    unit["din"],
                    custody["custodian"],
                    custody["site_id"],
                    _time(custody["from"]),
                    max(end, _time(custody["from"])),
                    custody["to"] is None,
                )
            )
    return found


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.span = max((end - start).total_seconds(), 60.0)
        self.width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN

    def x(self, moment: datetime) -> float:
        return LABEL_WIDTH + (moment - self.start).total_seconds() / self.span * self.width

    def ticks(self) -> list[datetime]:
        step = self.span / (TICKS - 1)
        return [self.start + timedelta(seconds=step * i) for i in range(TICKS)]


def _fit(text: str, width: float) -> str:
    room = int(width / CHAR_WIDTH)
    if len(text) <= room:
        return text
    return text[: room - 1] + "…" if room >= 4 else ""


def _axis(scale: _Scale, lanes: int) -> list[str]:
    bottom = AXIS_HEIGHT + lanes * LANE_HEIGHT
    parts = []
    ticks = scale.ticks()
    for number, tick in enumerate(ticks):
        x = scale.x(tick)
        label = escape(tick.strftime("%Y-%m-%d %H:%M"))
        anchor = "start" if number == 0 else "end" if number == len(ticks) - 1 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{x:.1f}" y2="{bottom}"'
            ' class="grid"/>'
            f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 10}" class="tick"'
            f' text-anchor="{anchor}">{label}</text>'
        )
    return parts


def _bar(interval: Interval, lane: int, scale: _Scale, colour: str) -> str:
    x0, x1 = scale.x(interval.start), scale.x(interval.end)
    width = max(x1 - x0, 2.0)
    y = AXIS_HEIGHT + lane * LANE_HEIGHT + (LANE_HEIGHT - BAR_HEIGHT) / 2
    until = (
        "the end of the record (current custodian)"
        if interval.current
        else interval.end.isoformat()
    )
    title = escape(
        f"{interval.din}: {interval.custodian} at {interval.site_id},"
        f" {interval.start.isoformat()} to {until}"
    )
    label = escape(_fit(interval.custodian, width - 6))
    dashed = ' stroke-dasharray="4 2"' if interval.current else ""
    return (
        f'<g><title>{title}</title><rect x="{x0:.1f}" y="{y:.1f}" width="{width:.1f}"'
        f' height="{BAR_HEIGHT}" fill="{colour}" class="bar"{dashed}/>'
        f'<text x="{x0 + 3:.1f}" y="{y + BAR_HEIGHT - 6:.1f}" class="bar-label">{label}</text></g>'
    )


def _legend(colours: dict[str, str], top: float) -> list[str]:
    parts = []
    for row, (custodian, colour) in enumerate(colours.items()):
        y = top + row * LEGEND_ROW
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{y:.1f}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{LABEL_WIDTH + 18}" y="{y + 10:.1f}" class="lane">{escape(custodian)}</text>'
        )
    return parts


def custody_svg(units: list[dict[str, Any]], closing: datetime) -> str:
    """The SVG element (a string); intervals still open are drawn up to `closing`."""
    found = intervals(units, closing)
    dins = [unit["din"] for unit in units]
    custodians = sorted({i.custodian for i in found})
    colours = {c: PALETTE[n % len(PALETTE)] for n, c in enumerate(custodians)}
    if found:
        scale = _Scale(min(i.start for i in found), max(i.end for i in found))
    else:
        scale = _Scale(closing - timedelta(hours=1), closing)
    lanes_bottom = AXIS_HEIGHT + len(dins) * LANE_HEIGHT
    height = lanes_bottom + 16 + len(colours) * LEGEND_ROW + 8
    parts = _axis(scale, len(dins))
    for lane, din in enumerate(dins):
        y = AXIS_HEIGHT + lane * LANE_HEIGHT + LANE_HEIGHT / 2 + 4
        parts.append(f'<text x="6" y="{y:.1f}" class="lane">{escape(din)}</text>')
        parts += [_bar(i, lane, scale, colours[i.custodian]) for i in found if i.din == din]
    parts += _legend(colours, lanes_bottom + 16)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}"'
        f' width="100%" role="img" aria-label="Custody timeline, one lane per unit">'
        + "".join(parts)
        + "</svg>"
    )
