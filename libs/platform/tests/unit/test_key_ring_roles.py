"""The consortium key ring carries each site's roles: written by `v2v pki`, read back, and a
ring written before roles existed still loads (its sites then hold none). A consumer's ring
file is read again when it changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from v2v_platform.auth.identity import Role
from v2v_platform.auth.pki import add_sites, init_pki, parse_site_spec
from v2v_platform.cli import app
from v2v_platform.envelope import KeyRing, KeyRingFile, SiteSigningKey


def test_roles_survive_the_json_form() -> None:
    ring = KeyRing()
    ring.add("HOSP-A", SiteSigningKey.generate("HOSP-A").public_key, ["collection", "infusion"])
    ring.add("QC-1", SiteSigningKey.generate("QC-1").public_key, [Role.QC])
    again = KeyRing.from_json(ring.to_json())
    assert again.roles_of("HOSP-A") == {Role.COLLECTION, Role.INFUSION}
    assert again.roles_of("QC-1") == {Role.QC}
    assert again.roles_of("GMP-B") == frozenset()


def test_a_ring_without_roles_still_loads_with_no_roles() -> None:
    key = SiteSigningKey.generate("HOSP-A")
    ring = KeyRing()
    ring.add("HOSP-A", key.public_key)
    text = ring.to_json()
    assert "roles" not in text  # the old format, byte for byte
    old = KeyRing.from_json(text)
    assert key.key_id in old
    assert old.roles_of("HOSP-A") == frozenset()


def test_entries_of_one_site_must_agree_on_its_roles() -> None:
    ring = KeyRing()
    ring.add("HOSP-A", SiteSigningKey.generate("HOSP-A").public_key, ["collection"])
    ring.add("HOSP-A", SiteSigningKey.generate("HOSP-A").public_key)
    document = json.loads(ring.to_json())
    document["keys"][0]["roles"] = ["qc"]
    with pytest.raises(ValueError, match="disagree on its roles"):
        KeyRing.from_json(json.dumps(document))


def test_an_unknown_role_in_the_ring_is_refused() -> None:
    ring = KeyRing()
    ring.add("HOSP-A", SiteSigningKey.generate("HOSP-A").public_key, ["collection"])
    with pytest.raises(ValueError, match="unknown role 'surgeon'"):
        KeyRing.from_json(ring.to_json().replace('"collection"', '"surgeon"'))


def test_pki_init_and_add_site_write_the_roles(tmp_path: Path) -> None:
    init_pki(tmp_path, [parse_site_spec("HOSP-A:collection,infusion")])
    add_sites(tmp_path, [parse_site_spec("QC-1:qc")])
    ring = KeyRing.load(tmp_path / "signing-keys.json")
    assert ring.roles_of("HOSP-A") == {Role.COLLECTION, Role.INFUSION}
    assert ring.roles_of("QC-1") == {Role.QC}


def test_re_issuing_a_site_gives_all_its_keys_the_new_roles(tmp_path: Path) -> None:
    init_pki(tmp_path, [parse_site_spec("GMP-B:manufacturing,qc")])
    old = SiteSigningKey.load("GMP-B", tmp_path / "sites" / "GMP-B" / "signing.key")
    add_sites(tmp_path, [parse_site_spec("GMP-B:manufacturing")], force=True)
    ring = KeyRing.load(tmp_path / "signing-keys.json")
    assert old.key_id in ring
    assert ring.roles_of("GMP-B") == {Role.MANUFACTURING}


def _without_roles(pki_dir: Path) -> Path:
    """The ring as `v2v pki` wrote it before sites carried roles."""
    path = pki_dir / "signing-keys.json"
    document = json.loads(path.read_text())
    for entry in document["keys"]:
        del entry["roles"]
    path.write_text(json.dumps(document))
    assert KeyRing.load(path).roles_of("HOSP-A") == frozenset()
    return path


def test_add_site_on_a_ring_without_roles_gives_every_site_its_certified_roles(
    tmp_path: Path,
) -> None:
    init_pki(tmp_path, [parse_site_spec("HOSP-A:collection")])
    path = _without_roles(tmp_path)
    add_sites(tmp_path, [parse_site_spec("QC-1:qc")])
    ring = KeyRing.load(path)
    assert ring.roles_of("HOSP-A") == {Role.COLLECTION}
    assert ring.roles_of("QC-1") == {Role.QC}


def test_pki_ring_roles_writes_the_certified_roles_into_an_old_ring(tmp_path: Path) -> None:
    init_pki(tmp_path, [parse_site_spec("HOSP-A:collection,infusion"), parse_site_spec("QC-1:qc")])
    path = _without_roles(tmp_path)
    keys_before = {entry["key_id"] for entry in json.loads(path.read_text())["keys"]}
    result = CliRunner().invoke(app, ["pki", "ring-roles", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "HOSP-A: collection, infusion" in result.output
    assert "QC-1: qc" in result.output
    ring = KeyRing.load(path)
    assert ring.roles_of("HOSP-A") == {Role.COLLECTION, Role.INFUSION}
    assert ring.roles_of("QC-1") == {Role.QC}
    assert keys_before == {entry["key_id"] for entry in json.loads(path.read_text())["keys"]}


def test_pki_ring_roles_needs_a_ring(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pki", "ring-roles", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no key ring" in result.output


def _ring_file(path: Path, *roles: str) -> SiteSigningKey:
    key = SiteSigningKey.generate("QC-1")
    ring = KeyRing()
    ring.add("QC-1", key.public_key, roles)
    path.write_text(ring.to_json())
    return key


def test_a_ring_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    first = _ring_file(path, "collection")
    source = KeyRingFile(path, recheck_s=0.0)
    assert first.key_id in source.current()
    assert source.current().roles_of("QC-1") == {Role.COLLECTION}
    second = _ring_file(path, "qc")
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    assert second.key_id in source.current()
    assert source.current().roles_of("QC-1") == {Role.QC}


def test_a_broken_ring_file_keeps_the_ring_in_use(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    key = _ring_file(path, "qc")
    source = KeyRingFile(path, recheck_s=0.0)
    path.write_text("{not json")
    assert key.key_id in source.current()


def test_a_missing_ring_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no consortium key ring"):
        KeyRingFile(tmp_path / "signing-keys.json")
