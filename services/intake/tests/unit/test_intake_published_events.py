"""What intake publishes: a payload for every stored event, attribution, golden vectors."""

from __future__ import annotations

import inspect

import pytest

from v2v.intake.events.v1 import events_pb2
from v2v_intake.adapters.payloads import PAYLOAD_MAPPERS, TRANSLATOR
from v2v_intake.domain.therapy import Therapy
from v2v_intake.relay_spec import RELAY_SPEC
from v2v_intake.views import PackagingInput
from v2v_platform.envelope.headers import topic_for
from v2v_platform.service_application import NotWired
from v2v_testkit.golden import intake as golden
from v2v_testkit.intake import NOW, POPO, build_intake, operator, stored_events, verified

# Therapy.Created is the library's default creation event: never triggered (only enrol creates).
THERAPY_EVENTS = [
    c
    for _, c in inspect.getmembers(Therapy, inspect.isclass)
    if issubclass(c, Therapy.Event) and c not in (Therapy.Event, Therapy.Created)
]
EVENT_MESSAGES = [d.name for d in events_pb2.DESCRIPTOR.message_types_by_name.values()]
CLASS_VERSIONS = {Therapy.LabelScanned: 2, Therapy.LabelVerified: 2}
"""Version 2: the scanners' manifestations (issue 13 item 2; version 1 is upcast)."""


def test_every_stored_event_class_has_a_payload_mapper() -> None:
    assert set(THERAPY_EVENTS) == set(PAYLOAD_MAPPERS)
    assert all(
        getattr(c, "class_version", None) == CLASS_VERSIONS.get(c, 1) for c in THERAPY_EVENTS
    )


def test_every_event_message_has_a_golden_vector() -> None:
    assert sorted(golden.golden_payloads()) == sorted(EVENT_MESSAGES)


@pytest.mark.parametrize("name", EVENT_MESSAGES)
def test_producer_matches_the_golden_vector(name: str) -> None:
    payload = golden.golden_payloads()[name]
    binary, text = golden.golden_files(name)
    assert golden.to_bytes(payload) == binary.read_bytes()
    assert golden.to_json(payload) == text.read_text()


def test_the_relay_spec_publishes_intake_events() -> None:
    assert RELAY_SPEC.context == "intake"
    assert topic_for(RELAY_SPEC.context) == "v2v.intake.events.v1"


def test_the_relay_builds_an_intake_that_cannot_command() -> None:
    app = RELAY_SPEC.application(env=POPO)
    with pytest.raises(NotWired, match="unpublished records"):
        _ = app.unpublished
    with pytest.raises(NotWired, match="key store"):
        app.keys.destroy("CHA123425000001")
    with pytest.raises(NotWired, match="manufacturing client"):
        app.manufacturing.book("CHA123425000001", "GMP-B", NOW.date(), operator())


def test_every_recorded_event_translates_with_who_where_why_and_trace() -> None:
    intake = build_intake()
    coi, din = verified(intake)
    intake.app.package_unit(coi, din, PackagingInput("fresh-cold", 4.0, "GMP-B"), operator())
    intake.app.erase_personal_details(coi, operator(reason="withdrawn"))
    events = stored_events(intake)
    kinds = set()
    for event in events:
        outbound = TRANSLATOR.translate(event)
        assert outbound is not None
        content = outbound.content
        assert content.coi == coi and content.site_id == "HOSP-A"
        assert content.actor.role == "collection" and content.actor.user_id.startswith("u-")
        assert content.aggregate_type == "Therapy"
        assert content.schema_version == CLASS_VERSIONS.get(type(event), 1)
        kinds.add(content.payload.DESCRIPTOR.full_name)
    assert "v2v.intake.events.v1.UnitPackaged" in kinds
    erased = TRANSLATOR.translate(events[-1])
    assert erased is not None and erased.content.reason == "withdrawn"
