"""`v2v quarantine list|reapply` on a consumer's SQLite store: a record signed with a site's
new key, quarantined while the ring lacked it, is listed, refused a re-apply with the old ring,
released with the fixed one, and then applied by the consumer's next batch."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import TopicPartition
from typer.testing import CliRunner

from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.cli import app
from v2v_platform.consumer import ApplyStats, Delivered, SqliteConsumerStore, apply_verified
from v2v_platform.consumer.consumer import checked_records
from v2v_platform.envelope import (
    Actor,
    EnvelopeContent,
    EnvelopeGate,
    KeyRing,
    SiteSigningKey,
    build_envelope,
    encode,
)

CONSUMER = "infusion-facts"
TOPIC = "v2v.release.events.v1"
COI = "CHA123425000017"
OLD = SiteSigningKey.generate("QC-1")
NEW = SiteSigningKey.generate("QC-1")  # QC-1 was re-issued; the ring was not updated in time
runner = CliRunner()


class Record:
    def __init__(self, offset: int, value: bytes) -> None:
        self.offset, self.value, self.key = offset, value, COI.encode()
        self.headers: list[tuple[str, bytes]] = []


def ring_file(path: Path, *keys: SiteSigningKey) -> Path:
    ring = KeyRing()
    for key in keys:
        ring.add(key.site_id, key.public_key, ["qc"])
    path.write_text(ring.to_json())
    return path


def certified() -> bytes:
    content = EnvelopeContent(
        coi=COI,
        aggregate_type="BatchRelease",
        aggregate_id="release-b-1",
        aggregate_version=1,
        payload=release.FinallyCertified(coi=COI, batch_id="b-1"),
        schema_version=1,
        recorded_at=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        site_id="QC-1",
        actor=Actor("u-qp", "Quinn Person", "qp"),
    )
    return encode(build_envelope(content, b"", NEW))


def consume(
    path: Path, gate: EnvelopeGate, *values: bytes, first: int = 17
) -> tuple[ApplyStats, list[int]]:
    applied: list[int] = []

    def apply(unit_of_work: object, delivered: Delivered) -> None:
        applied.append(delivered.envelope.aggregate_version)

    batch = {TopicPartition(TOPIC, 4): [Record(first + i, v) for i, v in enumerate(values)]}
    store = SqliteConsumerStore(path, CONSUMER)
    with store.transaction() as (unit, ledger):
        checked = list(checked_records(batch, gate))
        stats = apply_verified(checked, ledger, unit, apply, gate, datetime.now(UTC))
    store.connection.close()
    return stats, applied


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "infusion.facts.sqlite"
    stats, _ = consume(path, EnvelopeGate(KeyRing.load(ring_file(tmp_path / "old.json", OLD))))
    assert stats.applied == 0
    stats, _ = consume(path, EnvelopeGate(KeyRing.load(tmp_path / "old.json")), certified())
    assert stats.quarantined == 1
    return path


def v2v(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["quarantine", *args])
    return result.exit_code, result.output


def flat(output: str) -> str:
    """Usage errors come in a box wrapped at the terminal's width: one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_list_prints_location_reason_coi_claimed_site_and_time(store: Path) -> None:
    code, output = v2v("list", "--consumer", CONSUMER, "--sqlite-path", str(store))
    assert code == 0, output
    line = output.splitlines()[0]
    assert line.startswith("v2v.release.events.v1[4]@17  quarantined  signature")
    assert f"coi={COI}" in line and "claimed=QC-1" in line and "at=20" in line
    assert "unknown signing key 'QC-1/" in line
    assert output.splitlines()[-1] == f"1 record(s) in the quarantine of {CONSUMER}"
    code, output = v2v("list", "--consumer", "other", "--sqlite-path", str(store))
    assert output.splitlines() == ["0 record(s) in the quarantine of other"]


def test_reapply_with_the_old_ring_releases_nothing(store: Path, tmp_path: Path) -> None:
    where = "v2v.release.events.v1:4:17"
    old = str(tmp_path / "old.json")
    code, output = v2v("reapply", "--consumer", CONSUMER, "--sqlite-path", str(store),
                       "--offset", where, "--keys", old)  # fmt: skip
    assert code == 1
    assert "still untrusted, not released: signature" in output
    code, output = v2v("list", "--consumer", CONSUMER, "--sqlite-path", str(store),
                       "--status", "released")  # fmt: skip
    assert output.splitlines() == [f"0 record(s) in the quarantine of {CONSUMER}"]


def test_reapply_after_the_ring_fix_releases_it_and_the_consumer_applies_it(
    store: Path, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    fixed = ring_file(pki / "signing-keys.json", OLD, NEW)
    where = "v2v.release.events.v1:4:17"
    args = ["--consumer", CONSUMER, "--sqlite-path", str(store), "--offset", where]
    code, output = v2v("reapply", *args, "--keys", str(pki))  # the PKI directory will do
    assert code == 0, output
    assert f"released v2v.release.events.v1[4]@17: {CONSUMER} applies it" in output
    code, output = v2v("list", "--consumer", CONSUMER, "--sqlite-path", str(store))
    assert "v2v.release.events.v1[4]@17  released  signature" in output

    stats, applied = consume(store, EnvelopeGate(KeyRing.load(fixed)))
    assert (stats.released, applied) == (1, [1])
    code, output = v2v("list", "--consumer", CONSUMER, "--sqlite-path", str(store))
    assert "v2v.release.events.v1[4]@17  applied  signature" in output
    code, output = v2v("reapply", *args, "--keys", str(fixed))
    assert code == 2
    assert "already applied" in output


def test_reapply_names_what_is_wrong_with_its_arguments(store: Path, tmp_path: Path) -> None:
    keys = str(ring_file(tmp_path / "ring.json", OLD, NEW))
    base = ["reapply", "--consumer", CONSUMER, "--sqlite-path", str(store), "--keys", keys]
    code, output = v2v(*base, "--offset", "v2v.release.events.v1:4:99")
    assert code == 2
    assert "has no quarantined record at v2v.release.events.v1[4]@99" in output
    code, output = v2v(*base, "--offset", "v2v.release.events.v1@4")
    assert code == 2
    assert "is not topic:partition:offset" in flat(output)
    code, output = v2v("list", "--consumer", CONSUMER, "--sqlite-path", str(tmp_path / "no"))
    assert code == 2
    assert "no SQLite file" in flat(output)


def test_reapply_all_releases_every_record_that_verifies_now(store: Path, tmp_path: Path) -> None:
    consume(store, EnvelopeGate(KeyRing.load(tmp_path / "old.json")), b"\x00\xffpoison", first=18)
    fixed = str(ring_file(tmp_path / "fixed.json", OLD, NEW))
    base = ["--consumer", CONSUMER, "--sqlite-path", str(store)]
    code, output = v2v("reapply", *base, "--keys", fixed, "--all")
    assert code == 0, output
    assert "still untrusted: decode at v2v.release.events.v1[4]@18" in output
    assert output.splitlines()[-1].startswith("released 1 record(s), 1 still untrusted")
    code, output = v2v("list", *base, "--status", "released")
    assert output.splitlines()[-1] == f"1 record(s) in the quarantine of {CONSUMER}"
    code, output = v2v("reapply", *base, "--keys", fixed)
    assert code == 2
    assert "give either --offset" in flat(output)
