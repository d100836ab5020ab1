"""`ensure_pki` reuses an existing PKI and gives its key ring the sites' certified roles (a ring
written before rings carried roles would make every consumer refuse every record)."""

from __future__ import annotations

import json
from pathlib import Path

from v2v_platform.auth.identity import Role
from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.envelope.keys import KeyRing
from v2v_simulator.consortium import Consortium
from v2v_simulator.setup import ensure_pki


def test_an_existing_pki_without_ring_roles_gets_them(tmp_path: Path) -> None:
    pki, consortium = tmp_path / "pki", Consortium.sized(hospitals=1)
    assert ensure_pki(pki, consortium)
    ring_file = pki / KEY_RING_FILE
    old = json.loads(ring_file.read_text())
    for entry in old["keys"]:
        entry.pop("roles", None)  # as `v2v pki init` wrote rings before issue 12
    ring_file.write_text(json.dumps(old))
    assert KeyRing.load(ring_file).roles_of("HOSP-A") == frozenset()

    assert not ensure_pki(pki, consortium)

    ring = KeyRing.load(ring_file)
    assert Role.COLLECTION in ring.roles_of("HOSP-A")
    assert Role.QC in ring.roles_of("GMP-1")
    assert Role.COURIER in ring.roles_of(consortium.logistics_site)
