"""Clinical time on every release fact (issue 14): each result and decision carries when it
happened in the lab (optional, default now), kept apart from when it was recorded (the
event's timestamp, the envelope's `recorded_at`) and from when the QP signed (the
signature's `signed_at`, the server's time). The chain stays causal: no QC result before the
batch started, no decision before the harvest, before the results it rests on or before the
decision it follows; each refusal is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from v2v.common.v1.common_pb2 import CONDITION_FRESH_COLD
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.errors import InvalidInput
from v2v_platform.proto_values import timestamp
from v2v_release.adapters.facts_projection import CONSUMER_NAME, FACTS_FEED, FactsProjection
from v2v_release.adapters.payloads import TRANSLATOR
from v2v_release.application import ReleaseApplication
from v2v_testkit.release import (
    BATCH_ID,
    HARVESTED_AT,
    POST_RELEASE,
    PRE_RELEASE,
    STARTED_AT,
    Clock,
    InMemoryReleaseFacts,
    kinds,
    physician,
    physician_signature,
    qc,
    qp_signature,
    reader,
    record,
    report,
    stored_events,
)

WHY = "no alternative therapy; viability 65 % clinically acceptable"


def results_at(app: ReleaseApplication, tests: list[str], at: datetime, **values: str) -> None:
    for test in tests:
        app.record_qc_result(BATCH_ID, report(test, values.get(test), at), None, qc())


def unchanged(app: ReleaseApplication, before: list[str]) -> None:
    assert kinds(app) == before


def test_a_certification_entered_after_the_fact_keeps_when_it_happened(
    app: ReleaseApplication, clock: Clock
) -> None:
    results_at(app, PRE_RELEASE, HARVESTED_AT + timedelta(hours=20))
    certified_at = HARVESTED_AT + timedelta(days=1)
    clock.now = certified_at + timedelta(days=3)  # entered three days later
    view = app.certify_provisionally(BATCH_ID, qp_signature(), qc(), certified_at)
    [decision] = view.decisions
    assert decision.decided_at == certified_at
    assert decision.signature["signed_at"] == clock.now.isoformat()  # the server's time
    event = stored_events(app)[-1]
    assert type(event).__name__ == "ProvisionallyCertified"
    assert event.certified_at == certified_at
    outbound = TRANSLATOR.translate(event)
    assert outbound is not None
    assert outbound.content.occurred_at == certified_at
    assert outbound.content.recorded_at == event.timestamp != certified_at


def test_a_decision_without_a_time_happened_now(app: ReleaseApplication, clock: Clock) -> None:
    record(app, PRE_RELEASE)
    view = app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    assert view.decisions[0].decided_at == clock.now


def test_a_qc_result_carries_its_time_to_the_envelope(app: ReleaseApplication) -> None:
    at = HARVESTED_AT + timedelta(hours=3)
    results_at(app, ["viability"], at)
    event = stored_events(app)[-1]
    outbound = TRANSLATOR.translate(event)
    assert outbound is not None and outbound.content.occurred_at == event.result_at == at


def test_no_qc_result_before_the_batch_started(app: ReleaseApplication) -> None:
    before = kinds(app)
    too_early = report("viability", at=STARTED_AT - timedelta(minutes=1))
    with pytest.raises(InvalidInput, match=r"result_at .* is before the batch's start"):
        app.record_qc_result(BATCH_ID, too_early, None, qc())
    unchanged(app, before)
    on_time = report("viability", at=STARTED_AT)
    assert app.record_qc_result(BATCH_ID, on_time, None, qc()).passed


@pytest.mark.parametrize(
    ("decide", "field"),
    [
        (
            lambda app, at: app.certify_provisionally(BATCH_ID, qp_signature(), qc(), at),
            "certified",
        ),
        (lambda app, at: app.reject(BATCH_ID, "recall", qp_signature(), qc(), at), "rejected"),
    ],
)
def test_no_decision_before_the_harvest(
    app: ReleaseApplication, decide: object, field: str
) -> None:
    results_at(app, PRE_RELEASE, HARVESTED_AT - timedelta(hours=2))  # in-process samples
    before = kinds(app)
    with pytest.raises(InvalidInput, match=rf"{field}_at .* is before the batch's harvest"):
        decide(app, HARVESTED_AT - timedelta(minutes=1))  # type: ignore[operator]
    unchanged(app, before)
    decide(app, HARVESTED_AT)  # type: ignore[operator]


def test_a_harvest_not_known_here_judges_by_the_batch_start(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    """Facts projected before release learnt harvest times know none: the start still holds."""
    facts.harvested(harvested_at=None)
    results_at(app, PRE_RELEASE, STARTED_AT + timedelta(hours=1))
    with pytest.raises(InvalidInput, match=r"certified_at .* is before the batch's start"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc(), STARTED_AT - timedelta(days=1))
    certified_at = STARTED_AT + timedelta(hours=2)
    view = app.certify_provisionally(BATCH_ID, qp_signature(), qc(), certified_at)
    assert view.decisions[0].decided_at == certified_at


def test_no_certification_before_the_results_it_certifies(app: ReleaseApplication) -> None:
    resulted = HARVESTED_AT + timedelta(hours=5)
    results_at(app, PRE_RELEASE, resulted)
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"certified_at .* is before the viability result"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc(), resulted - timedelta(hours=1))
    unchanged(app, before)
    app.certify_provisionally(BATCH_ID, qp_signature(), qc(), resulted)


def test_no_final_certification_before_the_provisional_one(app: ReleaseApplication) -> None:
    results_at(app, PRE_RELEASE, HARVESTED_AT + timedelta(hours=1))
    provisional = HARVESTED_AT + timedelta(hours=6)
    app.certify_provisionally(BATCH_ID, qp_signature(), qc(), provisional)
    results_at(app, POST_RELEASE, HARVESTED_AT + timedelta(hours=2))
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"certified_at .* is before the provisional decision"):
        app.certify_finally(BATCH_ID, qp_signature(), qc(), provisional - timedelta(minutes=1))
    unchanged(app, before)
    view = app.certify_finally(BATCH_ID, qp_signature(), qc(), provisional + timedelta(days=1))
    assert [d.decided_at for d in view.decisions] == [provisional, provisional + timedelta(days=1)]


def test_no_final_certification_before_a_post_release_result(
    app: ReleaseApplication, facts: InMemoryReleaseFacts, clock: Clock
) -> None:
    facts.harvested(condition=Condition.CRYO)
    results_at(app, PRE_RELEASE, HARVESTED_AT + timedelta(hours=1))
    sterility_read = HARVESTED_AT + timedelta(days=14)
    clock.now = sterility_read + timedelta(days=2)
    results_at(app, POST_RELEASE, sterility_read)
    with pytest.raises(InvalidInput, match=r"certified_at .* is before the sterility result"):
        app.certify_finally(BATCH_ID, qp_signature(), qc(), sterility_read - timedelta(days=1))


def test_no_oos_justification_before_its_failed_result_nor_acceptance_before_it(
    app: ReleaseApplication, clock: Clock
) -> None:
    resulted = HARVESTED_AT + timedelta(hours=4)
    results_at(app, PRE_RELEASE, resulted, viability="65")
    with pytest.raises(InvalidInput, match=r"justified_at .* is before the viability result"):
        app.justify_oos_release(
            BATCH_ID, WHY, qp_signature(), qc(), resulted - timedelta(seconds=1)
        )
    justified = resulted + timedelta(hours=1)
    app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc(), justified)
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"accepted_at .* is before the oos-justified decision"):
        app.accept_oos_release(
            BATCH_ID, physician_signature(), physician(), justified - timedelta(minutes=5)
        )
    unchanged(app, before)
    view = app.accept_oos_release(
        BATCH_ID, physician_signature(), physician(), justified + timedelta(hours=2)
    )
    assert view.decisions[-1].decided_at == justified + timedelta(hours=2)
    event = stored_events(app)[-1]
    assert event.accepted_at == justified + timedelta(hours=2)
    assert event.physician_signature["signed_at"] == clock.now.isoformat()


@pytest.mark.parametrize("field", ["certified_at", "rejected_at", "justified_at", "accepted_at"])
def test_a_decision_time_in_the_future_is_invalid(
    app: ReleaseApplication, clock: Clock, field: str
) -> None:
    results_at(app, PRE_RELEASE, HARVESTED_AT + timedelta(hours=1), viability="65")
    future = clock.now + timedelta(hours=1)
    decisions = {
        "certified_at": lambda: app.certify_finally(BATCH_ID, qp_signature(), qc(), future),
        "rejected_at": lambda: app.reject(BATCH_ID, "recall", qp_signature(), qc(), future),
        "justified_at": lambda: app.justify_oos_release(
            BATCH_ID, WHY, qp_signature(), qc(), future
        ),
        "accepted_at": lambda: app.accept_oos_release(
            BATCH_ID, physician_signature(), physician(), future
        ),
    }
    if field == "accepted_at":
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())
    before = kinds(app)
    with pytest.raises(InvalidInput, match=f"{field} .* is in the future"):
        decisions[field]()
    unchanged(app, before)
    assert app.batch_release(BATCH_ID, reader()).status in ("open", "oos-justified")


def test_release_learns_the_harvest_time_from_manufacturing(tmp_path: Path) -> None:
    """ProductUnitsCreated.created_at is the batch's harvest, judged against above."""
    facts = FACTS_FEED.sqlite_facts(tmp_path / "facts.sqlite")
    store = SqliteConsumerStore(tmp_path / "facts.sqlite", CONSUMER_NAME)
    coi = "CHA123425000017"
    started = manufacturing.BatchStarted(
        coi=coi, batch_id=BATCH_ID, manufacturing_site_id="GMP-B", started_at=timestamp(STARTED_AT)
    )
    harvested = manufacturing.ProductUnitsCreated(
        coi=coi,
        batch_id=BATCH_ID,
        product_dins=["W12342500000100"],
        hold_condition=CONDITION_FRESH_COLD,
        created_at=timestamp(HARVESTED_AT),
    )
    signer = SiteSigningKey.from_seed("GMP-B", bytes(range(32)))
    batch = []
    for version, payload in enumerate((harvested, started), start=1):
        content = EnvelopeContent(
            coi=coi,
            aggregate_type="Batch",
            aggregate_id="batch-1",
            aggregate_version=version,
            payload=payload,
            schema_version=1,
            recorded_at=HARVESTED_AT + timedelta(days=2),  # entered after the fact
            site_id="GMP-B",
            actor=Actor("u-op", "Grace Operator", "manufacturing"),
        )
        batch.append(Delivered(build_envelope(content, b"", signer), Location("t"), []))
    with store.transaction() as (unit, ledger):
        apply_once(batch, ledger, unit, FactsProjection())
    fact = facts.batch(BATCH_ID)
    assert fact is not None
    assert (fact.started_at, fact.harvested_at) == (STARTED_AT, HARVESTED_AT)
