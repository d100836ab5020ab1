"""QC release at the GMP site against specification v1: pre-release results, then provisional
certification (fresh product, QP e-signature), final certification (cryopreserved product,
every result in), or an OOS exceptional release (QP justification + the treating physician's
acceptance, both e-signed). After a fresh infusion the slow tests come in: all pass (final
certification) or sterility turns positive (a post-release failure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from v2v.common.v1.common_pb2 import ESignatureRequest, Operator
from v2v.release.v1 import release_service_pb2 as pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.consortium import SIGNING_PASSWORD
from v2v_simulator.journey.context import Journey, JourneyFailed, Unexpected

Result = tuple[str, str, str, str]  # test, method, value, unit
PRE_RELEASE: tuple[Result, ...] = (
    ("viability", "flow cytometry", "88", "%"),
    ("cd3", "flow cytometry", "95", "%"),
    ("car", "flow cytometry", "41", "%"),
    ("dose", "calculation", "1.2", "10^6 CAR+ cells/kg"),
    ("endotoxin", "LAL", "0.1", "EU/mL"),
    ("mycoplasma", "PCR", "negative", ""),
)
OOS_VIABILITY: Result = ("viability", "flow cytometry", "62", "%")
POST_RELEASE: tuple[Result, ...] = (
    ("sterility", "BacT/ALERT", "negative", ""),
    ("vcn", "qPCR", "1.8", "copies/transduced cell"),
    ("rcl", "PCR", "absent", ""),
)
STERILITY_POSITIVE: Result = ("sterility", "BacT/ALERT", "positive", "")


def signature(who: Operator, meaning: str) -> ESignatureRequest:
    return ESignatureRequest(user_id=who.user_id, password=SIGNING_PASSWORD, meaning=meaning)


def record_result(journey: Journey, result: Result, at: datetime) -> str:
    """Record one QC result (waiting until release knows the batch); a post-release failure
    id when this result is one."""
    gmp = journey.plan.hospital.gmp
    qc = journey.world.clients.release(gmp.site_id)
    test, method, value, unit = result
    request = pb.RecordQcResultRequest(
        operator=gmp.analyst,
        batch_id=journey.batch_id,
        test=test,
        method=method,
        value=value,
        unit=unit,
        result_at=timestamp(at),
        analyst=gmp.analyst,
    )
    with journey.step(f"QC result {test}"):
        reply = journey.once_known(
            lambda: call(qc.RecordQcResult, request), "the batch to reach the release service"
        )
    return str(reply.post_release_failure_id)


def wait_for_products(journey: Journey) -> None:
    """Release learns the batch and then its product units from manufacturing's events."""
    qc = journey.world.clients.release(journey.plan.hospital.gmp.site_id)
    request = pb.GetBatchReleaseRequest(batch_id=journey.batch_id)

    def products_known() -> bool:
        products = call(qc.GetBatchRelease, request).release.product_dins
        return sorted(products) == sorted(journey.product_dins)

    with journey.step("products known at release"):
        journey.once_known(products_known, "the product units to reach the release service")


def release(journey: Journey) -> None:
    plan = journey.plan
    wait_for_products(journey)
    results = [OOS_VIABILITY if plan.oos else PRE_RELEASE[0], *PRE_RELEASE[1:]]
    if plan.cryo:  # cryopreserved product waits for every test
        results += POST_RELEASE
    for result, at in zip(results, journey.calendar.release.results, strict=True):
        record_result(journey, result, at)
    if plan.oos:
        release_out_of_specification(journey)
    else:
        decide(journey, final=plan.cryo, at=journey.calendar.release.decided)


def decide(journey: Journey, final: bool, at: datetime) -> None:
    """The QP certifies the batch finally, or provisionally (e-signed, meaning approval), as
    of `at`."""
    gmp = journey.plan.hospital.gmp
    qc = journey.world.clients.release(gmp.site_id)
    fields: dict[str, Any] = {
        "operator": gmp.analyst,
        "batch_id": journey.batch_id,
        "signature": signature(gmp.qp, "approval"),
        "certified_at": timestamp(at),
    }
    expected = "finally-certified" if final else "provisionally-certified"
    with journey.step(f"QP: certify {'finally' if final else 'provisionally'}"):
        if final:
            reply = call(qc.CertifyFinally, pb.CertifyFinallyRequest(**fields))
        else:
            reply = call(qc.CertifyProvisionally, pb.CertifyProvisionallyRequest(**fields))
        if reply.release.status != expected:
            raise Unexpected(f"release status is {reply.release.status}, expected {expected}")


def release_out_of_specification(journey: Journey) -> None:
    plan = journey.plan
    gmp = plan.hospital.gmp
    with journey.step("QP: justify OOS release"):
        call(
            journey.world.clients.release(gmp.site_id).JustifyOosRelease,
            pb.JustifyOosReleaseRequest(
                operator=gmp.analyst,
                batch_id=journey.batch_id,
                justification="viability 62 % (< 70 %): no alternative therapy; benefit"
                " outweighs the risk per the treating physician",
                signature=signature(gmp.qp, "approval"),
                justified_at=timestamp(journey.calendar.release.decided),
            ),
        )
    doctor = plan.hospital.physician
    ward = journey.world.clients.release(gmp.site_id, as_site=plan.hospital.site_id)
    request = pb.AcceptOosReleaseRequest(
        operator=doctor,
        batch_id=journey.batch_id,
        signature=signature(doctor, "responsibility"),
        accepted_at=timestamp(journey.calendar.release.accepted),
    )
    with journey.step("physician: accept OOS release"):
        accepted = journey.once_known(
            lambda: call(ward.AcceptOosRelease, request), "the treating site at release"
        )
        if accepted.release.status != "oos-released":
            raise Unexpected(f"release status is {accepted.release.status} after acceptance")


def complete_fresh_release(journey: Journey) -> str:
    """The post-release tests of a fresh product after its infusion; returns the
    post-release failure id when sterility fails ("" otherwise)."""
    plan = journey.plan
    failure_id = ""
    follow_up = journey.calendar.follow_up
    for result, at in zip(POST_RELEASE, follow_up.results, strict=True):
        positive = plan.sterility_failure and result[0] == "sterility"
        found = record_result(journey, STERILITY_POSITIVE if positive else result, at)
        failure_id = failure_id or found
    if plan.sterility_failure and not failure_id:
        problem = "a positive sterility after release was not recorded as a post-release failure"
        raise JourneyFailed(journey.who, "QC result sterility", problem)
    if not plan.sterility_failure and not plan.oos:
        decide(journey, final=True, at=follow_up.certified)
    return failure_id
