"""The protocol's stability windows and temperature ranges, in ONE place (DESIGN.md section 2).

Every service that applies a window reads the site's `ProtocolRules` (built from its settings
by `ProtocolRulesSettings.protocol_rules`), and records on the event that applies it the
window it used and the rules' `tag`. The projection core never applies a constant of its own:
it judges by what the events say (`infuse_by`, `fresh_window_hours`, `window_ends_at`).

A `ProtocolRules` value is versioned: `version` names a built-in set (`v1`, the defaults
below); a site that configures another window runs `v1` changed, and its `tag` says so
(`v1+<fingerprint of the values>`), so two sites applying different windows never record
the same tag.

    rule                      default      setting
    fresh apheresis window    48 h         V2V_FRESH_APHERESIS_WINDOW_HOURS (1 h - 14 d)
    fresh product window      72 h         V2V_FRESH_PRODUCT_WINDOW_HOURS   (1 h - 14 d)
    post-thaw window          30 min       V2V_POST_THAW_WINDOW_MINUTES     (1 - 180 min)
    storage temperatures      2-8 °C fresh-cold, 15-25 °C fresh-ambient, <= -150 °C cryo
                              (the conditions' definitions: `conditions.TEMPERATURE_RANGES_C`)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Annotated

from pydantic import field_validator

from v2v_platform.conditions import TEMPERATURE_RANGES_C, Condition
from v2v_platform.config import V2VSettings, WindowHours, between

MAX_POST_THAW = timedelta(minutes=180)
DEFAULT_VERSION = "v1"

TemperatureRanges = tuple[tuple[Condition, float, float], ...]

V1_TEMPERATURE_RANGES_C: TemperatureRanges = tuple(
    (condition, low, high) for condition, (low, high) in TEMPERATURE_RANGES_C.items()
)


@dataclass(frozen=True)
class ProtocolRules:
    version: str = DEFAULT_VERSION
    fresh_apheresis: timedelta = timedelta(hours=48)
    """Fresh apheresis: collection end -> manufacturing start (and any handoff on the way)."""
    fresh_product: timedelta = timedelta(hours=72)
    """Fresh product: release -> infusion."""
    post_thaw: timedelta = timedelta(minutes=30)
    """Cryopreserved product: thaw start -> infusion (at most MAX_POST_THAW)."""
    temperature_ranges_c: TemperatureRanges = field(default=V1_TEMPERATURE_RANGES_C)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.post_thaw <= MAX_POST_THAW:
            raise ValueError("the post-thaw window must be between 1 and 180 minutes")

    @property
    def fresh_apheresis_hours(self) -> int:
        return _whole(self.fresh_apheresis, 3600)

    @property
    def fresh_product_hours(self) -> int:
        return _whole(self.fresh_product, 3600)

    @property
    def post_thaw_minutes(self) -> int:
        return _whole(self.post_thaw, 60)

    def temperature_range_c(self, condition: Condition) -> tuple[float, float]:
        for known, low, high in self.temperature_ranges_c:
            if known is condition:
                return low, high
        raise KeyError(condition)

    @property
    def fingerprint(self) -> str:
        values = {
            "fresh_apheresis_s": self.fresh_apheresis.total_seconds(),
            "fresh_product_s": self.fresh_product.total_seconds(),
            "post_thaw_s": self.post_thaw.total_seconds(),
            "temperatures": [[c.value, low, high] for c, low, high in self.temperature_ranges_c],
        }
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        """What events record: the version, marked when this site changed its values."""
        built_in = BUILT_IN.get(self.version)
        if built_in is not None and built_in.fingerprint == self.fingerprint:
            return self.version
        return f"{self.version}+{self.fingerprint}"


def _whole(length: timedelta, unit_s: int) -> int:
    return int(length.total_seconds() // unit_s)


BUILT_IN: dict[str, ProtocolRules] = {DEFAULT_VERSION: ProtocolRules()}
DEFAULT_RULES = BUILT_IN[DEFAULT_VERSION]


class ProtocolRulesSettings(V2VSettings):
    """The settings fields of a service that applies protocol rules (mix into its settings).

    Unset fields keep the built-in version's value."""

    protocol_rules_version: str = DEFAULT_VERSION
    fresh_apheresis_window_hours: WindowHours | None = None
    fresh_product_window_hours: WindowHours | None = None
    post_thaw_window_minutes: Annotated[int, between(1, 180, "minutes")] | None = None

    @field_validator("protocol_rules_version")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in BUILT_IN:
            raise ValueError(f"unknown protocol rules version (known: {', '.join(BUILT_IN)})")
        return value

    def protocol_rules(self) -> ProtocolRules:
        base = BUILT_IN[self.protocol_rules_version]
        changes: dict[str, timedelta] = {}
        if self.fresh_apheresis_window_hours is not None:
            changes["fresh_apheresis"] = timedelta(hours=self.fresh_apheresis_window_hours)
        if self.fresh_product_window_hours is not None:
            changes["fresh_product"] = timedelta(hours=self.fresh_product_window_hours)
        if self.post_thaw_window_minutes is not None:
            changes["post_thaw"] = timedelta(minutes=self.post_thaw_window_minutes)
        return replace(base, **changes)  # type: ignore[arg-type]
