"""The simulator declares a DIN block for every service that numbers DINs, under the FIN it
gives that service (issue 14): the demo's and the end-to-end tests' services start, and an
in-house site (one FIN, intake and manufacturing) gets two disjoint blocks."""

from __future__ import annotations

from pathlib import Path

from v2v_platform.din_allocation import DinAllocations, IssuingService, declare_all
from v2v_simulator.consortium import Consortium, GmpSite, Hospital
from v2v_simulator.setup import ensure_pki
from v2v_simulator.stores import Stores
from v2v_simulator.system import System, din_issuers


def test_every_din_issuing_service_of_the_demo_has_its_block(tmp_path: Path) -> None:
    pki, consortium = tmp_path / "pki", Consortium.sized(hospitals=2)
    ensure_pki(pki, consortium)
    system = System(consortium, pki, Stores(tmp_path), "127.0.0.1:9", tmp_path)
    system.define_all()
    allocations = DinAllocations.read(pki)
    issuing = {
        (p.env["V2V_FIN"], IssuingService(p.env["V2V_SITE_ID"], p.module.removeprefix("v2v_")))
        for p in system.services.values()
        if "V2V_FIN" in p.env
    }
    assert issuing == set(din_issuers(consortium)) and len(issuing) == 3
    assert all(allocations.block_of(fin, issuer) for fin, issuer in issuing)
    assert not allocations.overlaps()
    ensure_pki(pki, consortium)  # an existing PKI: the same blocks
    assert DinAllocations.read(pki) == allocations


def test_an_in_house_site_gets_two_disjoint_blocks(tmp_path: Path) -> None:
    gmp = GmpSite("SHEBA", "S1234")
    in_house = Consortium((Hospital("SHEBA", "S1234", gmp),), (gmp,))
    allocations = declare_all(tmp_path, din_issuers(in_house))
    intake = allocations.block_of("S1234", IssuingService("SHEBA", "intake"))
    manufacturing = allocations.block_of("S1234", IssuingService("SHEBA", "manufacturing"))
    assert intake is not None and manufacturing is not None
    assert not intake.overlaps(manufacturing) and not allocations.overlaps()
