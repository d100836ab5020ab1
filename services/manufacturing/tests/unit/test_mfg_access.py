"""Each site acts only on its own patients (issue 13), through the gRPC (mTLS) and HTTP (site
token) adapters over one application with in-memory facts:

- a slot is booked only by the COI's enrolling site as intake's verified `PatientEnrolled`
  told manufacturing; another hospital, or a COI never enrolled, is NOT_FOUND (404) and holds
  no capacity;
- the calendar shows capacity and the number booked to every caller with the role, but the
  booking details (slot, COI, booking site) only of the caller's own bookings (all of them to
  this GMP site and auditors);
- expected units (DINs) only to the GMP site they are bound for (this one) and auditors;
- a slot is released only by its booking site or this GMP site;
- every gRPC method and HTTP route declares its access.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1.common_pb2 import Operator
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.access_policy import Relation, reads
from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.ids import issue_coi
from v2v_testkit.manufacturing import (
    AUDITOR,
    COI,
    DAY,
    FIN,
    GMP,
    HOSPITAL,
    OTHER_COI,
    OTHER_GMP,
    OTHER_HOSPITAL,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    declare_din_block,
)

SITES = [
    f"{HOSPITAL}:collection",
    f"{OTHER_HOSPITAL}:collection",
    f"{GMP}:manufacturing",
    f"{OTHER_GMP}:manufacturing",
    f"{AUDITOR}:auditor",
]
OPERATOR = Operator(user_id="u-op", printed_name="Grace Operator")
NEVER_ISSUED = issue_coi("A1234", 25, 999_999).value
Running = tuple[ManufacturingService, InMemoryManufacturingFacts]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    declare_din_block(directory)
    return directory


@pytest.fixture
def service(pki: Path) -> Iterator[Running]:
    facts = InMemoryManufacturingFacts()
    facts.enrolled(COI, HOSPITAL)
    facts.enrolled(OTHER_COI, OTHER_HOSPITAL)
    settings = ManufacturingSettings(
        site_id=GMP, fin=FIN, pki_dir=pki, postgres_dsn=None, sqlite_path=None
    )
    running = bootstrap(settings, facts=facts, clock=Clock())
    running.start_grpc("127.0.0.1:0")
    yield running, facts
    running.stop()


class Stubs:
    """One gRPC stub per site, each over its own site's mTLS certificate."""

    def __init__(self, pki: Path, service: ManufacturingService) -> None:
        assert service.grpc is not None
        self._channels: list[Any] = []
        self._target = f"127.0.0.1:{service.grpc.port}"
        self._pki = pki

    def __call__(self, site: str) -> Any:
        credentials = channel_credentials(SiteTlsFiles.for_site(self._pki, site))
        channel = secure_channel(self._target, credentials)
        self._channels.append(channel)
        return pb_grpc.ManufacturingServiceStub(channel)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


@pytest.fixture
def stubs(pki: Path, service: Running) -> Iterator[Stubs]:
    made = Stubs(pki, service[0])
    yield made
    made.close()


def code_of(call: Any, request: Any) -> Any:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=5)
    return raised.value.code()


def open_day(stubs: Stubs, capacity: int = 3) -> None:
    stubs(GMP).SetSlotCapacity(
        pb.SetSlotCapacityRequest(
            operator=OPERATOR, manufacturing_site_id=GMP, slot_date=DAY, capacity=capacity
        ),
        timeout=5,
    )


def booking(coi: str) -> pb.BookSlotRequest:
    return pb.BookSlotRequest(operator=OPERATOR, coi=coi, manufacturing_site_id=GMP, slot_date=DAY)


def calendar_of(stubs: Stubs, site: str) -> Any:
    request = pb.GetSlotCalendarRequest(manufacturing_site_id=GMP, slot_date=DAY)
    return stubs(site).GetSlotCalendar(request, timeout=5)


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def published(service: ManufacturingService) -> list[Any]:
    app = service.app
    return [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]


def test_grpc_a_slot_is_booked_only_for_a_coi_the_caller_enrolled(
    stubs: Stubs, service: Running
) -> None:
    running, _ = service
    open_day(stubs)
    other_hospital = stubs(OTHER_HOSPITAL)
    assert code_of(other_hospital.BookSlot, booking(COI)) == grpc.StatusCode.NOT_FOUND
    assert code_of(other_hospital.BookSlot, booking(NEVER_ISSUED)) == grpc.StatusCode.NOT_FOUND
    hospital = stubs(HOSPITAL)
    assert code_of(hospital.BookSlot, booking(NEVER_ISSUED)) == grpc.StatusCode.NOT_FOUND
    assert code_of(hospital.BookSlot, booking(OTHER_COI)) == grpc.StatusCode.NOT_FOUND
    # refused bookings hold no capacity and record nothing on any chain
    assert calendar_of(stubs, GMP).booked_count == 0 and not published(running)
    slot = hospital.BookSlot(booking(COI), timeout=5)
    assert slot.slot_id == f"{GMP}/{DAY}/1"
    assert [(b.slot_id, b.coi) for b in calendar_of(stubs, GMP).booked] == [(slot.slot_id, COI)]


def test_http_a_slot_is_booked_only_for_a_coi_the_caller_enrolled(
    pki: Path, stubs: Stubs, service: Running
) -> None:
    running, _ = service
    open_day(stubs)
    client = TestClient(running.http_app, raise_server_exceptions=False)
    operator = {"user_id": "u-nurse", "printed_name": "Nurse One"}
    route = f"/v1/calendars/{GMP}/{DAY}/bookings"
    for coi in (COI, NEVER_ISSUED):
        refused = client.post(
            route, json={"operator": operator, "coi": coi}, headers=auth(pki, OTHER_HOSPITAL)
        )
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert not published(running)
    booked = client.post(
        route, json={"operator": operator, "coi": COI}, headers=auth(pki, HOSPITAL)
    )
    assert booked.status_code == 201 and booked.json()["slot_id"] == f"{GMP}/{DAY}/1"


def test_grpc_calendar_shows_counts_to_all_and_bookings_only_to_their_site(
    stubs: Stubs,
) -> None:
    open_day(stubs)
    mine = stubs(HOSPITAL).BookSlot(booking(COI), timeout=5).slot_id
    theirs = stubs(OTHER_HOSPITAL).BookSlot(booking(OTHER_COI), timeout=5).slot_id
    seen_by_other = calendar_of(stubs, OTHER_HOSPITAL)
    assert (seen_by_other.capacity, seen_by_other.booked_count) == (3, 2)
    assert [(b.slot_id, b.coi, b.booking_site_id) for b in seen_by_other.booked] == [
        (theirs, OTHER_COI, OTHER_HOSPITAL)
    ]
    assert COI not in str(seen_by_other) and HOSPITAL not in str(seen_by_other)
    seen_by_hospital = calendar_of(stubs, HOSPITAL)
    assert seen_by_hospital.booked_count == 2
    assert [b.slot_id for b in seen_by_hospital.booked] == [mine]
    seen_by_other_gmp = calendar_of(stubs, OTHER_GMP)
    assert (seen_by_other_gmp.booked_count, list(seen_by_other_gmp.booked)) == (2, [])
    for everything in (GMP, AUDITOR):
        view = calendar_of(stubs, everything)
        assert view.booked_count == 2
        assert sorted(b.slot_id for b in view.booked) == sorted([mine, theirs])


def test_http_calendar_shows_counts_to_all_and_bookings_only_to_their_site(
    pki: Path, stubs: Stubs, service: Running
) -> None:
    running, _ = service
    open_day(stubs)
    mine = stubs(HOSPITAL).BookSlot(booking(COI), timeout=5).slot_id
    stubs(OTHER_HOSPITAL).BookSlot(booking(OTHER_COI), timeout=5)
    client = TestClient(running.http_app, raise_server_exceptions=False)
    seen = client.get(f"/v1/calendars/{GMP}/{DAY}", headers=auth(pki, HOSPITAL)).json()
    assert (seen["capacity"], seen["booked"]) == (3, 2)
    assert seen["bookings"] == [
        {"slot_id": mine, "coi": COI, "booking_site_id": HOSPITAL, "recorded": True}
    ]
    everything = client.get(f"/v1/calendars/{GMP}/{DAY}", headers=auth(pki, AUDITOR)).json()
    assert everything["booked"] == 2 and len(everything["bookings"]) == 2


def test_expected_units_only_to_the_gmp_site_they_are_bound_for_and_auditors(
    pki: Path, stubs: Stubs, service: Running
) -> None:
    running, facts = service
    din = apheresis_din(1)
    facts.package(din, COI)
    request = pb.ListExpectedUnitsRequest(coi=COI)
    assert code_of(stubs(OTHER_GMP).ListExpectedUnits, request) == grpc.StatusCode.NOT_FOUND
    for allowed in (GMP, AUDITOR):
        units = stubs(allowed).ListExpectedUnits(request, timeout=5).units
        assert [u.din for u in units] == [din]
    client = TestClient(running.http_app, raise_server_exceptions=False)
    refused = client.get(f"/v1/expected-units/{COI}", headers=auth(pki, OTHER_GMP))
    assert refused.status_code == 404 and din not in refused.text
    listed = client.get(f"/v1/expected-units/{COI}", headers=auth(pki, GMP))
    assert [u["din"] for u in listed.json()] == [din]


def test_a_slot_is_released_only_by_its_booking_site_or_this_gmp_site(
    pki: Path, stubs: Stubs, service: Running
) -> None:
    running, _ = service
    open_day(stubs)
    first = stubs(HOSPITAL).BookSlot(booking(COI), timeout=5).slot_id
    second = stubs(HOSPITAL).BookSlot(booking(COI), timeout=5).slot_id

    def release(slot_id: str) -> pb.ReleaseSlotRequest:
        return pb.ReleaseSlotRequest(operator=OPERATOR, slot_id=slot_id, reason="rescheduled")

    for stranger in (OTHER_HOSPITAL, OTHER_GMP):
        assert code_of(stubs(stranger).ReleaseSlot, release(first)) == grpc.StatusCode.NOT_FOUND
    client = TestClient(running.http_app, raise_server_exceptions=False)
    body = {
        "operator": {"user_id": "u-nurse", "printed_name": "Nurse One"},
        "slot_id": first,
        "reason": "mine now",
    }
    refused = client.post("/v1/slot-releases", json=body, headers=auth(pki, OTHER_HOSPITAL))
    assert refused.status_code == 404
    assert calendar_of(stubs, GMP).booked_count == 2
    stubs(HOSPITAL).ReleaseSlot(release(first), timeout=5)
    stubs(GMP).ReleaseSlot(release(second), timeout=5)
    assert calendar_of(stubs, GMP).booked_count == 0


def test_every_method_and_route_declares_its_access(service: Running) -> None:
    from v2v_manufacturing.adapters import grpc_api
    from v2v_platform.access_policy import Access

    methods = pb.DESCRIPTOR.services_by_name["ManufacturingService"].methods
    assert {m.name for m in methods} == set(grpc_api.ACCESS)
    assert {
        f"/{grpc_api.SERVICE_NAME}/{name}": access.roles for name, access in grpc_api.ACCESS.items()
    } == grpc_api.REQUIRED_ROLES
    from v2v_manufacturing.adapters.http_api import PRODUCT_LABEL

    running, _ = service
    for path, operations in running.http_app.openapi()["paths"].items():
        for verb, operation in operations.items():
            declared = Access.from_openapi(operation)
            if path == "/v1/units/{din}/label.pdf":  # HTTP only: a PDF, no gRPC twin
                assert declared == PRODUCT_LABEL == reads(Relation.OWN_SITE, Role.MANUFACTURING)
                continue
            assert declared in grpc_api.ACCESS.values(), f"{verb} {path}"
