"""Proven persons in intake's label verification (issue 13 item 2), on PostgreSQL + Kafka
through the real mTLS gRPC server: the collection staff are registered with `v2v signer add`
in intake's own signer store (its PostgreSQL database), each with their own password. One
person cannot make both scans with their one password, a wrong password is refused and counted
in the store, the operator must be the re-authenticated signer; the LabelVerified published on
Kafka carries both scanners' manifestations."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.events.v1 import envelope_pb2
from v2v.intake.events.v1 import events_pb2 as events
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v.intake.v1 import intake_service_pb2_grpc as pb_grpc
from v2v_intake.bootstrap import IntakeService, bootstrap
from v2v_intake.domain.labels import verification_record
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.esign import open_signer_store, record_hash
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.kafka_topics import read_verified_until
from v2v_testkit.intake import FakeSlots, declare_din_block

pytestmark = pytest.mark.integration
SITE = "HOSP-A"
CORA = common_pb2.Operator(user_id="c-1", printed_name="Cora Collector")
CAL = common_pb2.Operator(user_id="c-2", printed_name="Cal Collector")
PASSWORDS = {"c-1": "cora's own pass phrase", "c-2": "cal's own pass phrase"}


def add_signer(dsn: str, who: common_pb2.Operator) -> None:
    """`v2v signer add` on intake's database, as the site administrator registers staff."""
    env = {**os.environ, "V2V_SIGNER_PASSWORD": PASSWORDS[who.user_id]}
    command = [sys.executable, "-m", "v2v_platform.cli", "signer", "add", "--site", SITE]
    command += ["--user", who.user_id, "--name", who.printed_name, "--role", "collection"]
    subprocess.run([*command, "--postgres-dsn", dsn], env=env, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    init_pki(tmp_path / "pki", [parse_site_spec(f"{SITE}:collection")])
    return tmp_path / "pki"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[IntakeService]:
    fin = f"B{random.randint(0, 9999):04d}"  # fresh COIs: the broker may hold earlier runs
    declare_din_block(pki, fin, SITE)
    settings = IntakeSettings(
        site_id=SITE,
        fin=fin,
        pki_dir=pki,
        manufacturing_target="127.0.0.1:1",
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
    )
    for person in (CORA, CAL):
        add_signer(postgres_database.dsn, person)
    running = bootstrap(settings, manufacturing=FakeSlots())
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    yield running
    running.stop()


def _ts(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def labelled(stub: Any) -> tuple[str, str]:
    details = pb.PersonalDetails(
        given_name="Zelda", family_name="Quixotic", mrn="MRN-4243", birth_date="1980-02-29"
    )
    enrolment = pb.EnrolPatientRequest(
        operator=CORA, patient_pseudonym="PSN-SIGNERS", personal_details=details
    )
    enrolment.treating_site_id = SITE
    enrolment.enrolled_at.CopyFrom(_ts(datetime.now(UTC) - timedelta(days=1)))
    coi = stub.EnrolPatient(enrolment, timeout=10).coi
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    booking = pb.BookSlotRequest(
        operator=CORA, coi=coi, manufacturing_site_id="GMP-B", slot_date=tomorrow
    )
    stub.BookSlot(booking, timeout=10)
    ended = datetime.now(UTC) - timedelta(minutes=30)
    collection = pb.RecordCollectionRequest(
        operator=CORA,
        coi=coi,
        started_at=_ts(ended - timedelta(hours=4)),
        ended_at=_ts(ended),
        volume_ml=205.0,
        total_nucleated_cells_e9=11.0,
        cd3_cells_e9=6.0,
    )
    collection_id = stub.RecordCollection(collection, timeout=10).collection_id
    labels = pb.LabelUnitsRequest(
        operator=CORA, coi=coi, collection_id=collection_id, count=1, unit_kind="apheresis-bag"
    )
    [din] = stub.LabelUnits(labels, timeout=10).dins
    return coi, din


def signed(user_id: str, password: str) -> common_pb2.ESignatureRequest:
    return common_pb2.ESignatureRequest(user_id=user_id, password=password, meaning="verification")


def refused(stub: Any, request: pb.VerifyLabelRequest) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as error:
        stub.VerifyLabel(request, timeout=10)
    return error.value.code(), error.value.details()


def test_two_collectors_prove_themselves_and_one_person_cannot_be_both(
    pki: Path, service: IntakeService, kafka_bootstrap: str, postgres_database: PostgresDatabase
) -> None:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, SITE))
    channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
    stub = pb_grpc.IntakeServiceStub(channel)
    with channel:
        coi, din = labelled(stub)

        def scan(operator: common_pb2.Operator, user_id: str, password: str) -> Any:
            return pb.VerifyLabelRequest(
                operator=operator,
                coi=coi,
                din=din,
                scanned_din=din,
                scanned_coi=coi,
                signature=signed(user_id, password),
            )

        assert stub.VerifyLabel(scan(CORA, "c-1", PASSWORDS["c-1"]), timeout=10).verified is False
        # Cora, alone at the bench, tries to be the second person too
        code, details = refused(stub, scan(CAL, "c-2", PASSWORDS["c-1"]))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "'c-2' failed" in details
        code, details = refused(stub, scan(CAL, "c-1", PASSWORDS["c-1"]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "operator.user_id 'c-2'" in details
        code, details = refused(stub, scan(CORA, "c-1", PASSWORDS["c-1"]))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "same-user" in details
        signers = open_signer_store(postgres_database.dsn, None)
        cal = signers.get(SITE, "c-2")
        assert cal is not None and cal.failures == 1  # counted towards Cal's lock-out
        patient = stub.GetPatient(pb.GetPatientRequest(coi=coi), timeout=10)
        assert [unit.status for unit in patient.units] == ["first-scan-done"]

        assert stub.VerifyLabel(scan(CAL, "c-2", PASSWORDS["c-2"]), timeout=10).verified is True
        cal = signers.get(SITE, "c-2")
        assert cal is not None and cal.failures == 0

    ring = KeyRing.load(pki / "signing-keys.json")
    records, breaks = read_verified_until(
        kafka_bootstrap,
        "v2v.intake.events.v1",
        ring,
        keep=lambda envelope: envelope.coi == coi,
        done=lambda mine: any(e.event_type.endswith("LabelVerified") for e in mine),
    )
    assert not breaks
    envelope = next(e for _, e in records if e.event_type.endswith("LabelVerified"))
    assert envelope.signature_meaning == envelope_pb2.SIGNATURE_MEANING_VERIFICATION
    assert envelope.actor.user_id == "c-2" and envelope.actor.printed_name == "Cal Collector"
    verified = events.LabelVerified.FromString(envelope.payload)
    signed_record = record_hash(verification_record(coi, din))
    first, second = verified.first_signature, verified.second_signature
    assert (first.user_id, first.printed_name) == ("c-1", "Cora Collector")
    assert (second.user_id, second.printed_name) == ("c-2", "Cal Collector")
    assert {first.meaning, second.meaning} == {"verification"}
    assert first.record_hash == second.record_hash == signed_record
