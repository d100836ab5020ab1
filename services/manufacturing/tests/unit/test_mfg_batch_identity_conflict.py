"""One DIN, one patient (issue 14, I1): a batch start from a received unit whose DIN verified
facts (learned after its receipt) bind to another COI too is refused, and recorded first on the
chain of every COI at risk (`BatchInputsMismatch`, reason `identity-conflict`), like the
mixed-COI start; no batch starts, no unit is allocated."""

from __future__ import annotations

from typing import Any

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.batch_mismatch import BatchInputsMismatch
from v2v_manufacturing.domain.receipt import ReceivedUnit
from v2v_platform.errors import Refused
from v2v_platform.ids.bindings import IDENTITY_CONFLICT
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


def test_a_batch_from_a_conflicted_unit_is_recorded_on_each_chain_then_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    first, second = receive(app, facts, 1), receive(app, facts, 2)
    facts.bind(second, COI)
    facts.bind(second, OTHER_COI)  # the same DIN issued again, for another patient

    with pytest.raises(Refused, match=IDENTITY_CONFLICT):
        app.start_batch([first, second], None, operator())

    recorded = events_of(app, BatchInputsMismatch.Recorded)
    assert sorted(event.coi for event in recorded) == sorted([COI, OTHER_COI])
    for event in recorded:
        assert event.input_dins == [first, second]
        assert event.input_cois == [COI, COI]
        assert event.reason_code == IDENTITY_CONFLICT
        assert second[:13] in event.explanation and OTHER_COI in event.explanation
        assert event.manufacturing_site_id == GMP
        assert event.refused_at == clock.now
    assert not events_of(app, Batch.Started)
    assert not events_of(app, ReceivedUnit.AllocatedToBatch)


def test_a_batch_from_units_bound_to_their_one_coi_starts(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    first, second = receive(app, facts, 1), receive(app, facts, 2)
    facts.bind(first, COI)
    facts.bind(second, COI)

    app.start_batch([first, second], None, operator())

    assert not events_of(app, BatchInputsMismatch.Recorded)
    assert len(events_of(app, Batch.Started)) == 1
