"""The authorship policy: embedded in the platform, equal to contracts/authorship.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev group

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.auth.identity import Role, parse_role
from v2v_platform.envelope import AUTHORSHIP, AuthorshipPolicy, KeyRing, Location, SiteSigningKey
from v2v_platform.envelope.authorship import AUTHORS
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.envelope.verify import CHECK_AUTHORSHIP, CHECK_EVENT_TYPE

AUTHORSHIP_YAML = Path(__file__).resolve().parents[4] / "contracts" / "authorship.yaml"


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    loaded = yaml.safe_load(AUTHORSHIP_YAML.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_embedded_policy_is_the_contract(contract: dict[str, Any]) -> None:
    contexts = contract["contexts"]
    assert set(contexts) == set(CONTEXTS)
    in_yaml = {c: frozenset(parse_role(r) for r in rule["authors"]) for c, rule in contexts.items()}
    assert in_yaml == dict(AUTHORS)
    assert {c: rule["topic"] for c, rule in contexts.items()} == {c: topic_for(c) for c in CONTEXTS}


def test_release_events_need_the_qc_role() -> None:
    assert AUTHORS["release"] == {Role.QC}
    assert AUTHORS["logistics"] == {Role.COURIER}


def _envelope(site: str, event_type: str) -> Envelope:
    return Envelope(site_id=site, event_type=event_type, aggregate_id="a", aggregate_version=1)


def _ring() -> KeyRing:
    ring = KeyRing()
    ring.add("QC-1", SiteSigningKey.generate("QC-1").public_key, [Role.QC])
    ring.add("HOSP-A", SiteSigningKey.generate("HOSP-A").public_key, ["collection", "infusion"])
    return ring


RELEASE = Location("v2v.release.events.v1", 0, 1)
CERTIFIED = "v2v.release.events.v1.FinallyCertified"


def _checks(site: str, event_type: str, where: Location = RELEASE) -> list[str]:
    return [found.check for found in AUTHORSHIP.check(_envelope(site, event_type), where, _ring())]


def test_a_qc_site_may_author_release_events() -> None:
    assert _checks("QC-1", CERTIFIED) == []


def test_a_real_site_without_the_role_may_not() -> None:
    [found] = AUTHORSHIP.check(_envelope("HOSP-A", CERTIFIED), RELEASE, _ring())
    assert found.check == CHECK_AUTHORSHIP
    assert "site 'HOSP-A' (roles: collection, infusion) may not author release events" in (
        found.detail
    )


def test_a_site_the_ring_has_no_roles_for_may_author_nothing() -> None:
    assert _checks("GMP-9", CERTIFIED) == [CHECK_AUTHORSHIP]


def test_an_event_of_another_context_on_a_topic_is_refused() -> None:
    intake = Location("v2v.intake.events.v1", 0, 1)
    assert _checks("HOSP-A", CERTIFIED, intake) == [CHECK_EVENT_TYPE]
    assert _checks("HOSP-A", "v2v.intake.events.v1.PatientEnrolled", intake) == []


def test_a_topic_without_a_rule_is_refused() -> None:
    assert _checks("QC-1", CERTIFIED, Location("v2v.other.events.v1", 0, 1)) == [CHECK_AUTHORSHIP]


def test_a_policy_may_name_another_event_package_for_a_topic() -> None:
    policy = AuthorshipPolicy(event_packages={RELEASE.topic: "google.protobuf"})
    struct = _envelope("QC-1", "google.protobuf.Struct")
    assert policy.check(struct, RELEASE, _ring()) == []


def test_a_policy_for_an_unknown_context_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown context"):
        AuthorshipPolicy(authors={"billing": frozenset({Role.QC})})
