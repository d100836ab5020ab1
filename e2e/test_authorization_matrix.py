"""The authorization matrix: every gRPC method (from the proto service descriptors) and every
HTTP route (from each running service's OpenAPI document), called as five callers against the
whole system (separate processes on PostgreSQL and a Kafka broker of their own): no
credentials, a related site with the wrong role, an unrelated site with the right role
(HOSP-Z, certified by the consortium CA for this test), the related site and the auditor.
The expected outcome of each call comes from the access the method or route declares
(`ACCESS` of the service's gRPC adapter; `x-v2v-access` of the OpenAPI operation).

One patient's complete journey is seeded first (enrolment to infusion, with a temperature
excursion and a sterility failure after release, so alerts exist too), so every request names
records that exist: a NOT_FOUND means refused, and an answer to an unrelated caller must name
none of that journey's identifiers it was not asked about.

The test fails on a method or route that declares no access or has no request builder
(`v2v_testkit.authz.grpc_requests` / `http_requests`), on any unauthorized success or pass
(a caller that must be refused reached a domain rule instead), on any related or auditor
call refused for authorization, and on any server error. It prints the counts (also without
`-s`); every call is listed with `-s` and when it fails.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from v2v.common.v1.common_pb2 import Operator
from v2v.intake.v1 import intake_service_pb2 as intake_pb
from v2v.manufacturing.v1 import manufacturing_service_pb2 as mfg_pb
from v2v.release.v1 import release_service_pb2 as release_pb
from v2v_platform.testing.producing import eventually
from v2v_simulator.clients import Clients, call
from v2v_simulator.consortium import COURIERS, SIGNING_PASSWORD, Consortium, Hospital
from v2v_simulator.journey.context import Journey, World
from v2v_simulator.runner import run_journeys
from v2v_simulator.running import RunningConsortium
from v2v_simulator.scenarios import PatientPlan
from v2v_simulator.setup import COURIER_PASSWORD
from v2v_simulator.summary import settled
from v2v_simulator.system import System, services_of
from v2v_testkit.authz.callers import Credentials
from v2v_testkit.authz.grpc_requests import GRPC_BUILDERS
from v2v_testkit.authz.http_requests import HTTP_BUILDERS
from v2v_testkit.authz.inventory import inventory, missing
from v2v_testkit.authz.matrix import AuthorizationMatrix, endpoints
from v2v_testkit.authz.report import MatrixReport
from v2v_testkit.authz.seed import People, Person, Seed, SeededShipment

pytestmark = pytest.mark.integration
SETTLE_S = 90.0
SPARE_SLOT_DAYS = (20, 21)  # days ahead: the journeys' bookings are on past days


class RecordingClients(Clients):
    """The simulator's clients, noting every shipment its journeys create (the journey keeps
    no shipment ids, and delivered shipments are in no listing)."""

    def __init__(
        self, pki: Path, system: System, consortium: Consortium, tokens: dict[str, str]
    ) -> None:
        super().__init__(pki, system, consortium, tokens)
        self.shipments: list[Any] = []

    def logistics(self, as_site: str) -> Any:
        return ShipmentRecorder(super().logistics(as_site), self.shipments)


class ShipmentRecorder:
    def __init__(self, stub: Any, shipments: list[Any]) -> None:
        self._stub = stub
        self._shipments = shipments

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def CreateShipment(self, request: Any, **options: Any) -> Any:
        reply = self._stub.CreateShipment(request, **options)
        self._shipments.append(reply.shipment)
        return reply


def person(operator: Operator, password: str = "") -> Person:
    return Person(operator.user_id, operator.printed_name, password)


def shipment_seed(shipment: Any) -> SeededShipment:
    return SeededShipment(
        shipment.shipment_id,
        shipment.origin_site_id,
        shipment.destination_site_id,
        shipment.assigned_courier_id,
        tuple(shipment.manifest_dins),
    )


def seed_journey(running: RunningConsortium) -> Seed:
    """One patient of HOSP-A from enrolment to infusion (fresh product, an excursion on the
    apheresis leg, a sterility failure after provisional release), settled in the projection."""
    system, consortium = running.system, running.system.consortium
    hospital = consortium.hospitals[0]
    gmp = hospital.gmp
    clients = RecordingClients(
        running.clients.pki, system, consortium, running.clients.courier_tokens
    )
    plan = PatientPlan(
        number=1,
        hospital=hospital,
        cryo=False,
        apheresis_bags=1,
        excursion=True,
        sterility_failure=True,
    )
    try:
        world = World(consortium, clients, fact_timeout_s=running.world.fact_timeout_s)
        result = run_journeys(world, [plan], workers=1, show_progress=False)
        assert result.failure is None, f"the seeded journey failed: {result.failure}"
        journey: Journey = result.journeys[0]
        settled(clients, [journey], SETTLE_S)
        spares = book_spare_slots(clients, hospital, journey.coi)
        therapy = call(
            clients.intake(hospital.site_id).GetPatient,
            intake_pb.GetPatientRequest(coi=journey.coi),
        )
        release = call(
            clients.release(gmp.site_id).GetBatchRelease,
            release_pb.GetBatchReleaseRequest(batch_id=journey.batch_id),
        ).release
    finally:
        clients.close()
    legs = {tuple(s.manifest_dins): shipment_seed(s) for s in clients.shipments}
    apheresis, product = legs[tuple(journey.apheresis_dins)], legs[tuple(journey.product_dins)]
    busy = {apheresis.courier_id, product.courier_id}
    nurse, second_nurse = hospital.nurses
    collector = hospital.collection_staff[0]
    own = hospital.password  # a checking person's own password
    return Seed(
        coi=journey.coi,
        hospital=hospital.site_id,
        gmp=gmp.site_id,
        logistics=consortium.logistics_site,
        auditor=consortium.auditor_site,
        slot_id=journey.slot_id,
        slot_date=next(s.slot_date for s in therapy.slots if s.slot_id == journey.slot_id),
        spare_slot_ids=spares,
        collection_id=therapy.collections[-1].collection_id,
        apheresis_dins=tuple(journey.apheresis_dins),
        batch_id=journey.batch_id,
        product_dins=tuple(journey.product_dins),
        apheresis_shipment=apheresis,
        product_shipment=product,
        failure_ids=tuple(release.post_release_failure_ids),
        free_courier=next(c for c, _ in COURIERS if c not in busy),
        people=People(
            collector=person(collector, own(collector)),
            nurse=person(nurse, own(nurse)),
            second_nurse=person(second_nurse, own(second_nurse)),
            physician=person(hospital.physician, SIGNING_PASSWORD),
            gmp_operator=person(gmp.operator),
            analyst=person(gmp.analyst),
            qp=person(gmp.qp, SIGNING_PASSWORD),
        ),
        courier_password=COURIER_PASSWORD,
    )


def book_spare_slots(clients: Clients, hospital: Hospital, coi: str) -> tuple[str, str]:
    """Two more slots for the COI, on days no journey books (capacity opened for them)."""
    gmp = hospital.gmp
    station = clients.manufacturing(gmp.site_id)
    intake = clients.intake(hospital.site_id)
    booked = []
    for days in SPARE_SLOT_DAYS:
        day = (date.today() + timedelta(days=days)).isoformat()
        capacity = mfg_pb.SetSlotCapacityRequest(
            operator=gmp.operator, manufacturing_site_id=gmp.site_id, slot_date=day, capacity=1
        )
        call(station.SetSlotCapacity, capacity)
        booking = intake_pb.BookSlotRequest(
            operator=hospital.collection_staff[0],
            coi=coi,
            manufacturing_site_id=gmp.site_id,
            slot_date=day,
        )
        booked.append(call(intake.BookSlot, booking).slot.slot_id)
    return booked[0], booked[1]


def openapi_documents(system: System) -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, as one running instance of it serves it."""
    sites: dict[str, str] = {}
    for context, site_id in services_of(system.consortium):
        sites.setdefault(context, site_id)

    def document(context: str, site_id: str) -> dict[str, Any] | None:
        reply = httpx.get(f"{system.http_base(context, site_id)}/openapi.json", trust_env=False)
        return reply.json() if reply.status_code == 200 else None

    return {
        context: eventually(lambda c=context, s=site: document(c, s), f"{context}'s OpenAPI")  # type: ignore[misc]
        for context, site in sites.items()
    }


def test_every_method_and_route_answers_each_caller_as_its_declared_access_says(
    consortium_system: RunningConsortium, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = consortium_system
    seed = seed_journey(running)
    found = inventory(openapi_documents(running.system))
    unbuilt = missing([m.key for m in found.methods], GRPC_BUILDERS)
    unbuilt += missing([r.key for r in found.routes], HTTP_BUILDERS)
    credentials = Credentials(
        running.clients.pki, tmp_path / "authz-callers", running.clients.courier_tokens
    )
    matrix = AuthorizationMatrix(running.system, credentials, seed)
    results = matrix.run(endpoints(found, GRPC_BUILDERS, HTTP_BUILDERS))
    report = MatrixReport(
        len(found.methods), len(found.routes), results, found.undeclared, unbuilt, found.stale
    )
    print(report.listing())  # every call: shown with -s, and when the test fails
    with capsys.disabled():
        print(f"\n{report.table()}\n{report.summary_line()}")
    findings = report.findings()
    assert not findings, "\n".join([report.summary_line(), *findings])
    assert not report.unauthorized
    assert not report.wrongly_refused
