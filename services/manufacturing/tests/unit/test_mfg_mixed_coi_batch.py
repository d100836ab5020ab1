"""A batch started from units of two COIs (issue 14): refused as before (I1), and now recorded
on the chain of EACH patient before the refusal (I2), as a published mismatch event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from v2v.manufacturing.events.v1 import events_pb2 as pb
from v2v_manufacturing.adapters.payloads import PAYLOAD_MAPPERS
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.batch_mismatch import MIXED_COI, BatchInputsMismatch
from v2v_manufacturing.domain.receipt import ReceivedUnit
from v2v_platform.errors import Refused
from v2v_testkit.manufacturing import (
    COI,
    GMP,
    OTHER_COI,
    Clock,
    InMemoryManufacturingFacts,
    operator,
    receive,
)


def events_of(app: ManufacturingApplication, kind: type) -> list[Any]:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, kind)]


def test_a_batch_of_two_cois_is_recorded_on_both_chains_then_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    mine, theirs = receive(app, facts, 1), receive(app, facts, 2, coi=OTHER_COI)

    with pytest.raises(Refused, match="mixed-coi"):
        app.start_batch([mine, theirs], None, operator())

    recorded = events_of(app, BatchInputsMismatch.Recorded)
    assert sorted(event.coi for event in recorded) == sorted([COI, OTHER_COI])
    for event in recorded:
        assert event.input_dins == [mine, theirs]
        assert event.input_cois == [COI, OTHER_COI]
        assert event.reason_code == MIXED_COI
        assert event.manufacturing_site_id == GMP
        assert event.refused_at == clock.now
        assert event.actor["user_id"] == operator().user_id
    assert not events_of(app, Batch.Started)
    assert not events_of(app, ReceivedUnit.AllocatedToBatch)


def test_the_mismatch_is_published_on_each_chain_with_every_input(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    mine, theirs = receive(app, facts, 1), receive(app, facts, 2, coi=OTHER_COI)
    with pytest.raises(Refused):
        app.start_batch([theirs, mine], None, operator())

    payloads = [
        PAYLOAD_MAPPERS[type(event)](event)
        for event in events_of(app, BatchInputsMismatch.Recorded)
    ]

    recorded = [p for p in payloads if isinstance(p, pb.BatchInputsMismatchRecorded)]
    assert len(recorded) == len(payloads) == 2
    assert sorted(payload.coi for payload in recorded) == sorted([COI, OTHER_COI])
    for payload in payloads:
        assert isinstance(payload, pb.BatchInputsMismatchRecorded)
        assert list(payload.input_dins) == [theirs, mine]
        assert list(payload.input_cois) == [OTHER_COI, COI]
        assert payload.reason_code == "mixed-coi" and OTHER_COI in payload.explanation


def test_a_batch_of_one_coi_records_no_mismatch(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    app.start_batch([receive(app, facts, 1), receive(app, facts, 2)], None, operator())

    assert not events_of(app, BatchInputsMismatch.Recorded)
    assert len(events_of(app, Batch.Started)) == 1


def test_a_mixed_start_entered_after_the_fact_is_recorded_when_it_was_attempted(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    """Clinical time: the mismatch is recorded at the start's `started_at` (also the
    envelope's occurred_at), not when it was entered."""
    mine, theirs = receive(app, facts, 1), receive(app, facts, 2, coi=OTHER_COI)
    attempted = clock.now - timedelta(minutes=30)
    with pytest.raises(Refused, match="mixed-coi"):
        app.start_batch([mine, theirs], None, operator(), started_at=attempted)
    recorded = events_of(app, BatchInputsMismatch.Recorded)
    assert [(e.refused_at, e.occurred_at) for e in recorded] == [(attempted, attempted)] * 2
