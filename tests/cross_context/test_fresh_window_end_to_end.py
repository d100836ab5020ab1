"""A site's fresh product window, from its settings to the projection's alerts.

The infusion service at a site configured with its own fresh window (48 h, or 96 h) verifies
and infuses a fresh unit just inside that window; its events, mapped by its own payload
mappers as the relay publishes them, are folded by the projection core together with the
product and release facts. The projection judges the window by the deadline the bedside
recorded (`BedsideVerified.infuse_by`), so no false stability-window alert is raised, and the
events say which rules were applied. Past the site's window the service itself refuses.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.adapters.payloads import PAYLOAD_MAPPERS
from v2v_infusion.application import Administration, InfusionApplication
from v2v_infusion.domain.values import InfusionRefused
from v2v_infusion.settings import InfusionSettings
from v2v_platform.config import load_settings
from v2v_platform.protocol_rules import DEFAULT_RULES
from v2v_projection.fold import ChainFold
from v2v_testkit.infusion import (
    BATCH,
    COI,
    RELEASED_AT,
    Clock,
    InMemoryFacts,
    build_app,
    nurse,
    receive_released,
    stored_events,
    verify_at_bedside,
    witnessing,
)
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

WARD = "HOSP-A"


def stamp(moment: Any) -> Timestamp:
    return Timestamp(seconds=int(moment.timestamp()))


def ward(tmp_path: Path, window_hours: int) -> tuple[InfusionApplication, InMemoryFacts, Clock]:
    settings = load_settings(
        InfusionSettings,
        site_id=WARD,
        pki_dir=tmp_path,
        fresh_product_window_hours=window_hours,
    )
    facts, clock = InMemoryFacts(), Clock()
    app = build_app(facts, clock, rules=settings.protocol_rules())
    return app, facts, clock


def infuse(app: InfusionApplication, din: str) -> None:
    given = Administration(din, None, 1.0, 80.0, "u-nurse-2", "Nurse Two", witnessing("u-nurse-2"))
    app.administer_infusion(given, nurse())


def upstream_facts(writer: EnvelopeWriter, din: str) -> list[bytes]:
    """What manufacturing and release published about the unit the ward received."""
    created = manufacturing.ProductUnitsCreated(
        coi=COI,
        batch_id=BATCH,
        product_dins=[din],
        hold_condition=common_pb2.CONDITION_FRESH_COLD,
        created_at=stamp(RELEASED_AT - timedelta(hours=20)),
    )
    certified = release.ProvisionallyCertified(
        coi=COI, batch_id=BATCH, product_dins=[din], certified_at=stamp(RELEASED_AT)
    )
    return [
        writer.write(
            COI, f"Batch:{BATCH}", created, RELEASED_AT, site="GMP-B", context="manufacturing"
        ),
        writer.write(
            COI, f"BatchRelease:{BATCH}", certified, RELEASED_AT, site="GMP-B", context="release"
        ),
    ]


def published(app: InfusionApplication, writer: EnvelopeWriter) -> list[bytes]:
    """The ward's events as its relay publishes them (its own payload mappers)."""
    records = []
    for event in stored_events(app):
        payload = PAYLOAD_MAPPERS[type(event)](event)
        records.append(
            writer.write(
                COI,
                f"ProductAtSite:{event.originator_id}",
                payload,
                event.timestamp,
                site=WARD,
                context="infusion",
            )
        )
    return records


def chain(records: list[bytes]) -> dict[str, Any]:
    fold = ChainFold()
    for record in records:
        fold.apply_bytes(record)
    view = fold.chain(COI)
    assert view is not None
    return view


@pytest.mark.parametrize("window_hours", [48, 96])
def test_an_infusion_inside_the_sites_window_raises_no_window_alert(
    tmp_path: Path, window_hours: int
) -> None:
    app, facts, clock = ward(tmp_path, window_hours)
    din = receive_released(app, facts)
    clock.now = RELEASED_AT + timedelta(hours=window_hours - 1)
    verify_at_bedside(app, din)
    infuse(app, din)

    writer = EnvelopeWriter()
    view = chain(upstream_facts(writer, din) + published(app, writer))

    assert view["stage"] == "infused"
    assert [a for a in view["alerts"] if a["kind"] == "stability-window-breach"] == []
    verified = [e for e in stored_events(app) if type(e).__name__ == "BedsideVerified"]
    (event,) = verified
    assert event.infuse_by == RELEASED_AT + timedelta(hours=window_hours)
    assert event.protocol_rules != DEFAULT_RULES.tag  # the site changed the v1 window


def test_past_the_sites_window_the_ward_refuses_before_anything_is_infused(
    tmp_path: Path,
) -> None:
    app, facts, clock = ward(tmp_path, 48)
    din = receive_released(app, facts)
    clock.now = RELEASED_AT + timedelta(hours=47)
    verify_at_bedside(app, din)
    clock.now = RELEASED_AT + timedelta(hours=49)

    with pytest.raises(InfusionRefused, match="window"):
        infuse(app, din)
