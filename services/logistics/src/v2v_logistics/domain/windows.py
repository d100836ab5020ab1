"""Stability windows of shipped units (DESIGN.md section 2), by the site's `ProtocolRules`.

Fresh apheresis: collection end + `rules.fresh_apheresis`. Fresh product: product creation +
`rules.fresh_product`; the rule is "release -> infusion", but release events are not consumed
yet, so creation time is the (earlier, stricter) start. Cryo: no window while in its range.
A shipment's window is the earliest of its units' windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from v2v_logistics.domain.values import KnownUnit, UnitKind
from v2v_platform.conditions import Condition
from v2v_platform.protocol_rules import ProtocolRules


@dataclass(frozen=True)
class StabilityWindow:
    ends_at: datetime | None
    rule: str


def unit_window(unit: KnownUnit, rules: ProtocolRules) -> StabilityWindow:
    if not unit.condition.is_fresh:
        _, coldest = rules.temperature_range_c(Condition.CRYO)
        return StabilityWindow(None, f"cryo: no window while <= {coldest:g} C")
    if unit.kind is UnitKind.APHERESIS:
        rule = f"fresh apheresis: collection end + {rules.fresh_apheresis_hours} h"
        return StabilityWindow(unit.window_starts_at + rules.fresh_apheresis, rule)
    rule = f"fresh product: creation + {rules.fresh_product_hours} h"
    return StabilityWindow(unit.window_starts_at + rules.fresh_product, rule)


def shipment_window(units: Sequence[KnownUnit], rules: ProtocolRules) -> StabilityWindow:
    """The earliest end among the units' windows (the first unit's rule when none ends)."""
    windows = [unit_window(unit, rules) for unit in units]
    timed = sorted((w.ends_at, w.rule) for w in windows if w.ends_at is not None)
    if not timed:
        return windows[0]
    ends_at, rule = timed[0]
    return StabilityWindow(ends_at, rule)
