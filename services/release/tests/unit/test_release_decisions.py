"""Provisional and final certification, rejection and post-release failures: each refusal, the
QP's e-signature (re-authentication, signing role) and its manifestation bound to the record."""

from __future__ import annotations

import pytest

from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput, ReauthenticationFailed, Refused
from v2v_platform.esign import record_hash
from v2v_release.application import ReleaseApplication
from v2v_testkit.release import (
    BATCH_ID,
    COI,
    POST_RELEASE,
    PRE_RELEASE,
    PRODUCT_DINS,
    Clock,
    InMemoryReleaseFacts,
    kinds,
    qc,
    qp_signature,
    reader,
    record,
    report,
    stored_events,
)


def certified(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE)
    app.certify_provisionally(BATCH_ID, qp_signature(), qc())


def test_provisional_certification_is_signed_over_its_record(
    app: ReleaseApplication, clock: Clock
) -> None:
    results = record(app, PRE_RELEASE)
    view = app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    assert view.status == "provisionally-certified"
    assert view.pending_tests == POST_RELEASE
    [decision] = view.decisions
    signed = {
        "batch_id": BATCH_ID,
        "coi": COI,
        "decision": "provisional",
        "spec_version": "v1",
        "product_dins": list(PRODUCT_DINS),
        "results": {test: r.result_id for test, r in results.items()},
    }
    assert (decision.decision, decision.decided_at) == ("provisional", clock.now)
    assert decision.signature == {
        "user_id": "u-qp",
        "printed_name": "Dr. Quinn Person",
        "meaning": "approval",
        "signed_at": clock.now.isoformat(),
        "record_hash": record_hash(signed),
    }
    event = stored_events(app)[-1]
    assert type(event).__name__ == "ProvisionallyCertified"
    assert event.qp_signature == decision.signature and event.signature_meaning == "approval"
    assert event.pending_tests == POST_RELEASE and event.product_dins == list(PRODUCT_DINS)


def test_only_fresh_product_is_certified_provisionally(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    facts.harvested(condition=Condition.CRYO)
    record(app, PRE_RELEASE)
    with pytest.raises(Refused, match="cryopreserved; only fresh product"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc())


def test_provisional_needs_every_pre_release_test_passed(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE[:-1])
    with pytest.raises(Refused, match="no result yet for: mycoplasma"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    record(app, ["mycoplasma"], mycoplasma="positive")
    with pytest.raises(Refused, match="failed: mycoplasma"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    assert "ProvisionallyCertified" not in kinds(app)


def test_provisional_only_from_open(app: ReleaseApplication) -> None:
    certified(app)
    with pytest.raises(Refused, match="provisionally-certified; it can be certified provisionally"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc())


def test_a_failed_re_authentication_signs_nothing(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE)
    with pytest.raises(ReauthenticationFailed, match="re-authentication of 'u-qp' failed"):
        app.certify_provisionally(BATCH_ID, qp_signature("wrong password"), qc())
    with pytest.raises(ReauthenticationFailed, match="no signer 'u-nobody'"):
        app.certify_provisionally(BATCH_ID, qp_signature(user="u-nobody"), qc())
    assert app.batch_release(BATCH_ID, reader()).status == "open"
    assert "ProvisionallyCertified" not in kinds(app)


def test_a_signer_without_the_qp_role_may_not_certify(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE)
    with pytest.raises(Forbidden, match="may not sign as qp"):
        app.certify_provisionally(BATCH_ID, qp_signature(user="u-analyst"), qc())


def test_no_decision_on_a_failed_batch_or_without_product_units(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    record(app, PRE_RELEASE)
    facts.failed(reason="no expansion")
    with pytest.raises(Refused, match=r"reported batch .* as failed \(no expansion\)"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    with pytest.raises(Refused, match="as failed"):
        app.reject(BATCH_ID, "failed", qp_signature(), qc())
    facts.started()  # started again, not harvested: no product units
    with pytest.raises(Refused, match="has no product units yet"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    with pytest.raises(Refused, match="has no product units yet"):
        app.certify_finally(BATCH_ID, qp_signature(), qc())


def test_results_before_harvest_are_kept_and_the_view_fills_in_the_units(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    facts.started()
    record(app, PRE_RELEASE)
    assert stored_events(app)[0].product_dins == []
    facts.harvested()
    view = app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    assert view.product_dins == list(PRODUCT_DINS) and view.condition is Condition.FRESH_COLD


def test_final_certification_from_open_or_provisional(app: ReleaseApplication) -> None:
    certified(app)
    record(app, POST_RELEASE)
    view = app.certify_finally(BATCH_ID, qp_signature(), qc())
    assert view.status == "finally-certified"
    assert [d.decision for d in view.decisions] == ["provisional", "final"]
    assert view.decisions[1].signature["record_hash"] != view.decisions[0].signature["record_hash"]
    with pytest.raises(Refused, match="finally-certified; it can be certified finally"):
        app.certify_finally(BATCH_ID, qp_signature(), qc())


def test_final_certification_straight_from_open_for_cryo_product(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    facts.harvested(condition=Condition.CRYO)
    record(app, PRE_RELEASE + POST_RELEASE)
    assert app.certify_finally(BATCH_ID, qp_signature(), qc()).status == "finally-certified"


def test_final_needs_every_result_and_all_passed(app: ReleaseApplication) -> None:
    record(app, [*PRE_RELEASE, "sterility", "vcn"])
    with pytest.raises(Refused, match="no result yet for: rcl"):
        app.certify_finally(BATCH_ID, qp_signature(), qc())
    record(app, ["rcl"], rcl="detected")
    with pytest.raises(Refused, match="failed: rcl"):
        app.certify_finally(BATCH_ID, qp_signature(), qc())


def test_a_failure_after_provisional_release_is_recorded_in_the_same_save(
    app: ReleaseApplication,
) -> None:
    certified(app)
    passing = app.record_qc_result(BATCH_ID, report("vcn"), None, qc())
    assert passing.post_release_failure_id == ""
    before = len(stored_events(app))
    failing = app.record_qc_result(BATCH_ID, report("sterility", "positive"), None, qc())
    assert failing.post_release_failure_id == failing.result_id
    recorded, failure = stored_events(app)[before:]
    assert type(recorded).__name__ == "QcResultRecorded" and not recorded.passed
    assert type(failure).__name__ == "PostReleaseFailureRecorded"
    assert failure.originator_version == recorded.originator_version + 1
    assert (failure.failure_id, failure.test, failure.value) == (
        failing.result_id,
        "sterility",
        "positive",
    )
    assert (failure.released_as, failure.criterion) == ("provisional", "negative")
    assert failure.product_dins == list(PRODUCT_DINS)
    view = app.batch_release(BATCH_ID, reader())
    assert view.post_release_failure_ids == [failing.result_id]
    assert view.failed_tests == ["sterility"]


def test_no_final_certification_after_a_post_release_failure(app: ReleaseApplication) -> None:
    certified(app)
    failing = app.record_qc_result(BATCH_ID, report("sterility", "positive"), None, qc())
    record(app, ["vcn", "rcl"])
    with pytest.raises(Refused, match=f"post-release failure \\({failing.result_id}\\)"):
        app.certify_finally(BATCH_ID, qp_signature(), qc())


def test_a_failure_before_any_release_is_no_post_release_failure(
    app: ReleaseApplication,
) -> None:
    failing = app.record_qc_result(BATCH_ID, report("sterility", "positive"), None, qc())
    assert failing.post_release_failure_id == "" and not failing.passed
    assert "PostReleaseFailureRecorded" not in kinds(app)


def test_rejection_needs_a_reason_and_is_signed(app: ReleaseApplication) -> None:
    record(app, ["viability"], viability="40")
    with pytest.raises(InvalidInput, match="needs a reason"):
        app.reject(BATCH_ID, "  ", qp_signature(), qc())
    view = app.reject(BATCH_ID, "viability far below specification", qp_signature(), qc())
    assert view.status == "rejected"
    [decision] = view.decisions
    assert decision.reason == "viability far below specification"
    signed = {
        "batch_id": BATCH_ID,
        "coi": COI,
        "decision": "rejected",
        "spec_version": "v1",
        "product_dins": list(PRODUCT_DINS),
        "reason": "viability far below specification",
        "failed_tests": ["viability"],
    }
    assert decision.signature["record_hash"] == record_hash(signed)
    event = stored_events(app)[-1]
    assert (event.reason, event.failed_tests) == (decision.reason, ["viability"])


def test_rejection_from_provisional_but_not_after_final_or_rejection(
    app: ReleaseApplication,
) -> None:
    certified(app)
    assert app.reject(BATCH_ID, "recall", qp_signature(), qc()).status == "rejected"
    with pytest.raises(Refused, match="rejected; it can be rejected only when"):
        app.reject(BATCH_ID, "again", qp_signature(), qc())


def test_rejection_refused_after_final_certification(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    facts.harvested(condition=Condition.CRYO)
    record(app, PRE_RELEASE + POST_RELEASE)
    app.certify_finally(BATCH_ID, qp_signature(), qc())
    with pytest.raises(Refused, match="finally-certified; it can be rejected only when"):
        app.reject(BATCH_ID, "changed my mind", qp_signature(), qc())


def test_decisions_come_from_this_site_only(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE)
    with pytest.raises(Forbidden, match="not QC-9"):
        app.certify_provisionally(BATCH_ID, qp_signature(), qc("QC-9"))
