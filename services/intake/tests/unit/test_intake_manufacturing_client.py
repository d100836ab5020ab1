"""Intake books slots at the GMP site's manufacturing service, which answers NOT_FOUND until
it has learnt the COI's enrolment from intake's events on Kafka (issue 13): right after
enrolment it may not know it yet. Intake retries NOT_FOUND with exponential backoff for a
bounded time (`V2V_MANUFACTURING_RETRY_S`), then says which COI manufacturing does not know.

Manufacturing is a local gRPC server here (a stub of the OTHER service, over the same mTLS as
in production); intake, its client and its API are the real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v.common.v1 import common_pb2
from v2v.intake.v1 import intake_service_pb2 as intake_pb
from v2v.intake.v1 import intake_service_pb2_grpc as intake_grpc
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.adapters.manufacturing_client import GrpcManufacturingSlots
from v2v_intake.bootstrap import bootstrap
from v2v_intake.ports import UpstreamUnavailable
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.identity import identity_from_pem
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tls import server_credentials
from v2v_platform.errors import Refused
from v2v_testkit.intake import FixedClock, declare_din_block, operator

COI = "CHA123425000017"
SERVICE = "v2v.manufacturing.v1.ManufacturingService"
DAY = date(2025, 3, 20)


@dataclass
class Manufacturing:
    """ManufacturingService's BookSlot only (other methods: UNIMPLEMENTED): answers with
    `answers` in turn (None: the slot), the last one from then on; notes who called (the site
    of the client certificate) and when."""

    answers: list[grpc.StatusCode | None]
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def BookSlot(self, request: pb.BookSlotRequest, context: Any) -> pb.BookSlotResponse:
        with self.lock:
            answer = self.answers[min(len(self.calls), len(self.answers) - 1)]
            site = caller_site(context)
            self.calls.append((time.monotonic(), request.coi, site))
        if answer is not None:
            context.abort(answer, f"no COI {request.coi} enrolled by {site} is known here")
        return pb.BookSlotResponse(
            slot_id="SLOT-1",
            manufacturing_site_id=request.manufacturing_site_id,
            slot_date=request.slot_date,
        )


def caller_site(context: Any) -> str:
    """The site of the client certificate ("" over an insecure channel)."""
    pems = context.auth_context().get("x509_pem_cert", [])
    return identity_from_pem(pems[0]).site_id if pems else ""


@dataclass
class Running:
    servicer: Manufacturing
    port: int
    server: Any


def serve(servicer: Manufacturing, credentials: Any | None = None) -> Running:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "BookSlot": grpc.unary_unary_rpc_method_handler(
            servicer.BookSlot,
            request_deserializer=pb.BookSlotRequest.FromString,
            response_serializer=pb.BookSlotResponse.SerializeToString,
        )
    }
    service = grpc.method_handlers_generic_handler(SERVICE, handlers)
    server.add_generic_rpc_handlers((service,))
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return Running(servicer, port, server)


@pytest.fixture
def manufacturing(request: pytest.FixtureRequest) -> Iterator[Running]:
    running = serve(Manufacturing(list(request.param)))
    yield running
    running.server.stop(None)


def client(running: Running, retry_s: float = 5.0) -> GrpcManufacturingSlots:
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return GrpcManufacturingSlots(channel, timeout_s=5.0, retry_s=retry_s, first_backoff_s=0.05)


NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("manufacturing", [[NOT_FOUND, NOT_FOUND, None]], indirect=True)
def test_a_booking_manufacturing_does_not_know_yet_is_retried_until_it_does(
    manufacturing: Running,
) -> None:
    slots = client(manufacturing)

    slot = slots.book(COI, "GMP-B", DAY, operator())

    assert (slot.slot_id, slot.manufacturing_site_id, slot.slot_date) == ("SLOT-1", "GMP-B", DAY)
    times = [at for at, _, _ in manufacturing.servicer.calls]
    assert len(times) == 3
    first_wait, second_wait = times[1] - times[0], times[2] - times[1]
    assert first_wait >= 0.05 and second_wait >= 0.1  # exponential backoff
    slots.close()


@pytest.mark.parametrize("manufacturing", [[NOT_FOUND]], indirect=True)
def test_a_coi_manufacturing_never_learns_is_a_clear_error_after_the_retry_time(
    manufacturing: Running,
) -> None:
    slots = client(manufacturing, retry_s=0.5)
    started = time.monotonic()

    with pytest.raises(UpstreamUnavailable) as raised:
        slots.book(COI, "GMP-B", DAY, operator())

    took = time.monotonic() - started
    assert COI in str(raised.value) and "GMP-B" in str(raised.value)
    assert 0.5 <= took < 3.0
    assert 3 <= len(manufacturing.servicer.calls) < 10  # backing off, not hammering
    slots.close()


@pytest.mark.parametrize("manufacturing", [[grpc.StatusCode.RESOURCE_EXHAUSTED]], indirect=True)
def test_a_refusal_is_not_retried(manufacturing: Running) -> None:
    slots = client(manufacturing)

    with pytest.raises(Refused, match="RESOURCE_EXHAUSTED"):
        slots.book(COI, "GMP-B", DAY, operator())

    assert len(manufacturing.servicer.calls) == 1
    slots.close()


def test_the_retry_time_is_a_setting_of_half_a_minute_by_default(tmp_path: Path) -> None:
    declare_din_block(tmp_path)
    settings = IntakeSettings(
        site_id="HOSP-A", fin="A1234", pki_dir=tmp_path, manufacturing_target="x:1"
    )
    assert settings.manufacturing_retry_s == 30.0
    with pytest.raises(ValueError, match="manufacturing_retry_s"):
        IntakeSettings(
            site_id="HOSP-A",
            fin="A1234",
            pki_dir=tmp_path,
            manufacturing_target="x:1",
            manufacturing_retry_s=-1,
        )


SITES = ["HOSP-A:collection", "GMP-B:manufacturing,qc"]
OPERATOR = common_pb2.Operator(user_id="u-1", printed_name="Ada Example")


def test_booking_over_intakes_api_waits_for_manufacturing_to_learn_the_enrolment(
    tmp_path: Path,
) -> None:
    """Enrol and book at once through intake's gRPC API, as a collection site does: the
    manufacturing site (mTLS, certificate of GMP-B) answers NOT_FOUND twice, then books."""
    pki = tmp_path / "pki"
    init_pki(pki, [parse_site_spec(spec) for spec in SITES])
    declare_din_block(pki)
    gmp = serve(
        Manufacturing([NOT_FOUND, NOT_FOUND, None]),
        server_credentials(SiteTlsFiles.for_site(pki, "GMP-B")),
    )
    settings = IntakeSettings(
        site_id="HOSP-A",
        fin="A1234",
        pki_dir=pki,
        manufacturing_target=f"localhost:{gmp.port}",
        manufacturing_retry_s=10,
    )
    service = bootstrap(settings, keys=InMemoryKeyStore(), clock=FixedClock())
    running = service.start_grpc("127.0.0.1:0")
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
    try:
        with secure_channel(f"127.0.0.1:{running.port}", credentials) as channel:
            intake = intake_grpc.IntakeServiceStub(channel)
            details = intake_pb.PersonalDetails(
                given_name="Ada", family_name="Example", mrn="M-1", birth_date="1970-01-01"
            )
            enrolment = intake_pb.EnrolPatientRequest(
                operator=OPERATOR,
                patient_pseudonym="PSN-R1",
                personal_details=details,
                treating_site_id="HOSP-A",
            )
            coi = intake.EnrolPatient(enrolment, timeout=5).coi
            booking = intake_pb.BookSlotRequest(
                operator=OPERATOR, coi=coi, manufacturing_site_id="GMP-B", slot_date="2025-03-20"
            )
            slot = intake.BookSlot(booking, timeout=20).slot
    finally:
        service.stop()
        gmp.server.stop(None)

    assert (slot.slot_id, slot.manufacturing_site_id) == ("SLOT-1", "GMP-B")
    assert [(c, site) for _, c, site in gmp.servicer.calls] == [(coi, "HOSP-A")] * 3
