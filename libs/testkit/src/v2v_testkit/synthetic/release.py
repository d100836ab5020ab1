"""Release in a synthetic journey: QC results against spec v1, provisional or final
certification, rejection, OOS exception (QP justification + physician acceptance), and the
post-release results of a provisionally certified batch (final certification, or a failure
that the treating physician mostly acknowledges)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.release.events.v1 import events_pb2 as release
from v2v_testkit.synthetic.consortium import CRYO, QC_SITE_OF, stamp
from v2v_testkit.synthetic.manufacturing import Made
from v2v_testkit.synthetic.patient import Journey

# (test, criterion, phase, unit, passing value, failing value)
SPEC_V1 = (
    ("viability", ">= 70 %", "pre-release", "%", "86.5", "62.0"),
    ("cd3", ">= 70 %", "pre-release", "%", "91.2", "64.0"),
    ("car", ">= 20 %", "pre-release", "%", "38.4", "14.9"),
    ("dose", ">= 0.5 10^6 CAR+ cells/kg", "pre-release", "10^6 CAR+ cells/kg", "1.8", "0.3"),
    ("endotoxin", "<= 0.5 EU/mL", "pre-release", "EU/mL", "0.1", "0.9"),
    ("mycoplasma", "negative by PCR", "pre-release", "", "negative", "positive"),
    ("sterility", "negative", "post-release", "", "negative", "positive"),
    ("vcn", "<= 5 copies/transduced cell", "post-release", "copies/transduced cell", "1.9", "6.2"),
    ("rcl", "absent", "post-release", "", "absent", "detected"),
)
PRE_RELEASE = [row for row in SPEC_V1 if row[2] == "pre-release"]
POST_RELEASE = [row for row in SPEC_V1 if row[2] == "post-release"]


@dataclass(frozen=True)
class Released:
    basis: str  # provisional | final | oos-accepted
    decided_at: datetime
    post_release_pending: bool


def release_batch(journey: Journey, made: Made) -> Released | None:
    """QC results and the QP's decision; None when the batch was rejected."""
    qc_site = QC_SITE_OF[journey.manufacturing_site]
    record = ("BatchRelease", journey.uid("release", made.batch_id))
    analyst, qp = journey.person(qc_site, "qc"), journey.person(qc_site, "qp")
    journey.advance(30, 90)
    opened = release.BatchReleaseOpened(
        coi=journey.coi,
        batch_id=made.batch_id,
        manufacturing_site_id=journey.manufacturing_site,
        product_dins=made.product_dins,
        condition=made.hold,
        batch_started_at=stamp(made.started_at),
        spec_version="v1",
        criteria=[
            release.TestCriterion(test=t, criterion=c, phase=p, unit=u)
            for t, c, p, u, *_ in SPEC_V1
        ],
    )
    journey.add("release", record, opened, qc_site, analyst)
    failing = journey.rng.choice(PRE_RELEASE[:5])[0] if journey.chance(0.15) else ""
    rejected = bool(failing) and journey.chance(0.12)
    cryo = made.hold == CRYO
    rows = SPEC_V1 if cryo else PRE_RELEASE
    for index, row in enumerate(rows):
        journey.advance(60, 600 if cryo and row[2] == "post-release" else 180)
        record_result(journey, made, record, analyst, row, row[0] == failing, rows[index + 1 :])
    journey.advance(30, 120)
    dins, at = made.product_dins, stamp(journey.now)
    if rejected:
        rejection = release.BatchRejected(
            coi=journey.coi,
            batch_id=made.batch_id,
            spec_version="v1",
            product_dins=dins,
            rejected_at=at,
            reason=f"{failing} out of specification",
            failed_tests=[failing],
            qp_signature=journey.signature(qp, "approval", f"reject:{made.batch_id}"),
        )
        journey.add("release", record, rejection, qc_site, qp, meaning="approval")
        return None
    if failing:
        return release_oos(journey, made, record, failing)
    if cryo:
        final = release.FinallyCertified(
            coi=journey.coi,
            batch_id=made.batch_id,
            spec_version="v1",
            product_dins=dins,
            certified_at=at,
            qp_signature=journey.signature(qp, "approval", f"final:{made.batch_id}"),
        )
        journey.add("release", record, final, qc_site, qp, meaning="approval")
        return Released("final", journey.now, False)
    provisional = release.ProvisionallyCertified(
        coi=journey.coi,
        batch_id=made.batch_id,
        spec_version="v1",
        product_dins=dins,
        certified_at=at,
        pending_tests=[row[0] for row in POST_RELEASE],
        qp_signature=journey.signature(qp, "approval", f"provisional:{made.batch_id}"),
    )
    journey.add("release", record, provisional, qc_site, qp, meaning="approval")
    return Released("provisional", journey.now, True)


def record_result(
    journey: Journey,
    made: Made,
    record: tuple[str, str],
    analyst: tuple[str, str, str],
    row: tuple[str, ...],
    fails: bool,
    still_pending: Sequence[tuple[str, ...]],
) -> str:
    test, criterion, _phase, unit, good, bad = row
    result_id = journey.uid("result", made.batch_id, test)
    result = release.QcResultRecorded(
        coi=journey.coi,
        batch_id=made.batch_id,
        result_id=result_id,
        test=test,
        method="PCR" if test == "mycoplasma" else "",
        value=bad if fails else good,
        unit=unit,
        result_at=stamp(journey.now),
        analyst=common_pb2.Operator(user_id=analyst[0], printed_name=analyst[1]),
        spec_version="v1",
        criterion=criterion,
        passed=not fails,
        pending_tests=[pending[0] for pending in still_pending],
    )
    journey.add("release", record, result, QC_SITE_OF[journey.manufacturing_site], analyst)
    return result_id


def release_oos(journey: Journey, made: Made, record: tuple[str, str], failing: str) -> Released:
    qc_site = QC_SITE_OF[journey.manufacturing_site]
    qp = journey.person(qc_site, "qp")
    physician = journey.person(journey.treating_site, "infusion", 2)
    dins = made.product_dins
    justified = release.OosReleaseJustified(
        coi=journey.coi,
        batch_id=made.batch_id,
        spec_version="v1",
        product_dins=dins,
        failed_tests=[failing],
        justification="no alternative therapy; benefit outweighs risk",
        justified_at=stamp(journey.now),
        qp_signature=journey.signature(qp, "approval", f"oos:{made.batch_id}"),
    )
    journey.add("release", record, justified, qc_site, qp, meaning="approval")
    journey.advance(60, 300)
    accepted = release.OosReleaseAccepted(
        coi=journey.coi,
        batch_id=made.batch_id,
        spec_version="v1",
        product_dins=dins,
        treating_site_id=journey.treating_site,
        accepted_at=stamp(journey.now),
        physician_signature=journey.signature(
            physician, "responsibility", f"accept:{made.batch_id}"
        ),
    )
    journey.add("release", record, accepted, qc_site, physician, meaning="responsibility")
    return Released("oos-accepted", journey.now, False)


def post_release(journey: Journey, made: Made, released: Released) -> None:
    """Post-release results of a provisionally certified batch, 6-9 days after the decision:
    final certification, or a post-release failure (mostly acknowledged by the physician)."""
    qc_site = QC_SITE_OF[journey.manufacturing_site]
    record = ("BatchRelease", journey.uid("release", made.batch_id))
    analyst, qp = journey.person(qc_site, "qc"), journey.person(qc_site, "qp")
    journey.now = released.decided_at + timedelta(days=journey.rng.uniform(6, 9))
    failing = journey.rng.choice(POST_RELEASE)[0] if journey.chance(0.05) else ""
    for index, row in enumerate(POST_RELEASE):
        journey.advance(30, 240)
        fails = row[0] == failing
        result_id = record_result(
            journey, made, record, analyst, row, fails, POST_RELEASE[index + 1 :]
        )
        if fails:
            failure = release.PostReleaseFailureRecorded(
                coi=journey.coi,
                batch_id=made.batch_id,
                failure_id=result_id,
                spec_version="v1",
                product_dins=made.product_dins,
                test=row[0],
                value=row[5],
                unit=row[3],
                criterion=row[1],
                result_at=stamp(journey.now),
                released_as="provisional",
            )
            journey.add("release", record, failure, qc_site, analyst)
            if journey.chance(0.7):
                acknowledge(journey, made, result_id, row[0])
            return
    journey.advance(30, 120)
    final = release.FinallyCertified(
        coi=journey.coi,
        batch_id=made.batch_id,
        spec_version="v1",
        product_dins=made.product_dins,
        certified_at=stamp(journey.now),
        qp_signature=journey.signature(qp, "approval", f"final:{made.batch_id}"),
    )
    journey.add("release", record, final, qc_site, qp, meaning="approval")


def acknowledge(journey: Journey, made: Made, failure_id: str, test: str) -> None:
    site = journey.treating_site
    physician = journey.person(site, "infusion", 2)
    journey.advance(60, 360)
    acknowledged = infusion.PostReleaseFailureAcknowledged(
        coi=journey.coi,
        failure_id=failure_id,
        batch_id=made.batch_id,
        test=test,
        product_dins=made.product_dins,
        decision="monitor; antibiotic cover",
        acknowledged_at=stamp(journey.now),
        physician_signature=journey.signature(physician, "responsibility", f"ack:{failure_id}"),
    )
    aggregate = ("FailureAcknowledgement", journey.uid("acknowledgement", failure_id))
    journey.add("infusion", aggregate, acknowledged, site, physician, meaning="responsibility")
