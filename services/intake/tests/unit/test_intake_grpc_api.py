"""The intake gRPC API over mTLS: roles, site from the certificate, error codes, health."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v.common.v1 import common_pb2
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v.intake.v1 import intake_service_pb2_grpc as pb_grpc
from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.bootstrap import bootstrap
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.proto_values import timestamp
from v2v_testkit.intake import (
    CLERK,
    ENROLLED_AT,
    NOW,
    FakeSlots,
    FixedClock,
    declare_din_block,
    password_of,
    signer_store,
)

MB = 1024 * 1024
SITES = ["HOSP-A:collection", "HOSP-C:collection", "AUDIT-X:auditor", "GMP-B:manufacturing"]
OPERATOR = common_pb2.Operator(user_id="u-1", printed_name="Ada Example")
SECOND = common_pb2.Operator(user_id="u-2", printed_name="Ben Example")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    declare_din_block(directory)
    return directory


@pytest.fixture(scope="module")
def port(pki: Path) -> Iterator[int]:
    settings = IntakeSettings(
        site_id="HOSP-A", fin="A1234", pki_dir=pki, manufacturing_target="127.0.0.1:1"
    )
    service = bootstrap(
        settings,
        manufacturing=FakeSlots(),
        keys=InMemoryKeyStore(),
        signers=signer_store("HOSP-A"),
        clock=FixedClock(),
    )
    running = service.start_grpc("127.0.0.1:0")
    yield running.port
    service.stop()


def stub(pki: Path, port: int, site: str) -> Any:
    channel = secure_channel(
        f"127.0.0.1:{port}", channel_credentials(SiteTlsFiles.for_site(pki, site))
    )
    return pb_grpc.IntakeServiceStub(channel)


def _ts(hours_before_now: int) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(NOW.replace(hour=NOW.hour - hours_before_now))
    return value


def _proof(user_id: str, password: str | None = None) -> common_pb2.ESignatureRequest:
    given = password_of(user_id) if password is None else password
    return common_pb2.ESignatureRequest(user_id=user_id, password=given, meaning="verification")


def _labelled(intake: Any, pseudonym: str) -> tuple[str, str]:
    coi = _enrol(intake, pseudonym)
    slot = intake.BookSlot(
        pb.BookSlotRequest(
            operator=OPERATOR, coi=coi, manufacturing_site_id="GMP-B", slot_date="2025-03-20"
        ),
        timeout=5,
    ).slot
    collection = pb.RecordCollectionRequest(
        operator=OPERATOR,
        coi=coi,
        started_at=_ts(6),
        ended_at=_ts(2),
        volume_ml=200,
        total_nucleated_cells_e9=10,
        cd3_cells_e9=5,
        slot_id=slot.slot_id,
    )
    collection_id = intake.RecordCollection(collection, timeout=5).collection_id
    labels = pb.LabelUnitsRequest(
        operator=OPERATOR, coi=coi, collection_id=collection_id, count=1, unit_kind="apheresis-bag"
    )
    [din] = intake.LabelUnits(labels, timeout=5).dins
    return coi, din


def _enrol(intake: Any, pseudonym: str) -> str:
    details = pb.PersonalDetails(
        given_name="Ada", family_name="Example", mrn="M-1", birth_date="1970-01-01"
    )
    request = pb.EnrolPatientRequest(
        operator=OPERATOR,
        patient_pseudonym=pseudonym,
        personal_details=details,
        treating_site_id="HOSP-A",
        enrolled_at=timestamp(ENROLLED_AT),
    )
    coi: str = intake.EnrolPatient(request, timeout=5).coi
    return coi


def test_the_whole_intake_journey_over_grpc(pki: Path, port: int) -> None:
    intake = stub(pki, port, "HOSP-A")
    coi = _enrol(intake, "PSN-G1")
    slot = intake.BookSlot(
        pb.BookSlotRequest(
            operator=OPERATOR, coi=coi, manufacturing_site_id="GMP-B", slot_date="2025-03-20"
        ),
        timeout=5,
    ).slot
    collection_id = intake.RecordCollection(
        pb.RecordCollectionRequest(
            operator=OPERATOR,
            coi=coi,
            started_at=_ts(6),
            ended_at=_ts(2),
            volume_ml=200,
            total_nucleated_cells_e9=10,
            cd3_cells_e9=5,
            slot_id=slot.slot_id,
        ),
        timeout=5,
    ).collection_id
    [din] = intake.LabelUnits(
        pb.LabelUnitsRequest(
            operator=OPERATOR,
            coi=coi,
            collection_id=collection_id,
            count=1,
            unit_kind="apheresis-bag",
        ),
        timeout=5,
    ).dins
    scan = pb.VerifyLabelRequest(
        operator=OPERATOR,
        coi=coi,
        din=din,
        scanned_din=din,
        scanned_coi=coi,
        signature=_proof(OPERATOR.user_id),
    )
    assert intake.VerifyLabel(scan, timeout=5).verified is False
    with pytest.raises(grpc.RpcError) as refused:
        intake.VerifyLabel(scan, timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "same-user" in refused.value.details()
    scan.operator.CopyFrom(SECOND)
    scan.signature.CopyFrom(_proof(SECOND.user_id))
    assert intake.VerifyLabel(scan, timeout=5).verified is True
    packaged = intake.PackageUnit(
        pb.PackageUnitRequest(
            operator=OPERATOR,
            coi=coi,
            din=din,
            condition=common_pb2.CONDITION_FRESH_COLD,
            manufacturing_site_id="GMP-B",
            temperature_c=4.0,
        ),
        timeout=5,
    )
    assert packaged.window_starts_at == _ts(2)
    patient = intake.GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    assert patient.personal_details.mrn == "M-1"
    assert [u.status for u in patient.units] == ["packaged"]


def test_each_label_scan_over_grpc_proves_its_person(pki: Path, port: int) -> None:
    """Issue 13 item 2: no scan without the person's own re-authentication; the first scan by
    u-1 stands, and nothing u-1 sends as u-2 verifies the label."""
    intake = stub(pki, port, "HOSP-A")
    coi, din = _labelled(intake, "PSN-PROVEN-1")

    def scan(operator: common_pb2.Operator, **signed: Any) -> Any:
        request = pb.VerifyLabelRequest(
            operator=operator, coi=coi, din=din, scanned_din=din, scanned_coi=coi, **signed
        )
        return intake.VerifyLabel(request, timeout=5)

    assert scan(OPERATOR, signature=_proof("u-1")).verified is False
    refusals = [
        (dict(), grpc.StatusCode.INVALID_ARGUMENT, "signature is required"),
        (
            dict(signature=_proof("u-2", password_of("u-1"))),
            grpc.StatusCode.UNAUTHENTICATED,
            "re-authentication of 'u-2' failed",
        ),
        (
            dict(signature=_proof("u-1")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "operator.user_id 'u-2' is not the re-authenticated signer 'u-1'",
        ),
    ]
    for signed, code, details in refusals:
        with pytest.raises(grpc.RpcError) as refused:
            scan(SECOND, **signed)
        assert refused.value.code() == code
        assert details in refused.value.details()
    clerk = common_pb2.Operator(user_id=CLERK, printed_name="Clara Clerk")
    with pytest.raises(grpc.RpcError) as no_signing_role:
        scan(clerk, signature=_proof(CLERK))
    assert no_signing_role.value.code() == grpc.StatusCode.PERMISSION_DENIED
    patient = intake.GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    assert [u.status for u in patient.units] == ["first-scan-done"]
    assert scan(SECOND, signature=_proof("u-2")).verified is True


def test_error_codes(pki: Path, port: int) -> None:
    intake = stub(pki, port, "HOSP-A")
    coi = _enrol(intake, "PSN-G2")
    cases: list[tuple[Callable[[], object], Any]] = [
        (lambda: _enrol(intake, "PSN-G2"), grpc.StatusCode.FAILED_PRECONDITION),
        (
            lambda: intake.GetPatient(pb.GetPatientRequest(coi="CHA123425999999"), timeout=5),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            lambda: intake.GetPatient(pb.GetPatientRequest(coi="nonsense"), timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: intake.RecordCollection(
                pb.RecordCollectionRequest(operator=OPERATOR, coi=coi), timeout=5
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: intake.BookSlot(
                pb.BookSlotRequest(coi=coi, manufacturing_site_id="GMP-B", slot_date="2025-03-20"),
                timeout=5,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for call, code in cases:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == code


def test_labelling_over_grpc_carries_when_it_happened(pki: Path, port: int) -> None:
    """LabelUnits takes `labelled_at` (clinical time): before the collection's end (2 h before
    now) it is INVALID_ARGUMENT naming the field; after it, the units are labelled."""
    intake = stub(pki, port, "HOSP-A")
    coi = _enrol(intake, "PSN-G7")
    slot = intake.BookSlot(
        pb.BookSlotRequest(
            operator=OPERATOR, coi=coi, manufacturing_site_id="GMP-B", slot_date="2025-03-20"
        ),
        timeout=5,
    ).slot
    collection = pb.RecordCollectionRequest(
        operator=OPERATOR,
        coi=coi,
        started_at=_ts(6),
        ended_at=_ts(2),
        volume_ml=200,
        total_nucleated_cells_e9=10,
        cd3_cells_e9=5,
        slot_id=slot.slot_id,
    )
    collection_id = intake.RecordCollection(collection, timeout=5).collection_id
    labels = pb.LabelUnitsRequest(
        operator=OPERATOR, coi=coi, collection_id=collection_id, count=1, labelled_at=_ts(3)
    )
    labels.unit_kind = "apheresis-bag"
    with pytest.raises(grpc.RpcError) as refused:
        intake.LabelUnits(labels, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "labelled_at" in refused.value.details()
    labels.labelled_at.CopyFrom(_ts(1))
    assert len(intake.LabelUnits(labels, timeout=5).dins) == 1


def test_scans_and_packaging_over_grpc_carry_when_they_happened(pki: Path, port: int) -> None:
    """VerifyLabel takes `scanned_at` and PackageUnit `packaged_at` (clinical times): a scan
    before the labelling, or a packaging before the label's verification, is INVALID_ARGUMENT
    naming the field; entered after the fact, they are accepted."""
    intake = stub(pki, port, "HOSP-A")
    coi = _enrol(intake, "PSN-G8")
    slot = intake.BookSlot(
        pb.BookSlotRequest(
            operator=OPERATOR, coi=coi, manufacturing_site_id="GMP-B", slot_date="2025-03-20"
        ),
        timeout=5,
    ).slot
    collection = pb.RecordCollectionRequest(
        operator=OPERATOR,
        coi=coi,
        started_at=_ts(6),
        ended_at=_ts(2),
        volume_ml=200,
        total_nucleated_cells_e9=10,
        cd3_cells_e9=5,
        slot_id=slot.slot_id,
    )
    collection_id = intake.RecordCollection(collection, timeout=5).collection_id
    labelled_at = NOW - timedelta(minutes=90)
    labels = pb.LabelUnitsRequest(
        operator=OPERATOR,
        coi=coi,
        collection_id=collection_id,
        count=1,
        unit_kind="apheresis-bag",
        labelled_at=timestamp(labelled_at),
    )
    [din] = intake.LabelUnits(labels, timeout=5).dins

    def scan(operator: common_pb2.Operator, minutes_after_labelling: int) -> Any:
        request = pb.VerifyLabelRequest(
            operator=operator,
            coi=coi,
            din=din,
            scanned_din=din,
            scanned_coi=coi,
            signature=_proof(operator.user_id),
            scanned_at=timestamp(labelled_at + timedelta(minutes=minutes_after_labelling)),
        )
        return intake.VerifyLabel(request, timeout=5)

    with pytest.raises(grpc.RpcError) as early_scan:
        scan(OPERATOR, -1)
    assert early_scan.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scanned_at" in early_scan.value.details()
    assert scan(OPERATOR, 10).verified is False
    assert scan(SECOND, 20).verified is True
    packaging = pb.PackageUnitRequest(
        operator=OPERATOR,
        coi=coi,
        din=din,
        condition=common_pb2.CONDITION_FRESH_COLD,
        manufacturing_site_id="GMP-B",
        temperature_c=4.0,
        packaged_at=timestamp(labelled_at + timedelta(minutes=15)),
    )
    with pytest.raises(grpc.RpcError) as early_packaging:
        intake.PackageUnit(packaging, timeout=5)
    assert early_packaging.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "packaged_at" in early_packaging.value.details()
    assert "verification" in early_packaging.value.details()
    packaging.packaged_at.CopyFrom(timestamp(labelled_at + timedelta(minutes=30)))
    assert intake.PackageUnit(packaging, timeout=5).window_starts_at == _ts(2)


def test_sites_and_roles(pki: Path, port: int) -> None:
    coi = _enrol(stub(pki, port, "HOSP-A"), "PSN-G3")
    with pytest.raises(grpc.RpcError) as other_site:
        _enrol(stub(pki, port, "HOSP-C"), "PSN-G4")
    assert other_site.value.code() == grpc.StatusCode.PERMISSION_DENIED
    auditor = stub(pki, port, "AUDIT-X")
    view = auditor.GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    assert view.coi == coi and not view.HasField("personal_details")
    with pytest.raises(grpc.RpcError) as no_role:
        _enrol(auditor, "PSN-G5")
    assert no_role.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as manufacturing:
        stub(pki, port, "GMP-B").GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    assert manufacturing.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_health_and_reflection_are_served(pki: Path, port: int) -> None:
    channel = secure_channel(
        f"127.0.0.1:{port}", channel_credentials(SiteTlsFiles.for_site(pki, "GMP-B"))
    )
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(
        health_pb2.HealthCheckRequest(service="v2v.intake.v1.IntakeService"), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _enrolment(pseudonym: str, printed_name: str = "Ada Example") -> pb.EnrolPatientRequest:
    details = pb.PersonalDetails(
        given_name="Ada", family_name="Example", mrn="M-1", birth_date="1970-01-01"
    )
    return pb.EnrolPatientRequest(
        operator=common_pb2.Operator(user_id="u-1", printed_name=printed_name),
        patient_pseudonym=pseudonym,
        personal_details=details,
        treating_site_id="HOSP-A",
    )


@pytest.mark.parametrize(
    "request_",
    [_enrolment("PSN-G9", printed_name="N" * (3 * MB // 2)), _enrolment("P" * (2 * MB))],
)
def test_a_megabyte_enrolment_is_refused_at_the_message_limit(
    pki: Path, port: int, request_: pb.EnrolPatientRequest
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub(pki, port, "HOSP-A").EnrolPatient(request_, timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (_enrolment("P" * 300_000), "patient_pseudonym has 300000 characters; the limit is 64"),
        (_enrolment("PSN-G10", "N" * 201), "operator.printed_name has 201 characters; the limit"),
    ],
)
def test_an_enrolment_field_over_its_limit_is_invalid_argument_naming_it(
    pki: Path, port: int, request_: pb.EnrolPatientRequest, named: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub(pki, port, "HOSP-A").EnrolPatient(request_, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in refused.value.details()


def test_every_call_on_a_chain_is_in_the_access_log_allowed_or_not(
    pki: Path, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="v2v.access")
    coi = _enrol(stub(pki, port, "HOSP-A"), "PSN-LOG-1")
    stub(pki, port, "AUDIT-X").GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub(pki, port, "HOSP-C").GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub(pki, port, "GMP-B").GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)
    stub(pki, port, "HOSP-A").GetPatient(pb.GetPatientRequest(coi=coi), timeout=5)

    lines = [r.getMessage() for r in caplog.records if r.name == "v2v.access"]
    method = "/v2v.intake.v1.IntakeService/GetPatient"
    about = [line for line in lines if f"coi={coi}" in line and method in line]
    assert about == [
        f"grpc site=AUDIT-X roles=auditor {method} coi={coi} outcome=OK",
        f"grpc site=HOSP-C roles=collection {method} coi={coi} outcome=NOT_FOUND",
        f"grpc site=GMP-B roles=- {method} coi={coi} outcome=PERMISSION_DENIED",
        f"grpc site=HOSP-A roles=collection {method} coi={coi} outcome=OK",
    ]
    assert not any("Ada" in line or "M-1" in line for line in lines)  # no personal data
    assert not any("grpc.health" in line for line in lines)
