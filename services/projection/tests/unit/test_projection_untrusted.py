"""The projection core folds verified records only: a forged or unauthorised record, a record
that is not an envelope and an envelope by another site than its stream's author are
quarantined in the projection's store with their location, never folded; the chain they name
shows a critical `untrusted-record` alert, also after a restart; the next records are folded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.envelope.verify import Location
from v2v_platform.testing.producing import eventually
from v2v_projection.chain_projection import ChainProjection, NoVerifier, Record
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier, ProcessVerifier
from v2v_testkit.audit import write_key_ring
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history
from v2v_testkit.synthetic.envelopes import EnvelopeWriter
from v2v_testkit.synthetic.sealing import Draft, StreamSealer

SEED = 23
RELEASE = "v2v.release.events.v1"
INTAKE = "v2v.intake.events.v1"
FORGED_AT = datetime(2025, 1, 9, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def generated() -> GeneratedHistory:
    return generate_history(SEED, 3)


def open_projection(path: Path, generated: GeneratedHistory) -> ChainProjection:
    verifier = InlineVerifier(EnvelopeGate(generated.keys))
    projection = ChainProjection(SqliteProjectionStore(path), verifier=verifier)
    projection.load()
    return projection


def records(generated: GeneratedHistory, *topics: str) -> list[Record]:
    return [
        (topic, 0, offset, value)
        for topic, offset, value in generated.all_records()
        if topic in topics
    ]


def certified(coi: str, batch_id: str) -> release.FinallyCertified:
    return release.FinallyCertified(coi=coi, batch_id=batch_id, spec_version="v1")


def forged_by_a_random_key(coi: str, batch_id: str) -> bytes:
    """Claims the QC lab QC-B; signed with a key the consortium never saw."""
    sealer = StreamSealer({"QC-B": SiteSigningKey.generate("QC-B")})
    qp = ("u-qp", "Dr. Forger", "qp")
    draft = Draft(
        "release", "BatchRelease", "BatchRelease:forged-1", coi, FORGED_AT,
        certified(coi, batch_id), "QC-B", qp, signature_meaning="approval",
    )  # fmt: skip
    return sealer.seal(draft)


def signed_by_a_hospital(coi: str, batch_id: str) -> bytes:
    """A real consortium site (HOSP-A: collection, infusion) signs a release decision."""
    writer = EnvelopeWriter(SEED)
    return writer.write(
        coi, "BatchRelease:forged-2", certified(coi, batch_id), FORGED_AT, site="HOSP-A",
        context="release",
    )  # fmt: skip


def batch_of(view: dict[str, Any]) -> str:
    batch_id: str = view["batches"][0]["batch_id"]
    return batch_id


def alerts(projection: ChainProjection, coi: str) -> list[dict[str, Any]]:
    view = projection.chain(coi)
    assert view is not None
    return [alert for alert in view["alerts"] if alert["kind"] == "untrusted-record"]


def test_forged_and_unauthorised_release_decisions_are_quarantined_not_folded(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    before_release = records(generated, INTAKE, "v2v.manufacturing.events.v1")
    projection.ingest(before_release)
    coi = generated.cois[0]
    view = projection.chain(coi)
    assert view is not None and view["releases"] == []
    batch_id = batch_of(view)
    forged = [
        (RELEASE, 0, 900, forged_by_a_random_key(coi, batch_id)),
        (RELEASE, 0, 901, signed_by_a_hospital(coi, batch_id)),
        (RELEASE, 0, 902, b"\x00\xffnot an envelope"),
    ]

    assert projection.ingest(forged) == 0

    after = projection.chain(coi)
    assert after is not None
    assert (after["releases"], after["stage"]) == ([], view["stage"])
    raised = alerts(projection, coi)
    assert len(raised) == 2
    random_key, hospital = sorted(raised, key=lambda alert: alert["detail"])
    assert f"{RELEASE}[0]@900" in random_key["detail"] and "(signature)" in random_key["detail"]
    assert "claimed author QC-B" in random_key["detail"]
    assert f"{RELEASE}[0]@901" in hospital["detail"] and "(authorship)" in hospital["detail"]
    assert "claimed author HOSP-A" in hospital["detail"]
    assert hospital["event_id"] == decode(forged[1][3]).event_id
    assert projection.untrusted_records == 3 and projection.undecodable == 1
    stored = projection.quarantined_records()
    assert [row.location.offset for row in stored] == [900, 901, 902]
    assert [row.raw for row in stored] == [value for *_, value in forged]
    assert stored[2].reasons == ("decode",) and stored[2].coi == ""
    assert projection.offsets()[(RELEASE, 0)] == 903


def test_the_alerts_survive_a_restart_and_the_genuine_records_are_folded_after(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records(generated, INTAKE, "v2v.manufacturing.events.v1"))
    coi = generated.cois[0]
    view = projection.chain(coi)
    assert view is not None
    forged = forged_by_a_random_key(coi, batch_of(view))
    projection.ingest([(RELEASE, 1, 0, forged), (RELEASE, 1, 1, b"junk")], keys=[None, b"junk"])
    raised = alerts(projection, coi)
    projection.close()

    restarted = open_projection(tmp_path / "p.sqlite", generated)
    assert alerts(restarted, coi) == raised
    assert len(restarted.quarantined_records()) == 2
    assert restarted.ingest([(RELEASE, 1, 0, forged)]) == 0  # delivered again: nothing new
    assert len(restarted.quarantined_records()) == 2 and alerts(restarted, coi) == raised
    genuine = records(generated, RELEASE, "v2v.logistics.events.v1", "v2v.infusion.events.v1")
    assert restarted.ingest(genuine) == len(genuine)
    complete = restarted.chain(coi)
    assert complete is not None and complete["releases"] != []
    assert alerts(restarted, coi) == raised


def test_a_non_envelope_keyed_by_a_coi_is_raised_on_that_chain(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records(generated, INTAKE))
    coi = generated.cois[1]

    projection.ingest([(INTAKE, 2, 7, b"\xff\xfe")], keys=[coi.encode()])

    (alert,) = alerts(projection, coi)
    assert f"{INTAKE}[2]@7" in alert["detail"] and "(decode)" in alert["detail"]
    assert "claimed author unknown" in alert["detail"] and alert["event_id"] == ""


def test_an_envelope_by_another_site_than_its_streams_author_is_refused(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    coi = generated.cois[0]
    writer = EnvelopeWriter(SEED)
    payload = certified(coi, "batch-x")
    first = writer.write(coi, "BatchRelease:b", payload, FORGED_AT, site="QC-B", context="release")
    second = writer.write(coi, "BatchRelease:b", payload, FORGED_AT, site="QC-D", context="release")
    projection.ingest(records(generated, INTAKE))

    assert projection.ingest([(RELEASE, 0, 0, first), (RELEASE, 0, 1, second)]) == 1

    (row,) = projection.quarantined_records()
    assert (row.location, row.reasons, row.claimed_site) == (
        Location(RELEASE, 0, 1),
        ("stream_author",),
        "QC-D",
    )
    assert "stream authored by site 'QC-B'" in row.detail
    (alert,) = alerts(projection, coi)
    assert "claimed author QC-D" in alert["detail"]


def test_rebuild_forgets_the_quarantine_too(tmp_path: Path, generated: GeneratedHistory) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest([(RELEASE, 0, 0, b"junk")])

    projection.rebuild()

    assert projection.quarantined_records() == []
    projection.ingest([(RELEASE, 0, 0, b"junk")])  # consumed again from offset zero
    assert len(projection.quarantined_records()) == 1


def test_without_a_verifier_nothing_is_folded(tmp_path: Path, generated: GeneratedHistory) -> None:
    projection = ChainProjection(SqliteProjectionStore(tmp_path / "p.sqlite"))

    with pytest.raises(NoVerifier):
        projection.ingest(records(generated, INTAKE))

    assert projection.chains() == [] and projection.store.count() == 0


def test_worker_processes_give_the_verdicts_of_the_inline_gate(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    ring = write_key_ring(tmp_path / "pki", generated.keys) / "signing-keys.json"
    batch = records(generated, RELEASE)[:40]
    coi = generated.cois[0]
    batch[3] = (RELEASE, 0, 3, forged_by_a_random_key(coi, "b"))
    batch[17] = (RELEASE, 0, 17, signed_by_a_hospital(coi, "b"))
    batch[30] = (RELEASE, 0, 30, b"junk")
    keys = [None] * len(batch)
    inline = InlineVerifier(EnvelopeGate(generated.keys)).check(batch, keys)
    workers = ProcessVerifier(ring, workers=2)
    try:
        verdicts = workers.check(batch, keys)
    finally:
        workers.close()
    assert [index for index, _ in verdicts] == [3, 17, 30]
    assert verdicts == inline
    assert json.dumps([found.reasons for _, found in verdicts]) == json.dumps(
        [["signature"], ["authorship"], ["decode"]]
    )


WORKERS_OF_A_PROCESS = """
import sys, time
from pathlib import Path
from v2v_projection.verifier import ProcessVerifier
verifier = ProcessVerifier(Path(sys.argv[1]), workers=2)
verifier.check([("v2v.intake.events.v1", 0, 0, b"junk")] * 4)
print("checked", flush=True)
time.sleep(120)
"""


def test_verifying_workers_exit_when_their_process_is_killed(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    ring = write_key_ring(tmp_path / "pki", generated.keys) / "signing-keys.json"
    command = [sys.executable, "-c", WORKERS_OF_A_PROCESS, str(ring)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"checked\n"
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2  # the two workers (and the resource tracker)
    finally:
        process.kill()
        process.wait(timeout=30)
    eventually(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
        "the workers to exit",
    )


def test_a_dead_verifying_worker_is_replaced_and_the_batch_checked(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    ring = write_key_ring(tmp_path / "pki", generated.keys) / "signing-keys.json"
    batch = [*records(generated, INTAKE)[:10], (INTAKE, 0, 99, b"junk")]
    workers = ProcessVerifier(ring, workers=2)
    try:
        assert [index for index, _ in workers.check(batch)] == [10]
        pids = list(workers._pool._processes)  # the pool's worker processes
        os.kill(pids[0], signal.SIGKILL)
        eventually(lambda: _gone(pids[0]), "the worker to die")
        assert [index for index, _ in workers.check(batch)] == [10]
    finally:
        workers.close()


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:  # reaped between our look and our read
        return True
