"""The consortium's shape: sites, roles for the PKI, valid facility numbers, people."""

from __future__ import annotations

import pytest

from v2v_platform.auth.pki import parse_site_spec
from v2v_platform.ids import issue_coi, issue_din
from v2v_simulator.consortium import Consortium, ConsortiumError
from v2v_simulator.system import service_names


def test_the_default_consortium_is_two_hospitals_one_gmp_site_couriers_and_an_auditor() -> None:
    consortium = Consortium.sized()
    assert consortium.site_specs() == [
        "HOSP-A:collection,infusion",
        "HOSP-B:collection,infusion",
        "GMP-1:manufacturing,qc",
        "LOGI-1:courier",
        "AUDIT:auditor",
    ]
    assert [parse_site_spec(spec).site_id for spec in consortium.site_specs()] == (
        consortium.site_ids
    )
    assert {h.gmp.site_id for h in consortium.hospitals} == {"GMP-1"}


def test_hospitals_share_out_the_gmp_sites_and_every_fin_issues_identifiers() -> None:
    consortium = Consortium.sized(hospitals=3, gmp_sites=2)
    assert [h.gmp.site_id for h in consortium.hospitals] == ["GMP-1", "GMP-2", "GMP-1"]
    for hospital in consortium.hospitals:
        assert issue_coi(hospital.fin, 26, 1).value.startswith(f"CH{hospital.fin}")
    for gmp in consortium.gmp_sites:
        assert str(issue_din(gmp.fin, 26, 1)).startswith(gmp.fin)
    fins = [h.fin for h in consortium.hospitals] + [g.fin for g in consortium.gmp_sites]
    assert len(set(fins)) == len(fins)


def test_one_service_per_context_and_site_intake_started_last() -> None:
    names = service_names(Consortium.sized())
    assert names == [
        "manufacturing-GMP-1",
        "release-GMP-1",
        "logistics-LOGI-1",
        "infusion-HOSP-A",
        "infusion-HOSP-B",
        "projection-AUDIT",
        "intake-HOSP-A",
        "intake-HOSP-B",
    ]


@pytest.mark.parametrize(("hospitals", "gmp_sites"), [(0, 1), (14, 1), (1, 0), (1, 12)])
def test_a_consortium_out_of_range_is_refused(hospitals: int, gmp_sites: int) -> None:
    with pytest.raises(ConsortiumError):
        Consortium.sized(hospitals, gmp_sites)


def test_people_differ_per_site_and_physicians_are_named_after_their_hospital() -> None:
    a, b = Consortium.sized().hospitals
    assert a.physician.user_id == "dr-a" and b.physician.user_id == "dr-b"
    assert a.nurses[0].user_id != a.nurses[1].user_id
    with pytest.raises(ConsortiumError):
        Consortium.sized().hospital("HOSP-Z")


def test_an_in_house_hospital_holds_every_role_at_one_site_under_one_fin() -> None:
    consortium = Consortium.sized(in_house=1)
    assert consortium.site_specs() == [
        "HOSP-A:collection,infusion",
        "HOSP-B:collection,infusion",
        "INH-1:collection,infusion,manufacturing,qc",
        "GMP-1:manufacturing,qc",
        "LOGI-1:courier",
        "AUDIT:auditor",
    ]
    in_house = consortium.hospital("INH-1")
    assert in_house.in_house and in_house.gmp.site_id == "INH-1"
    assert in_house.gmp.fin == in_house.fin == "I1234"
    assert in_house.departments == ("collection", "gmp", "ward")
    assert [h.in_house for h in consortium.hospitals] == [False, False, True]
    assert consortium.hospitals[0].departments == ("", "", "")
    names = service_names(consortium)
    for context in ("intake", "manufacturing", "release", "infusion"):
        assert names.count(f"{context}-INH-1") == 1
    with pytest.raises(ConsortiumError):
        Consortium.sized(in_house=2)
