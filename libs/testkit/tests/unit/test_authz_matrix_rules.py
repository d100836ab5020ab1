"""The authorization matrix's own rules, without a running system: which outcome each kind
of caller must get, how an answer is judged, the inventory from the descriptors, the minted
callers' certificates, and the request builders against the current contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from google.protobuf import json_format, message_factory

from v2v_platform.access_policy import Access, Relation, reads, writes
from v2v_platform.auth.identity import Role, identity_from_certificate
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.http_api import SiteTokenVerifier
from v2v_testkit.authz.callers import (
    ORDER,
    UNRELATED_SITE,
    CallerKind,
    Credentials,
    other_roles,
    unrelated_roles,
)
from v2v_testkit.authz.expectations import (
    Answer,
    Expect,
    Outcome,
    Verdict,
    expected,
    grpc_answer,
    http_answer,
    judge,
)
from v2v_testkit.authz.grpc_requests import GRPC_BUILDERS
from v2v_testkit.authz.http_requests import HTTP_BUILDERS
from v2v_testkit.authz.inventory import Inventory, grpc_methods, http_routes
from v2v_testkit.authz.matrix import unasked
from v2v_testkit.authz.report import MatrixReport
from v2v_testkit.authz.requests import Request
from v2v_testkit.authz.seed import People, Person, Seed, SeededShipment
from v2v_testkit.contracts import contracts_dir

BOOK = writes(Relation.PATIENT, Role.COLLECTION)
READ_BATCH = reads(Relation.PATIENT, Role.MANUFACTURING, Role.AUDITOR)
CALENDAR = reads(Relation.FILTERED, Role.MANUFACTURING, Role.COLLECTION, Role.AUDITOR)
COURIER_LIST = reads(Relation.FILTERED, Role.COURIER)


def seed() -> Seed:
    someone = Person("u-1", "Una User", "secret")
    return Seed(
        coi="CHA123426000017",
        hospital="HOSP-A",
        gmp="GMP-1",
        logistics="LOGI-1",
        auditor="AUDIT",
        slot_id="SLOT-1",
        slot_date="2026-12-24",
        spare_slot_ids=("SLOT-2", "SLOT-3"),
        collection_id="COL-1",
        apheresis_dins=("A123426000001X0",),
        batch_id="BATCH-1",
        product_dins=("P123426000002X0",),
        apheresis_shipment=SeededShipment("SHIP-1", "HOSP-A", "GMP-1", "C-2", ("A1",)),
        product_shipment=SeededShipment("SHIP-2", "GMP-1", "HOSP-A", "C-3", ("P1",)),
        failure_ids=("FAIL-1",),
        free_courier="C-1",
        people=People(someone, someone, someone, someone, someone, someone, someone),
    )


def outcome(answer: Answer, text: str = "") -> Outcome:
    return Outcome(answer.value, answer, "", text)


def test_refused_callers_are_tried_before_the_auditor_and_the_related_site() -> None:
    assert ORDER[-2:] == (CallerKind.AUDITOR, CallerKind.RELATED)
    assert set(ORDER) == set(CallerKind)


def test_what_each_kind_of_caller_must_get() -> None:
    assert expected(CallerKind.NO_CREDENTIALS, READ_BATCH) is Expect.REFUSED
    assert expected(CallerKind.WRONG_ROLE, READ_BATCH) is Expect.REFUSED
    assert expected(CallerKind.UNRELATED, READ_BATCH) is Expect.REFUSED
    assert expected(CallerKind.UNRELATED, BOOK) is Expect.REFUSED
    assert expected(CallerKind.UNRELATED, CALENDAR) is Expect.UNLEAKED
    assert expected(CallerKind.RELATED, BOOK) is Expect.ALLOWED
    assert expected(CallerKind.AUDITOR, READ_BATCH) is Expect.ALLOWED
    assert expected(CallerKind.AUDITOR, BOOK) is Expect.REFUSED
    assert expected(CallerKind.AUDITOR, COURIER_LIST) is Expect.REFUSED  # holds no role for it


def test_a_call_on_no_patient_data_has_no_record_to_be_unrelated_to() -> None:
    sign_in = writes(Relation.NO_PATIENT_DATA, Role.COURIER)
    assert expected(CallerKind.UNRELATED, sign_in) is Expect.UNLEAKED
    assert expected(CallerKind.WRONG_ROLE, sign_in) is Expect.REFUSED
    assert expected(CallerKind.UNRELATED, writes(Relation.FILTERED, Role.QC)) is Expect.REFUSED


def test_a_write_that_declares_the_auditor_role_is_still_refused_to_the_auditor() -> None:
    careless = writes(Relation.OWN_SITE, Role.MANUFACTURING, Role.AUDITOR)
    verdict = judge(CallerKind.AUDITOR, careless, outcome(Answer.OK), [], False)
    assert verdict is Verdict.UNAUTHORIZED_SUCCESS


def test_wrong_role_and_unrelated_callers_hold_the_roles_the_matrix_says() -> None:
    assert other_roles(BOOK.roles) == frozenset(Role) - {Role.COLLECTION}
    assert unrelated_roles(READ_BATCH.roles) == {Role.MANUFACTURING}
    assert not unrelated_roles({Role.AUDITOR})


@pytest.mark.parametrize(
    ("kind", "access", "answer", "verdict"),
    [
        (CallerKind.NO_CREDENTIALS, BOOK, Answer.UNREACHABLE, Verdict.REFUSED),
        (CallerKind.NO_CREDENTIALS, BOOK, Answer.UNAUTHENTICATED, Verdict.REFUSED),
        (CallerKind.WRONG_ROLE, BOOK, Answer.FORBIDDEN, Verdict.REFUSED),
        (CallerKind.WRONG_ROLE, BOOK, Answer.OK, Verdict.UNAUTHORIZED_SUCCESS),
        (CallerKind.WRONG_ROLE, BOOK, Answer.NOT_FOUND, Verdict.UNAUTHORIZED_PASS),
        (CallerKind.UNRELATED, BOOK, Answer.NOT_FOUND, Verdict.REFUSED),
        (CallerKind.UNRELATED, BOOK, Answer.FORBIDDEN, Verdict.REFUSED),
        (CallerKind.UNRELATED, BOOK, Answer.OK, Verdict.UNAUTHORIZED_SUCCESS),
        (CallerKind.UNRELATED, BOOK, Answer.DOMAIN, Verdict.UNAUTHORIZED_PASS),
        (CallerKind.UNRELATED, BOOK, Answer.UNAUTHENTICATED, Verdict.UNAUTHORIZED_PASS),
        (CallerKind.UNRELATED, CALENDAR, Answer.OK, Verdict.ALLOWED),
        (CallerKind.UNRELATED, CALENDAR, Answer.DOMAIN, Verdict.ALLOWED),
        (CallerKind.UNRELATED, CALENDAR, Answer.FORBIDDEN, Verdict.REFUSED),
        (CallerKind.RELATED, BOOK, Answer.OK, Verdict.ALLOWED),
        (CallerKind.RELATED, BOOK, Answer.DOMAIN, Verdict.ALLOWED),
        (CallerKind.RELATED, BOOK, Answer.NOT_FOUND, Verdict.WRONGLY_REFUSED),
        (CallerKind.RELATED, BOOK, Answer.FORBIDDEN, Verdict.WRONGLY_REFUSED),
        (CallerKind.RELATED, BOOK, Answer.UNAUTHENTICATED, Verdict.WRONGLY_REFUSED),
        (CallerKind.RELATED, BOOK, Answer.ERROR, Verdict.ERROR),
        (CallerKind.RELATED, BOOK, Answer.UNREACHABLE, Verdict.ERROR),
        (CallerKind.AUDITOR, READ_BATCH, Answer.NOT_FOUND, Verdict.WRONGLY_REFUSED),
        (CallerKind.AUDITOR, BOOK, Answer.FORBIDDEN, Verdict.REFUSED),
    ],
)
def test_verdicts(kind: CallerKind, access: Access, answer: Answer, verdict: Verdict) -> None:
    assert judge(kind, access, outcome(answer), [], False) is verdict


def test_an_unrelated_listing_that_names_a_seeded_record_is_an_unauthorized_success() -> None:
    text = '{"booked": [{"coi": "CHA123426000017"}]}'
    leaked = seed().leaked(text)
    assert leaked == ["CHA123426000017"]
    verdict = judge(CallerKind.UNRELATED, CALENDAR, outcome(Answer.OK, text), leaked, False)
    assert verdict is Verdict.UNAUTHORIZED_SUCCESS


def test_an_answer_repeating_the_ids_it_was_asked_about_tells_nothing_new() -> None:
    asked = Request("GMP-1", "GMP-1", {"coi": "CHA123426000017"})
    answer = "no COI CHA123426000017 is visible; slot SLOT-1 is"
    assert unasked(seed(), asked, answer) == ["SLOT-1"]


def test_a_din_is_found_whatever_flags_or_check_character_the_answer_prints() -> None:
    assert seed().leaked("unit A123426000001 (A123426000001X0K)") == ["A123426000001"]


def test_a_site_token_on_a_courier_route_may_be_refused_as_unauthenticated() -> None:
    refused = outcome(Answer.UNAUTHENTICATED)
    assert judge(CallerKind.WRONG_ROLE, COURIER_LIST, refused, [], True) is Verdict.REFUSED
    assert judge(CallerKind.AUDITOR, COURIER_LIST, refused, [], True) is Verdict.REFUSED
    assert judge(CallerKind.WRONG_ROLE, BOOK, refused, [], False) is Verdict.UNAUTHORIZED_PASS


def test_statuses_map_to_answers() -> None:
    assert grpc_answer("PERMISSION_DENIED") is Answer.FORBIDDEN
    assert grpc_answer("FAILED_PRECONDITION") is Answer.DOMAIN
    assert grpc_answer("INTERNAL") is Answer.ERROR
    assert http_answer(201) is Answer.OK
    assert http_answer(404) is Answer.NOT_FOUND
    assert http_answer(422) is Answer.DOMAIN
    assert http_answer(500) is Answer.ERROR


def test_the_inventory_reads_every_method_from_the_service_descriptors() -> None:
    methods, _ = grpc_methods()
    names = {method.key for method in methods}
    assert "/v2v.intake.v1.IntakeService/BookSlot" in names
    assert "/v2v.projection.v1.ChainQueryService/WatchAlerts" in names
    assert {method.context for method in methods} == {
        "intake",
        "manufacturing",
        "logistics",
        "release",
        "infusion",
        "projection",
    }
    assert [m.name for m in methods if m.streams] == ["WatchAlerts"]


def test_a_route_without_x_v2v_access_is_undeclared_and_courier_routes_are_marked() -> None:
    document = {
        "paths": {
            "/v1/things/{id}": {
                "get": {"security": [{"HTTPBearer": []}], **READ_BATCH.openapi()},
                "post": {"security": [{"HTTPBearer": []}]},
            },
            "/v1/courier/me": {
                "get": {"security": [{"CourierToken": []}], **COURIER_LIST.openapi()}
            },
        }
    }
    routes = http_routes("things", document)
    assert [(r.key, r.access, r.courier) for r in routes] == [
        ("things: GET /v1/courier/me", COURIER_LIST, True),
        ("things: GET /v1/things/{id}", READ_BATCH, False),
        ("things: POST /v1/things/{id}", None, False),
    ]
    assert Inventory(routes=routes).undeclared == ["things: POST /v1/things/{id}"]


def test_every_grpc_builder_names_a_method_and_parses_into_its_request() -> None:
    methods = {method.key: method for method in grpc_methods()[0]}
    assert set(GRPC_BUILDERS) <= set(methods), set(GRPC_BUILDERS) - set(methods)
    for key, builder in GRPC_BUILDERS.items():
        request_class = message_factory.GetMessageClass(methods[key].descriptor.input_type)
        json_format.ParseDict(builder(seed()).body or {}, request_class())


def test_every_http_builder_names_a_route_and_fills_its_path() -> None:
    snapshots = contracts_dir() / "openapi"
    routes = {
        route.key: route
        for path in sorted(snapshots.glob("*.json"))
        for route in http_routes(path.stem, json.loads(path.read_text()))
    }
    assert set(HTTP_BUILDERS) <= set(routes), set(HTTP_BUILDERS) - set(routes)
    for key, builder in HTTP_BUILDERS.items():
        filled = routes[key].path.format(**builder(seed()).path)
        assert "{" not in filled, key


def test_minted_callers_are_certified_for_exactly_the_roles_asked(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    init_pki(pki, [parse_site_spec("HOSP-A:collection,infusion")])
    credentials = Credentials(pki, tmp_path / "callers", {})
    roles = frozenset({Role.QC, Role.COURIER})
    files = credentials.minted_files(UNRELATED_SITE, roles)
    certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
    identity = identity_from_certificate(certificate)
    assert (identity.site_id, identity.roles) == (UNRELATED_SITE, roles)
    assert files.key.stat().st_mode & 0o077 == 0
    token = credentials.minted_token(UNRELATED_SITE, roles)
    caller = SiteTokenVerifier(pki / "ca.crt").identity(token)
    assert (caller.site_id, caller.roles) == (UNRELATED_SITE, roles)
    assert not (pki / "sites" / UNRELATED_SITE).exists()  # the consortium's PKI is untouched


def test_the_report_counts_each_kind_and_lists_every_finding() -> None:
    report = MatrixReport(2, 1, undeclared=["x: GET /v1/x"], unbuilt=["/a.B/C"])
    assert report.findings() == ["declares no access: x: GET /v1/x", "no request builder: /a.B/C"]
    assert "2 gRPC methods, 1 HTTP routes, 0 calls tried" in report.summary_line()
