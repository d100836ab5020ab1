"""Post-release failure alerts at the treating site and their e-signed acknowledgement by the
treating physician (re-authentication, signer role "physician", the manifestation bound to
the hash of the signed record and shown with the alert)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_infusion.application import InfusionApplication
from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, ReauthenticationFailed, Refused
from v2v_platform.esign import SignatureRequest, record_hash
from v2v_testkit.infusion import (
    AUDITOR_SCOPE,
    BATCH,
    COI,
    OTHER_BATCH,
    OTHER_COI,
    OTHER_SITE,
    OTHER_SITE_SCOPE,
    PASSWORD,
    PHYSICIAN_ID,
    PHYSICIAN_NAME,
    SIGNATURE_REQUEST,
    WARD_SCOPE,
    Clock,
    InMemoryFacts,
    kinds,
    nurse,
    physician,
    product_din,
    receive_released,
    stored_events,
)

DECISION = "do not infuse; second product requested"


def test_failures_of_cois_treated_here_or_of_batches_received_here_are_alerts(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.enrol(COI)
    facts.enrol(OTHER_COI, OTHER_SITE)
    treated_here = facts.fail("f-treated-here", BATCH, COI)
    facts.fail("f-elsewhere", OTHER_BATCH, OTHER_COI, raised_at=treated_here.raised_at)
    assert [a.failure_id for a in app.list_alerts(WARD_SCOPE)] == ["f-treated-here"]
    din = product_din(5)
    facts.create_products([din], OTHER_COI, OTHER_BATCH)
    facts.enrol(OTHER_COI)  # treated here when its unit was received (issue 13: only then) ...
    app.receive_product(din, None, nurse())  # a unit of the other batch is here now
    facts.enrol(OTHER_COI, OTHER_SITE)  # ... then its treatment moved: the unit is still here
    facts.alerts["f-elsewhere"] = facts.fail(
        "f-elsewhere", OTHER_BATCH, OTHER_COI, dins=[din], raised_at=treated_here.raised_at
    )
    alerts = app.list_alerts(WARD_SCOPE)
    assert {a.failure_id for a in alerts} == {"f-treated-here", "f-elsewhere"}
    [elsewhere] = [a for a in alerts if a.failure_id == "f-elsewhere"]
    assert (elsewhere.test, elsewhere.value, elsewhere.criterion) == (
        "sterility",
        "positive",
        "negative",
    )
    assert not elsewhere.acknowledged and elsewhere.physician_signature is None


def test_the_physician_acknowledges_with_an_e_signature(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts)
    facts.enrol()
    alert = facts.fail(dins=[din])
    view = app.acknowledge_alert(alert.failure_id, DECISION, SIGNATURE_REQUEST, physician())
    signed = {
        "failure_id": alert.failure_id,
        "coi": COI,
        "batch_id": BATCH,
        "test": "sterility",
        "product_dins": [din],
        "decision": DECISION,
    }
    assert view.acknowledged and view.decision == DECISION
    assert view.physician_signature == {
        "user_id": PHYSICIAN_ID,
        "printed_name": PHYSICIAN_NAME,
        "meaning": "responsibility",
        "signed_at": clock.now.isoformat(),
        "record_hash": record_hash(signed),
    }
    event = stored_events(app)[-1]
    assert isinstance(event, FailureAcknowledgement.Acknowledged)
    assert (event.coi, event.failure_id, event.product_dins) == (COI, alert.failure_id, [din])
    assert event.physician_signature == view.physician_signature
    assert event.signature_meaning == "responsibility"
    assert app.list_alerts(WARD_SCOPE, unacknowledged_only=True) == []
    [shown] = app.list_alerts(WARD_SCOPE)
    assert shown.physician_signature == view.physician_signature  # shown with the record
    assert app.product_unit(din, WARD_SCOPE).unacknowledged_failure_ids == []


def acknowledgement_refused(
    app: InfusionApplication,
    error: type[Exception],
    match: str,
    request: SignatureRequest = SIGNATURE_REQUEST,
    decision: str = DECISION,
    failure_id: str = "failure-1",
) -> None:
    before = kinds(app)
    with pytest.raises(error, match=match):
        app.acknowledge_alert(failure_id, decision, request, physician())
    assert kinds(app) == before


@pytest.fixture
def alert(facts: InMemoryFacts) -> str:
    facts.enrol()
    return facts.fail().failure_id


def test_a_wrong_password_fails_re_authentication(app: InfusionApplication, alert: str) -> None:
    wrong = SignatureRequest(PHYSICIAN_ID, "not the password", "responsibility")
    acknowledgement_refused(app, ReauthenticationFailed, "re-authentication", wrong)


def test_only_a_physician_signs(app: InfusionApplication, alert: str) -> None:
    as_nurse = SignatureRequest("u-nurse", PASSWORD, "responsibility")
    before = kinds(app)
    with pytest.raises(Forbidden, match="may not sign as physician"):
        app.acknowledge_alert(alert, DECISION, as_nurse, nurse("u-nurse"))
    assert kinds(app) == before


def test_the_physician_signs_their_own_acknowledgement(
    app: InfusionApplication, alert: str
) -> None:
    before = kinds(app)
    with pytest.raises(InvalidInput, match="signs their own"):
        app.acknowledge_alert(alert, DECISION, SIGNATURE_REQUEST, nurse())
    assert kinds(app) == before


def test_a_decision_is_required(app: InfusionApplication, alert: str) -> None:
    acknowledgement_refused(app, InvalidInput, "decision is required", decision="  ")


def test_an_unknown_failure_is_not_found(app: InfusionApplication, alert: str) -> None:
    acknowledgement_refused(app, NotFound, "no post-release failure", failure_id="nope")


def test_a_failure_of_another_sites_patient_is_not_acknowledged_here(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.enrol(OTHER_COI, OTHER_SITE)
    facts.fail("f-other", OTHER_BATCH, OTHER_COI)
    acknowledgement_refused(app, NotFound, "no post-release failure", failure_id="f-other")


def test_a_failure_is_acknowledged_once(app: InfusionApplication, alert: str, clock: Clock) -> None:
    app.acknowledge_alert(alert, DECISION, SIGNATURE_REQUEST, physician())
    clock.advance(minutes=5)
    acknowledgement_refused(app, Refused, "already acknowledged")


def test_the_unit_view_lists_unacknowledged_failures(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts)
    facts.fail("f-1", dins=[din])
    facts.fail("f-2", dins=[din], raised_at=clock.now + timedelta(minutes=1))
    view = app.product_unit(din, WARD_SCOPE)
    assert view.unacknowledged_failure_ids == ["f-1", "f-2"]
    assert (view.release_status, view.status) == ("provisional", "received")
    assert app.product_unit(product_din(1), WARD_SCOPE).coi == COI
    facts.create_products([product_din(2)])
    expected = app.product_unit(product_din(2), WARD_SCOPE)
    assert (expected.status, expected.unacknowledged_failure_ids) == ("expected", ["f-1", "f-2"])
    with pytest.raises(NotFound):
        app.product_unit(product_din(3), WARD_SCOPE)


def test_a_reader_of_another_site_sees_nothing_recorded_here_an_auditor_sees_all(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    facts.create_products([product_din(2)])
    facts.enrol()
    facts.fail(dins=[din])
    for unknown_here in (din, product_din(2), product_din(3)):
        with pytest.raises(NotFound):  # as if absent
            app.product_unit(unknown_here, OTHER_SITE_SCOPE)
    assert app.list_alerts(OTHER_SITE_SCOPE) == []
    assert app.product_unit(din, AUDITOR_SCOPE).status == "received"
    assert app.product_unit(product_din(2), AUDITOR_SCOPE).status == "expected"
    assert [a.failure_id for a in app.list_alerts(AUDITOR_SCOPE)] == ["failure-1"]
