"""One read scope: a site sees what verified facts relate it to; auditors see everything."""

from __future__ import annotations

import pytest

from v2v_platform.access_policy import EXTENSION, Access, Relation, reads, required_roles, writes
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.errors import NotFound
from v2v_platform.proto_values import acting_role
from v2v_platform.scope import Scope


def test_a_site_sees_only_records_related_to_it() -> None:
    scope = Scope("HOSP-B", frozenset({Role.INFUSION}))
    assert scope.sees(["HOSP-B", "GMP-1"])
    assert not scope.sees(["HOSP-A", "GMP-1"])
    assert not scope.sees([None])


def test_an_unrelated_record_is_reported_as_absent() -> None:
    scope = Scope("HOSP-B", frozenset({Role.INFUSION}))
    with pytest.raises(NotFound, match="no shipment S-1 is visible to site HOSP-B"):
        scope.require_sees(["HOSP-A"], "shipment S-1")


def test_auditors_see_everything_and_a_service_may_widen_who_does() -> None:
    auditor = Scope.of(CallerIdentity("AUD-1", frozenset({Role.AUDITOR})))
    assert auditor.sees([])
    qc = CallerIdentity("QC-1", frozenset({Role.QC}))
    assert not Scope.of(qc).sees(["HOSP-A"])
    assert Scope.of(qc, reads_all=frozenset({Role.QC, Role.AUDITOR})).sees(["HOSP-A"])


def test_acting_for_a_site() -> None:
    scope = Scope("GMP-1", frozenset({Role.MANUFACTURING}))
    assert scope.acts_for("GMP-1") and not scope.acts_for("GMP-2")
    assert scope.has(Role.MANUFACTURING) and not scope.has(Role.QC)


def test_acting_needs_the_caller_itself_related_even_an_auditor() -> None:
    auditor = Scope("AUDIT-1", frozenset({Role.AUDITOR}))
    hospital = Scope("HOSP-A", frozenset({Role.COLLECTION}))
    assert hospital.relates_to(["HOSP-A", "GMP-1"])
    hospital.require_related(["HOSP-A", None], "COI")
    with pytest.raises(NotFound, match="no COI is visible to site AUDIT-1"):
        auditor.require_related(["HOSP-A", "GMP-1"], "COI")
    assert auditor.sees(["HOSP-A"]) and not auditor.relates_to(["HOSP-A"])


def test_a_declared_access_round_trips_through_its_openapi_extension() -> None:
    declared = writes(Relation.PATIENT, Role.COLLECTION, Role.INFUSION)
    operation = {"operationId": "book", **declared.openapi()}
    assert operation[EXTENSION] == {
        "roles": ["collection", "infusion"],
        "relation": "patient",
        "writes": True,
    }
    assert Access.from_openapi(operation) == declared
    assert Access.from_openapi({"operationId": "undeclared"}) is None
    assert required_roles("v2v.x.v1.X", {"Get": reads(Relation.FILTERED, Role.AUDITOR)}) == {
        "/v2v.x.v1.X/Get": frozenset({Role.AUDITOR})
    }


def test_the_role_recorded_for_a_declared_access_does_not_depend_on_hashing() -> None:
    both = CallerIdentity("GMP-1", frozenset({Role.MANUFACTURING, Role.COLLECTION}))
    declared = writes(Relation.PATIENT, Role.MANUFACTURING, Role.COLLECTION)
    assert acting_role(both, declared.roles) is Role.COLLECTION  # Role's order
    assert acting_role(both, (Role.MANUFACTURING, Role.COLLECTION)) is Role.MANUFACTURING
