"""Batches: one COI (I1), the fresh window and its signed override, steps, QC, harvest, failure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.din_sequence import ProductDinSequence
from v2v_manufacturing.domain.values import (
    ProcessStep,
    QcResult,
    StepKind,
)
from v2v_platform.attribution import SignatureManifestation, WindowOverride
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.ids import Din
from v2v_platform.protocol_rules import DEFAULT_RULES
from v2v_platform.scope import Scope
from v2v_testkit.manufacturing import (
    COI,
    DIN_BLOCK,
    FIN,
    OTHER_COI,
    OTHER_GMP,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    build_app,
    operator,
    receive,
)

APPROVAL = SignatureManifestation(
    "u-qp", "Dr. Quinn Person", "approval", datetime(2025, 6, 3, 12, tzinfo=UTC)
)
OVERRIDE = WindowOverride("patient cannot wait; cells checked viable", APPROVAL)
PRODIGY = ProcessStep(StepKind.SELECTION, "CliniMACS Prodigy", "PRD-0042", ("CD4/CD8-L1",))
MANUFACTURER = Scope.of(CallerIdentity("GMP-B", frozenset({Role.MANUFACTURING})))


def events_of(app: ManufacturingApplication, kind: type) -> list:  # type: ignore[type-arg]
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, kind)]


def start(app: ManufacturingApplication, *dins: str) -> str:
    return app.start_batch(list(dins), None, operator()).batch_id


def test_batch_from_units_of_one_coi(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    dins = [receive(app, facts, 1), receive(app, facts, 2)]
    view = app.start_batch(dins, None, operator())
    assert (view.coi, view.input_dins, view.status) == (COI, dins, "running")
    [started] = events_of(app, Batch.Started)
    assert started.fresh_window_hours == 48 and not started.window_overridden
    assert started.protocol_rules == "v1"  # the built-in rules, unchanged
    assert started.signature_meaning == "" and started.override_signature is None


def test_mixed_cois_are_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    mine, theirs = receive(app, facts, 1), receive(app, facts, 2, coi=OTHER_COI)
    with pytest.raises(Refused, match="different COIs"):
        start(app, mine, theirs)
    assert not events_of(app, Batch.Started)
    start(app, mine)  # the refused attempt allocated nothing


def test_unreceived_or_listed_twice_inputs_are_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = receive(app, facts, 1)
    with pytest.raises(Refused, match="not been received"):
        start(app, din, apheresis_din(2))
    with pytest.raises(InvalidInput, match="twice"):
        start(app, din, din)
    with pytest.raises(InvalidInput):
        start(app)
    with pytest.raises(InvalidInput):
        start(app, "garbage")


def test_unit_feeds_one_batch_only(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = receive(app, facts, 1)
    start(app, din)
    with pytest.raises(Refused, match="already an input"):
        start(app, din)


def test_unit_received_elsewhere_cannot_start_a_batch_here(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = receive(app, facts, 1)
    with pytest.raises(Forbidden):
        app.start_batch([din], None, operator(OTHER_GMP))


def test_fresh_input_past_48h_is_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    din = receive(app, facts, 1)
    clock.advance(hours=28, seconds=1)  # 48 h + 1 s after collection end
    with pytest.raises(Refused, match="48 h window"):
        start(app, din)
    assert not events_of(app, Batch.Started)


def test_fresh_input_exactly_at_48h_is_accepted(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    din = receive(app, facts, 1)
    clock.advance(hours=28)
    start(app, din)


def test_late_fresh_input_with_signed_override_is_recorded(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    din = receive(app, facts, 1, condition=Condition.FRESH_AMBIENT)
    clock.advance(hours=40)
    view = app.start_batch([din], OVERRIDE, operator())
    assert view.window_overridden
    [started] = events_of(app, Batch.Started)
    assert started.reason == OVERRIDE.reason and started.signature_meaning == "approval"
    assert started.override_signature == APPROVAL.as_dict()


def test_override_needs_reason_and_approval_signature() -> None:
    with pytest.raises(InvalidInput, match="reason"):
        WindowOverride(" ", APPROVAL)
    review = SignatureManifestation("u-qp", "Dr. Q", "review", APPROVAL.signed_at)
    with pytest.raises(InvalidInput, match="approval"):
        WindowOverride("why", review)


def test_cryo_input_has_no_48h_rule(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    din = receive(app, facts, 1, condition=Condition.CRYO)
    clock.advance(days=60)
    start(app, din)


def test_window_is_configurable_and_recorded(
    facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    from dataclasses import replace
    from datetime import timedelta

    rules = replace(DEFAULT_RULES, fresh_apheresis=timedelta(hours=24))
    app = build_app(facts, clock, rules=rules)
    din = receive(app, facts, 1)
    clock.advance(hours=5)  # 25 h
    with pytest.raises(Refused, match="24 h window"):
        start(app, din)
    signed_now = replace(OVERRIDE, signature=replace(APPROVAL, signed_at=clock()))
    app.start_batch([din], signed_now, operator())
    assert events_of(app, Batch.Started)[0].fresh_window_hours == 24
    assert events_of(app, Batch.Started)[0].protocol_rules == rules.tag != "v1"


def test_steps_qc_and_harvest_with_lineage(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    dins = [receive(app, facts, 1), receive(app, facts, 2)]
    batch_id = start(app, *dins)
    transduction = ProcessStep(
        StepKind.TRANSDUCTION,
        "Lonza Cocoon",
        "COC-7",
        ("TexMACS-L9",),
        "LV-CD19-0031",
        {"MOI": "5"},
    )
    app.record_process_step(batch_id, PRODIGY, operator())
    app.record_process_step(batch_id, transduction, operator())
    app.record_in_process_qc(batch_id, QcResult("viability", 92.5, "%", True), operator())
    products = app.harvest(batch_id, 2, Condition.CRYO, operator())
    assert [Din.parse(p).fin for p in products] == [FIN, FIN]
    view = app.batch(batch_id, MANUFACTURER)
    assert (view.status, view.coi, view.input_dins, view.product_dins) == (
        "harvested",
        COI,
        dins,
        products,
    )
    assert view.hold_condition is Condition.CRYO
    assert [s.step_kind for s in view.steps] == ["selection", "transduction"]
    assert view.steps[1].vector_lot == "LV-CD19-0031" and view.steps[1].parameters == {"MOI": "5"}
    assert view.qc_results == [QcResult("viability", 92.5, "%", True)]
    [created] = events_of(app, Batch.ProductUnitsCreated)
    assert created.coi == COI and created.input_dins == dins  # outputs inherit the COI (I1)


def test_product_dins_never_repeat_across_batches(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    first = app.harvest(start(app, receive(app, facts, 1)), 2, Condition.FRESH_COLD, operator())
    second_cycle = start(app, receive(app, facts, 2))  # a second batch for the same COI
    second = app.harvest(second_cycle, 3, Condition.FRESH_COLD, operator())
    assert len(set(first + second)) == 5
    assert app.batch(second_cycle, MANUFACTURER).coi == COI


def test_product_din_sequence_is_internal_and_published_only_as_the_batch_products(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = start(app, receive(app, facts, 1))
    products = app.harvest(batch_id, 2, Condition.CRYO, operator())
    assert not events_of(app, ProductDinSequence.DinsReserved)  # not in the outbox
    registered = app.unpublished.recorder.select_notifications(1, 100)
    reserved = [app.unpublished.mapper.to_domain_event(n) for n in registered]
    [reservation] = [e for e in reserved if isinstance(e, ProductDinSequence.DinsReserved)]
    assert (reservation.batch_id, reservation.batch_coi, reservation.count) == (batch_id, COI, 2)
    assert events_of(app, Batch.ProductUnitsCreated)[0].product_dins == products


def test_retried_harvest_gets_the_same_dins(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    """A crash after the DINs were reserved, before the batch was saved: no DIN is lost."""
    batch_id = start(app, receive(app, facts, 1))
    by = operator()
    reserved = app.unpublished.reserve_product_dins(FIN, clock.now.year % 100, 2, batch_id, COI, by)
    assert not events_of(app, Batch.ProductUnitsCreated)  # "crashed" here
    products = app.harvest(batch_id, 2, Condition.CRYO, by)
    assert products == [str(din) for din in reserved]
    other = app.harvest(start(app, receive(app, facts, 2)), 2, Condition.CRYO, by)
    assert not set(other) & set(products)


def test_retried_harvest_with_another_count_gets_new_dins(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    batch_id = start(app, receive(app, facts, 1))
    year = clock.now.year % 100
    reserved = app.unpublished.reserve_product_dins(FIN, year, 2, batch_id, COI, operator())
    products = app.harvest(batch_id, 3, Condition.CRYO, operator())
    assert len(products) == 3 and not set(products) & {str(d) for d in reserved}


def test_din_sequence_survives_snapshots(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    by = operator()
    issued = {
        str(din)
        for n in range(130)  # past the snapshotting interval (100)
        for din in app.unpublished.reserve_product_dins(FIN, 25, 1, f"batch-{n}", COI, by)
    }
    assert len(issued) == 130
    again = app.unpublished.reserve_product_dins(FIN, 25, 1, "batch-7", COI, by)
    assert str(again[0]) in issued  # remembered across the snapshot
    [next_din] = app.unpublished.reserve_product_dins(FIN, 25, 1, "batch-new", COI, by)
    # the 131st number of GMP's block (product DINs start at its first number: issue 14)
    expected = f"{DIN_BLOCK.first + 130:06d}"
    assert str(next_din) not in issued and Din.parse(str(next_din)).sequence == expected


def test_transduction_needs_vector_lot_and_devices_are_required() -> None:
    with pytest.raises(InvalidInput, match="vector lot"):
        ProcessStep(StepKind.TRANSDUCTION, "Lonza Cocoon", "COC-7")
    with pytest.raises(InvalidInput, match="device serial"):
        ProcessStep(StepKind.EXPANSION, "Lonza Cocoon", " ")
    with pytest.raises(InvalidInput, match="QC unit"):
        QcResult("viability", 90.0, "", True)


def test_failed_batch_accepts_nothing_more(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = start(app, receive(app, facts, 1))
    with pytest.raises(InvalidInput, match="reason"):
        app.fail_batch(batch_id, operator())
    app.fail_batch(batch_id, operator().because("contamination suspected"))
    view = app.batch(batch_id, MANUFACTURER)
    assert (view.status, view.failure_reason) == ("failed", "contamination suspected")
    with pytest.raises(Refused, match="failed"):
        app.harvest(batch_id, 1, Condition.CRYO, operator())
    with pytest.raises(Refused, match="failed"):
        app.record_process_step(batch_id, PRODIGY, operator())
    with pytest.raises(Refused, match="failed"):
        app.fail_batch(batch_id, operator().because("again"))


def test_harvested_batch_accepts_nothing_more(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = start(app, receive(app, facts, 1))
    app.harvest(batch_id, 1, Condition.FRESH_COLD, operator())
    with pytest.raises(Refused, match="harvested"):
        app.record_in_process_qc(batch_id, QcResult("CD3", 80.0, "%", True), operator())
    with pytest.raises(Refused, match="harvested"):
        app.harvest(batch_id, 1, Condition.FRESH_COLD, operator())


def test_harvest_count_must_be_sensible(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = start(app, receive(app, facts, 1))
    for count in (0, 21):
        with pytest.raises(InvalidInput):
            app.harvest(batch_id, count, Condition.CRYO, operator())


def test_only_the_batch_site_changes_it_and_reads_it(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = start(app, receive(app, facts, 1))
    with pytest.raises(Forbidden):
        app.record_process_step(batch_id, PRODIGY, operator(OTHER_GMP))
    with pytest.raises(Forbidden):
        app.harvest(batch_id, 1, Condition.CRYO, operator(OTHER_GMP))
    with pytest.raises(NotFound, match=f"is visible to site {OTHER_GMP}"):  # as if absent
        app.batch(batch_id, Scope.of(CallerIdentity(OTHER_GMP, frozenset({Role.MANUFACTURING}))))
    auditor = Scope.of(CallerIdentity("AUDIT-1", frozenset({Role.AUDITOR})))
    assert app.batch(batch_id, auditor).batch_id == batch_id


def test_unknown_or_malformed_batch(app: ManufacturingApplication) -> None:
    from v2v_platform.errors import NotFound

    with pytest.raises(InvalidInput):
        app.batch("not-a-uuid", MANUFACTURER)
    with pytest.raises(NotFound):
        app.batch("00000000-0000-4000-8000-000000000000", MANUFACTURER)


def test_harvest_needs_a_configured_fin(facts: InMemoryManufacturingFacts, clock: Clock) -> None:
    app = build_app(facts, clock, fin="")
    batch_id = start(app, receive(app, facts, 1))
    with pytest.raises(Refused, match="V2V_FIN"):
        app.harvest(batch_id, 1, Condition.CRYO, operator())
