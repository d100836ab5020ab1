"""OOS exceptional release: the QP's signed justification, then the treating physician's signed
acceptance from the COI's treating site; failures after that are post-release failures."""

from __future__ import annotations

import pytest

from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, ReauthenticationFailed, Refused
from v2v_platform.esign import SignatureRequest, record_hash
from v2v_release.application import ReleaseApplication
from v2v_testkit.release import (
    BATCH_ID,
    COI,
    OTHER_SITE,
    PASSWORD,
    POST_RELEASE,
    PRE_RELEASE,
    PRODUCT_DINS,
    QC_SITE,
    TREATING_SITE,
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


def justified(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE, viability="65")
    app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())


def test_the_qp_justifies_a_failed_fresh_batch_before_post_release_results(
    app: ReleaseApplication,
) -> None:
    record(app, PRE_RELEASE, viability="65")
    view = app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())
    assert view.status == "oos-justified"
    [decision] = view.decisions
    assert (decision.decision, decision.reason) == ("oos-justified", WHY)
    signed = {
        "batch_id": BATCH_ID,
        "coi": COI,
        "decision": "oos-justified",
        "spec_version": "v1",
        "product_dins": list(PRODUCT_DINS),
        "failed_tests": ["viability"],
        "justification": WHY,
    }
    assert decision.signature["record_hash"] == record_hash(signed)
    event = stored_events(app)[-1]
    assert (event.justification, event.reason, event.failed_tests) == (WHY, WHY, ["viability"])


def test_justification_needs_a_failed_test(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE)
    with pytest.raises(Refused, match="no failed test: nothing to justify"):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())


def test_justification_needs_its_text(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE, viability="65")
    with pytest.raises(InvalidInput, match="needs the QP's justification"):
        app.justify_oos_release(BATCH_ID, " ", qp_signature(), qc())


def test_fresh_product_needs_every_pre_release_result(app: ReleaseApplication) -> None:
    record(app, ["viability"], viability="65")
    with pytest.raises(Refused, match="no result yet for: car, cd3, dose, endotoxin, mycoplasma"):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())


def test_cryo_product_needs_every_result(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    facts.harvested(condition=Condition.CRYO)
    record(app, PRE_RELEASE, viability="65")
    with pytest.raises(Refused, match="no result yet for: rcl, sterility, vcn"):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())
    record(app, POST_RELEASE)
    assert app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc()).status == "oos-justified"


def test_justification_is_signed_by_a_qp(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE, viability="65")
    with pytest.raises(Forbidden, match="may not sign as qp"):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(user="u-analyst"), qc())
    with pytest.raises(ReauthenticationFailed):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature("not it at all"), qc())


def test_no_justification_twice_or_after_rejection(app: ReleaseApplication) -> None:
    justified(app)
    with pytest.raises(Refused, match="oos-justified; it can be justified for OOS release"):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())
    assert app.reject(BATCH_ID, "physician declined", qp_signature(), qc()).status == "rejected"
    with pytest.raises(Refused, match="rejected; it can be justified"):
        app.justify_oos_release(BATCH_ID, WHY, qp_signature(), qc())


def test_the_treating_physician_accepts_and_the_batch_is_oos_released(
    app: ReleaseApplication,
) -> None:
    justified(app)
    qp_hash = app.batch_release(BATCH_ID, reader()).decisions[0].signature["record_hash"]
    view = app.accept_oos_release(BATCH_ID, physician_signature(), physician())
    assert view.status == "oos-released"
    accepted = view.decisions[-1]
    assert accepted.decision == "oos-accepted"
    assert (accepted.signature["printed_name"], accepted.signature["meaning"]) == (
        "Dr. Tara Treat",
        "responsibility",
    )
    signed = {
        "batch_id": BATCH_ID,
        "coi": COI,
        "decision": "oos-accepted",
        "spec_version": "v1",
        "product_dins": list(PRODUCT_DINS),
        "failed_tests": ["viability"],
        "justification_hash": qp_hash,
    }
    assert accepted.signature["record_hash"] == record_hash(signed)
    event = stored_events(app)[-1]
    assert event.treating_site_id == TREATING_SITE
    assert event.site_id == QC_SITE  # authored (and signed on Kafka) by this service's site
    assert event.actor["role"] == "infusion"
    assert event.physician_signature == accepted.signature


def test_acceptance_only_from_the_treating_site(app: ReleaseApplication) -> None:
    """Any other site is told the batch does not exist (issue 13), and nothing is recorded."""
    justified(app)
    recorded = kinds(app)
    with pytest.raises(NotFound, match=f"no batch {BATCH_ID} is visible to site {OTHER_SITE}"):
        app.accept_oos_release(BATCH_ID, physician_signature(), physician(OTHER_SITE))
    assert kinds(app) == recorded


def test_acceptance_refused_while_the_treating_site_is_unknown(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    justified(app)
    facts.treating_sites.clear()
    with pytest.raises(NotFound, match=f"no batch {BATCH_ID} is visible to site {TREATING_SITE}"):
        app.accept_oos_release(BATCH_ID, physician_signature(), physician())


def test_acceptance_needs_a_physician_signature(app: ReleaseApplication) -> None:
    justified(app)
    with pytest.raises(ReauthenticationFailed):
        app.accept_oos_release(BATCH_ID, physician_signature("wrong one!"), physician())
    # the QP is registered at the QC site, not at the treating site
    qp_at_hospital = SignatureRequest("u-qp", PASSWORD, "approval")
    with pytest.raises(ReauthenticationFailed, match="no signer 'u-qp' is registered for site"):
        app.accept_oos_release(BATCH_ID, qp_at_hospital, physician())
    assert app.batch_release(BATCH_ID, reader()).status == "oos-justified"


def test_acceptance_needs_a_signer_with_the_physician_role(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    justified(app)
    facts.enrolled(treating_site_id=QC_SITE)  # the QP's site: the QP is no physician
    with pytest.raises(Forbidden, match="may not sign as physician"):
        app.accept_oos_release(BATCH_ID, qp_signature(), physician(QC_SITE))


def test_acceptance_only_of_a_justified_batch(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE, viability="65")
    with pytest.raises(Refused, match="open; it can be accepted for OOS release only when"):
        app.accept_oos_release(BATCH_ID, physician_signature(), physician())


def test_acceptance_of_a_batch_without_record_is_refused(app: ReleaseApplication) -> None:
    with pytest.raises(Refused, match="has no release record: nothing to accept"):
        app.accept_oos_release(BATCH_ID, physician_signature(), physician())


def test_a_failure_after_oos_release_is_a_post_release_failure(app: ReleaseApplication) -> None:
    justified(app)
    app.accept_oos_release(BATCH_ID, physician_signature(), physician())
    failing = app.record_qc_result(BATCH_ID, report("rcl", "detected"), None, qc())
    assert failing.post_release_failure_id == failing.result_id
    failure = stored_events(app)[-1]
    assert (type(failure).__name__, failure.released_as) == ("PostReleaseFailureRecorded", "oos")
    assert kinds(app).count("PostReleaseFailureRecorded") == 1
