"""Handoffs inside one site (issue 14 item 5): a department of a site is a custody party of its
own (`site:<SITE_ID>/<department>`), acting with its site's credentials in the role it stands
for; a shipment goes between two departments of one site (never to the one it comes from) with
the same scans, offers and handoffs, and the department's site is the party authorization
knows. Cross-site shipments behave as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient

from v2v.common.v1 import common_pb2
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_logistics.application import LogisticsApplication, NewShipment, ScanRefusedAtCreation
from v2v_logistics.bootstrap import LogisticsService
from v2v_logistics.domain.matching import Mismatch, ScanRefused
from v2v_logistics.domain.parties import (
    Caller,
    Offer,
    Parties,
    UnitCustody,
    acting_problem,
    check_offer,
    check_shippable,
    party_of,
    route_problem,
)
from v2v_logistics.domain.values import (
    Department,
    KnownUnit,
    UnitKind,
    department_of,
    parse_department,
    parse_party,
    site_of,
    site_party,
)
from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput, NotFound
from v2v_platform.limits import MAX_ID_CHARS
from v2v_platform.proto_values import timestamp
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    attempt,
    courier,
    din,
    hand_to_courier,
    offer,
    site_scope,
    site_user,
    stored_events,
)

SHEBA = "SHEBA"
COLLECTION, GMP, QC, WARD = (f"site:{SHEBA}/{d}" for d in ("collection", "gmp", "qc", "ward"))
PORTER = "courier:P-1"
SITES = [
    f"{SHEBA}:collection,manufacturing,qc,infusion,courier",
    f"{ORIGIN}:collection",
    f"{SERVICE_SITE}:courier",
]
OPERATOR = {"user_id": "u-nurse", "printed_name": "Nora Nurse"}


def reason(found: object) -> str:
    assert isinstance(found, Mismatch), found
    return found.reason_code


# the party grammar


@pytest.mark.parametrize(
    ("party", "site", "department"),
    [
        ("site:SHEBA/collection", "SHEBA", "collection"),
        ("site:SHEBA/gmp", "SHEBA", "gmp"),
        ("site:SHEBA/qc", "SHEBA", "qc"),
        ("site:SHEBA/ward", "SHEBA", "ward"),
        ("site:SHEBA", "SHEBA", ""),
        ("courier:P-1", "", ""),
    ],
)
def test_a_department_is_a_party_of_its_site(party: str, site: str, department: str) -> None:
    assert parse_party(f" {party} ") == party
    assert (site_of(party), department_of(party)) == (site, department)
    if site:
        assert site_party(site, department) == party


@pytest.mark.parametrize(
    "party",
    [
        "site:SHEBA/",
        "site:SHEBA/pharmacy",
        "site:SHEBA/GMP",
        "site:SHEBA/gmp/qc",
        "site:sheba/gmp",
        "site:/gmp",
        "site:SHEBA gmp",
        "courier:P-1/gmp",
    ],
)
def test_a_malformed_department_party_is_refused(party: str) -> None:
    with pytest.raises(InvalidInput, match="site:<SITE_ID>/<department>"):
        parse_party(party)


def test_the_longest_department_party_is_within_the_id_limit() -> None:
    longest = site_party("S" * 32, max((d.value for d in Department), key=len))
    assert parse_party(longest) == longest and len(longest) <= MAX_ID_CHARS


def test_each_department_stands_for_one_role() -> None:
    assert {d.value: d.role for d in Department} == {
        "collection": Role.COLLECTION,
        "gmp": Role.MANUFACTURING,
        "qc": Role.QC,
        "ward": Role.INFUSION,
    }
    assert parse_department("") == ""
    with pytest.raises(InvalidInput, match="collection, gmp, qc, ward"):
        parse_department("pharmacy")


@pytest.mark.parametrize(
    ("party", "site", "role", "allowed"),
    [
        (GMP, SHEBA, "manufacturing", True),
        (WARD, SHEBA, "infusion", True),
        (GMP, SHEBA, "collection", False),
        (GMP, ORIGIN, "manufacturing", False),
        (f"site:{SHEBA}", SHEBA, "collection", True),
    ],
    ids=["gmp", "ward", "gmp-in-another-role", "another-site", "whole-site"],
)
def test_a_site_acts_for_a_department_in_its_role_only(
    party: str, site: str, role: str, allowed: bool
) -> None:
    assert (acting_problem(party, site, role) is None) is allowed


# the intra-site rule


@pytest.mark.parametrize(
    ("origin", "destination", "problem"),
    [
        (COLLECTION, GMP, None),
        (GMP, QC, None),
        (QC, WARD, None),
        (f"site:{ORIGIN}", f"site:{DESTINATION}", None),
        (f"site:{ORIGIN}/collection", f"site:{DESTINATION}/gmp", None),
        (f"site:{ORIGIN}", f"site:{DESTINATION}/gmp", None),
        (GMP, GMP, "the destination is the origin department (site:SHEBA/gmp)"),
        (f"site:{SHEBA}", f"site:{SHEBA}", "the destination is the origin site"),
        (f"site:{SHEBA}", GMP, "name both departments"),
        (GMP, f"site:{SHEBA}", "name both departments"),
    ],
)
def test_a_shipment_goes_elsewhere_and_within_a_site_between_two_departments(
    origin: str, destination: str, problem: str | None
) -> None:
    found = route_problem(origin, destination)
    assert found is None if problem is None else problem in str(found)


IN_HOUSE = Parties(SHEBA, SHEBA, "", COLLECTION, frozenset(), "collection", "gmp")


def test_an_intra_site_shipment_goes_to_its_destination_department_only() -> None:
    assert IN_HOUSE.receivers() == {GMP}
    assert check_offer(IN_HOUSE, COLLECTION, GMP) == Offer(COLLECTION, GMP)
    for stranger in (QC, WARD, f"site:{SHEBA}"):
        assert reason(check_offer(IN_HOUSE, COLLECTION, stranger)) == "not-a-party"
    assert reason(check_offer(IN_HOUSE, GMP, COLLECTION)) == "wrong-custodian"


def test_the_site_of_a_department_is_the_party_for_authorization() -> None:
    for caller in (Caller.site(SHEBA), Caller(QC), Caller(WARD), Caller(GMP)):
        assert party_of(IN_HOUSE, caller) == caller.party
    assert reason(party_of(IN_HOUSE, Caller(f"site:{ORIGIN}/collection"))) == "not-a-party"


UNIT = KnownUnit(
    "A12342500000100", "CHA123425000017", UnitKind.APHERESIS, Condition.FRESH_COLD,
    datetime(2025, 6, 1, tzinfo=UTC), f"site:{SHEBA}",
)  # fmt: skip


def test_a_department_ships_what_its_site_holds() -> None:
    at_site = UnitCustody(f"site:{SHEBA}", frozenset({f"site:{SHEBA}"}))
    assert check_shippable(UNIT.din, UNIT, at_site, COLLECTION) == UNIT
    assert check_shippable(UNIT.din, UNIT, at_site, f"site:{SHEBA}") == UNIT
    assert reason(check_shippable(UNIT.din, UNIT, at_site, f"site:{ORIGIN}/gmp")) == "unknown-unit"


def test_what_a_department_holds_only_that_department_ships() -> None:
    at_gmp = UnitCustody(GMP, frozenset({f"site:{SHEBA}", COLLECTION, GMP}))
    assert check_shippable(UNIT.din, UNIT, at_gmp, GMP) == UNIT
    for other in (COLLECTION, WARD, f"site:{SHEBA}"):
        assert reason(check_shippable(UNIT.din, UNIT, at_gmp, other)) == "wrong-custodian"


# the application: an in-house hospital


def package(facts: InMemoryFacts, n: int, kind: UnitKind = UnitKind.APHERESIS) -> str:
    return facts.package(din(n), site=SHEBA, kind=kind)


def intra_site(
    units: list[str], origin: str, destination: str, courier_id: str = ""
) -> NewShipment:
    return NewShipment(
        units, Condition.FRESH_COLD, SHEBA, "BOX-1", "LOGGER-1", courier_id, origin, destination
    )


def department_user(department: str) -> Any:
    return site_user(SHEBA, Department(department).role.value)


def test_collection_hands_bags_to_gmp_scanning_every_bag(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    bags = [package(facts, 1), package(facts, 2)]
    created = app.create_shipment(
        intra_site(bags, "collection", "gmp"), department_user("collection")
    )
    assert (created.origin_site_id, created.destination_site_id) == (SHEBA, SHEBA)
    assert (created.custodian, created.origin_party, created.destination_party) == (
        COLLECTION,
        COLLECTION,
        GMP,
    )
    shipment_id = created.shipment_id
    offer(app, shipment_id, COLLECTION, GMP, clock())
    gmp = department_user("gmp")
    with pytest.raises(ScanRefused) as missing:
        app.receive_shipment(shipment_id, bags[:1], "", None, gmp, department="gmp")
    assert missing.value.reason_code == "missing-unit"
    for wrong in ("ward", "qc"):
        with pytest.raises(ScanRefused) as elsewhere:
            app.receive_shipment(
                shipment_id, bags, "", None, department_user(wrong), department=wrong
            )
        assert elsewhere.value.reason_code == "wrong-destination"
    with pytest.raises(ScanRefused) as whole_site:
        app.receive_shipment(shipment_id, bags, "", None, gmp)
    assert whole_site.value.reason_code == "wrong-destination"
    view = app.receive_shipment(shipment_id, bags, COLLECTION, None, gmp, department="gmp")
    assert (view.status, view.custodian) == ("delivered", GMP)
    events = stored_events(app)
    created_event, delivered = events[0], events[-1]
    assert (created_event.origin_department, created_event.destination_department) == (
        "collection",
        "gmp",
    )
    assert created_event.custodian == COLLECTION and created_event.actor["role"] == "collection"
    assert delivered.destination_department == "gmp" and delivered.from_party == COLLECTION
    assert delivered.actor["role"] == "manufacturing"
    assert [e.reason_code for e in events if type(e).__name__ == "ScanMismatchRecorded"] == [
        "missing-unit",
        "wrong-destination",
        "wrong-destination",
        "wrong-destination",
    ]


def test_a_bag_gmp_holds_is_shipped_by_gmp_only(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    bags = [package(facts, 1)]
    first = app.create_shipment(
        intra_site(bags, "collection", "gmp"), department_user("collection")
    )
    offer(app, first.shipment_id, COLLECTION, GMP, clock())
    app.receive_shipment(
        first.shipment_id, bags, "", None, department_user("gmp"), department="gmp"
    )
    with pytest.raises(ScanRefusedAtCreation) as again:
        app.create_shipment(intra_site(bags, "collection", "qc"), department_user("collection"))
    assert again.value.reason_code == "wrong-custodian"
    sample = app.create_shipment(intra_site(bags, "gmp", "qc"), department_user("gmp"))
    assert sample.custodian == GMP and sample.destination_party == QC


def test_gmp_sends_the_product_to_the_ward_by_an_in_house_porter(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    bags = [package(facts, 5, UnitKind.PRODUCT), package(facts, 6, UnitKind.PRODUCT)]
    created = app.create_shipment(intra_site(bags, "gmp", "ward", "P-1"), department_user("gmp"))
    assert created.offered_to == PORTER
    taken = hand_to_courier(app, created.shipment_id, bags, "P-1", GMP, clock())
    assert (taken.custodian, taken.status) == (PORTER, "picked-up")
    offered = app.offer_handoff(created.shipment_id, attempt(WARD, PORTER, clock()), courier("P-1"))
    assert offered.offered_to == WARD
    ward = department_user("ward")
    view = app.receive_shipment(created.shipment_id, bags, PORTER, None, ward, department="ward")
    assert (view.status, view.custodian) == ("delivered", WARD)
    handed = [e for e in stored_events(app) if type(e).__name__ == "CustodyHandedOver"]
    assert [(e.from_party, e.to_party) for e in handed] == [(GMP, PORTER)]
    scanned = [e for e in stored_events(app) if type(e).__name__ == "UnitScanned"]
    assert sorted(e.din for e in scanned) == sorted(bags)


@pytest.mark.parametrize(
    ("origin", "destination", "problem"),
    [
        ("", "", "the destination is the origin site"),
        ("gmp", "gmp", "the destination is the origin department"),
        ("collection", "", "name both departments"),
        ("", "gmp", "name both departments"),
        ("collection", "pharmacy", "is not one of collection, gmp, qc, ward"),
    ],
)
def test_refused_intra_site_routes(
    app: LogisticsApplication, facts: InMemoryFacts, origin: str, destination: str, problem: str
) -> None:
    by = department_user(origin) if origin else site_user(SHEBA)
    with pytest.raises(InvalidInput, match=problem):
        app.create_shipment(intra_site([package(facts, 1)], origin, destination), by)
    assert stored_events(app) == []


def test_a_site_acts_for_a_department_only_in_the_role_it_stands_for(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    bags = [package(facts, 1)]
    with pytest.raises(Forbidden, match="manufacturing role"):
        app.create_shipment(intra_site(bags, "gmp", "ward"), department_user("collection"))
    created = app.create_shipment(
        intra_site(bags, "collection", "gmp"), department_user("collection")
    )
    as_collection = department_user("collection")
    with pytest.raises(Forbidden):
        app.receive_shipment(created.shipment_id, bags, "", None, as_collection, department="gmp")
    with pytest.raises(Forbidden):
        app.offer_handoff(
            created.shipment_id, attempt(GMP, COLLECTION, clock()), site_user(SHEBA, "qc")
        )
    assert [type(e).__name__ for e in stored_events(app)] == ["Created"]


def test_another_site_does_not_see_an_intra_site_shipment(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    created = app.create_shipment(
        intra_site([package(facts, 1)], "collection", "gmp"), department_user("collection")
    )
    assert app.shipment(created.shipment_id, site_scope(SHEBA)).custodian == COLLECTION
    with pytest.raises(NotFound):
        app.shipment(created.shipment_id, site_scope(ORIGIN))


def test_a_cross_site_shipment_to_a_department_is_taken_by_that_department(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    bag = facts.package(din(8))
    request = NewShipment([bag], Condition.FRESH_COLD, SHEBA, "BOX-1", "LOGGER-1", "C-1", "", "gmp")
    created = app.create_shipment(request, site_user())
    assert (created.custodian, created.destination_party) == (f"site:{ORIGIN}", GMP)
    hand_to_courier(app, created.shipment_id, [bag], "C-1", f"site:{ORIGIN}", clock())
    offer(app, created.shipment_id, "courier:C-1", GMP, clock())
    view = app.receive_shipment(
        created.shipment_id, [bag], "", None, department_user("gmp"), department="gmp"
    )
    assert view.custodian == GMP


# over HTTP


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


def token(pki: Path, site_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site_id)}"}


def create_body(units: list[str], **fields: str) -> dict[str, Any]:
    return {
        "operator": OPERATOR,
        "manifest": units,
        "condition": "fresh-cold",
        "destination_site_id": SHEBA,
        "shipper_id": "BOX-1",
        "data_logger_id": "LOGGER-1",
        **fields,
    }


def test_an_intra_site_shipment_over_http(
    client: TestClient, pki: Path, facts: InMemoryFacts
) -> None:
    bags = [package(facts, 1)]
    sheba = token(pki, SHEBA)
    body = create_body(bags, department="collection", destination_department="gmp")
    created = client.post("/v1/shipments", json=body, headers=sheba)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert (shown["custodian"], shown["origin_party"], shown["destination_party"]) == (
        COLLECTION,
        COLLECTION,
        GMP,
    )
    same = client.post(
        "/v1/shipments", json=create_body(bags, department="gmp", destination_department="gmp"),
        headers=sheba,
    )  # fmt: skip
    assert same.status_code == 422 and "origin department" in same.text
    receipt = {"operator": OPERATOR, "scanned_labels": bags, "department": "gmp"}
    path = f"/v1/shipments/{shown['shipment_id']}/receipt"
    not_offered = client.post(path, json=receipt, headers=sheba)
    assert not_offered.status_code == 409 and not_offered.json()["reason_code"] == "not-offered"


def test_a_site_without_the_departments_role_cannot_act_for_it_over_http(
    client: TestClient, pki: Path, facts: InMemoryFacts
) -> None:
    bag = facts.package(din(3))
    body = create_body([bag], department="gmp", destination_site_id=SHEBA)
    refused = client.post("/v1/shipments", json=body, headers=token(pki, ORIGIN))
    assert refused.status_code == 403 and "manufacturing role" in refused.text
    unknown = client.post(
        "/v1/shipments", json=create_body([bag], department="pharmacy"), headers=token(pki, ORIGIN)
    )
    assert unknown.status_code == 422


# over gRPC


def test_a_department_scans_and_takes_over_grpc_in_its_role(
    pki: Path, service: LogisticsService, facts: InMemoryFacts
) -> None:
    service.start_grpc("127.0.0.1:0")
    assert service.grpc is not None
    bags = [package(facts, 1), package(facts, 2)]
    stubs, channels = {}, []
    for site_id in (SHEBA, ORIGIN):
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, site_id))
        channel = secure_channel(f"127.0.0.1:{service.grpc.port}", credentials)
        channels.append(channel)
        stubs[site_id] = pb_grpc.LogisticsServiceStub(channel)
    operator = common_pb2.Operator(user_id="u-gmp", printed_name="Grace Operator")
    created = (
        stubs[SHEBA]
        .CreateShipment(
            pb.CreateShipmentRequest(
                operator=operator,
                manifest_dins=bags,
                condition=common_pb2.CONDITION_FRESH_COLD,
                destination_site_id=SHEBA,
                shipper_id="BOX-1",
                data_logger_id="LOGGER-1",
                department="collection",
                destination_department="gmp",
            ),
            timeout=10,
        )
        .shipment
    )
    scan = pb.RecordScanRequest(
        operator=operator,
        shipment_id=created.shipment_id,
        idempotency_key="k-1",
        scanned_at=timestamp(Clock().now),
        label=bags[0],
        department="gmp",
    )
    assert stubs[SHEBA].RecordScan(scan, timeout=10).remaining_dins == [bags[1]]
    with pytest.raises(grpc.RpcError) as denied:
        stubs[ORIGIN].RecordScan(scan, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    confirm = pb.ConfirmHandoffRequest(
        operator=operator,
        shipment_id=created.shipment_id,
        idempotency_key="k-2",
        scanned_at=timestamp(Clock().now),
        department="gmp",
    )
    with pytest.raises(grpc.RpcError) as not_offered:
        stubs[SHEBA].ConfirmHandoff(confirm, timeout=10)
    assert str(not_offered.value.details()).startswith("not-offered: ")
    for channel in channels:
        channel.close()
    scanned, refused = stored_events(service.app)[-2:]
    assert (scanned.receiving_party, scanned.actor["role"]) == (GMP, "manufacturing")
    assert (refused.reason_code, refused.receiving_party) == ("not-offered", GMP)
