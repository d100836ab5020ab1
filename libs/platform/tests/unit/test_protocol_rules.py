"""Protocol rules: defaults in one place, site changes visible in the recorded tag."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from v2v_platform.conditions import Condition
from v2v_platform.config import ConfigurationError, load_settings
from v2v_platform.protocol_rules import DEFAULT_RULES, ProtocolRules, ProtocolRulesSettings


def test_the_defaults_are_the_design_windows() -> None:
    rules = DEFAULT_RULES
    assert (rules.fresh_apheresis_hours, rules.fresh_product_hours) == (48, 72)
    assert rules.post_thaw_minutes == 30
    assert rules.temperature_range_c(Condition.FRESH_COLD) == (2.0, 8.0)
    assert rules.temperature_range_c(Condition.CRYO)[1] == -150.0
    assert rules.tag == "v1"


def test_a_site_that_changes_a_window_records_another_tag() -> None:
    changed = ProtocolRules(fresh_product=timedelta(hours=48))
    assert changed.tag.startswith("v1+") and changed.tag != DEFAULT_RULES.tag
    assert ProtocolRules(fresh_product=timedelta(hours=72)).tag == "v1"


def test_the_post_thaw_window_is_at_most_180_minutes() -> None:
    with pytest.raises(ValueError, match="between 1 and 180 minutes"):
        ProtocolRules(post_thaw=timedelta(minutes=181))


def test_settings_override_only_what_they_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("V2V_FRESH_PRODUCT_WINDOW_HOURS", "48")
    rules = load_settings(ProtocolRulesSettings).protocol_rules()
    assert (rules.fresh_apheresis_hours, rules.fresh_product_hours) == (48, 48)
    assert rules.post_thaw_minutes == 30


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("V2V_POST_THAW_WINDOW_MINUTES", "181")
    monkeypatch.setenv("V2V_PROTOCOL_RULES_VERSION", "v9")
    with pytest.raises(ConfigurationError) as raised:
        load_settings(ProtocolRulesSettings)
    problems = "\n".join(raised.value.problems)
    assert "V2V_POST_THAW_WINDOW_MINUTES" in problems
    assert "V2V_PROTOCOL_RULES_VERSION" in problems
