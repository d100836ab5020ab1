"""`verify` with signed checkpoints (issue 15): pinned authorship, checkpoints checked as
envelopes and as commitments (chain, signer, Merkle root, heads against the history), and an
auditor's external copy of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC, read_checkpoint
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.envelope.verify import CHECK_FORK, CHECK_STREAM_AUTHOR, Break
from v2v_projection.audit.verification import (
    CHECK_CHECKPOINT_HEAD,
    CHECK_CHECKPOINT_ROOT,
    CHECK_CHECKPOINT_SIGNER,
    CHECK_EXTERNAL_CHECKPOINT,
    verify_history,
)
from v2v_projection.history_file import HistoryHeader, HistoryRecord
from v2v_testkit.audit import partitioned
from v2v_testkit.checkpointed import (
    is_checkpoint,
    reauthored,
    remove_renumbered,
    resealed_checkpoint,
    rolled_back,
    with_checkpoints,
)
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history
from v2v_testkit.synthetic.consortium import SITE_ROLES

SEED = 15_015
PARTITIONS = 3


@dataclass(frozen=True)
class Checkpointed:
    generated: GeneratedHistory
    header: HistoryHeader
    records: list[HistoryRecord]

    def verify(
        self,
        header: HistoryHeader | None = None,
        records: list[HistoryRecord] | None = None,
        external: list[bytes] | None = None,
    ) -> list[Break]:
        return verify_history(
            header or self.header,
            self.records if records is None else records,
            self.generated.keys,
            external_checkpoints=external,
        ).breaks

    def checkpoints(self) -> list[bytes]:
        return [r.value for r in self.records if is_checkpoint(r)]

    def last_of_stream(self, wanted: Callable[[int], bool]) -> int:
        """The index of the last event of the first stream whose length satisfies `wanted`."""
        last: dict[str, tuple[int, int]] = {}
        for index, record in enumerate(self.records):
            if not is_checkpoint(record):
                envelope = decode(record.value)
                last[envelope.aggregate_id] = (index, envelope.aggregate_version)
        return next(index for index, version in last.values() if wanted(version))


@pytest.fixture(scope="module")
def history() -> Checkpointed:
    generated = generate_history(SEED, 3)
    by_topic = with_checkpoints(generated.by_topic, generated.signers)
    header, records = partitioned(by_topic, PARTITIONS)
    return Checkpointed(generated, header, records)


def _impostor(history: Checkpointed, site: str) -> SiteSigningKey:
    """Another site of the consortium holding the same roles, with its real key."""
    return next(
        signer
        for other, signer in sorted(history.generated.signers.items())
        if other != site and SITE_ROLES[other] == SITE_ROLES[site]
    )


def _with(records: list[HistoryRecord], index: int, value: bytes) -> list[HistoryRecord]:
    copy = list(records)
    copy[index] = replace(copy[index], value=value)
    return copy


def test_a_history_with_checkpoints_verifies_clean(history: Checkpointed) -> None:
    assert len(history.checkpoints()) > 10
    assert history.verify() == []
    assert history.verify(external=history.checkpoints()) == []


def test_reauthoring_the_only_event_of_a_stream_with_a_real_key_is_a_break(
    history: Checkpointed,
) -> None:
    """The first rewrite of the issue: the stream's last (here: only) event re-signed by
    another entitled site; nothing chains to it, its author is not pinned by an earlier
    event, but its service's checkpoint committed its hash."""
    index = history.last_of_stream(lambda version: version == 1)
    record = history.records[index]
    original = decode(record.value)
    value = reauthored(record.value, _impostor(history, original.site_id))
    breaks = history.verify(records=_with(history.records, index, value))
    heads = [b for b in breaks if b.check == CHECK_CHECKPOINT_HEAD]
    assert heads, breaks
    assert heads[0].aggregate_id == original.aggregate_id
    assert "rewritten" in heads[0].detail
    assert str(heads[0].location) == f"{record.topic}[{record.partition}]@{record.offset}"


def test_reauthoring_a_later_event_of_a_stream_is_a_stream_author_break(
    history: Checkpointed,
) -> None:
    """Pinned authorship: the first event fixes the stream's author site; a later event
    signed (validly) by another site is a break at its topic/partition/offset."""
    index = history.last_of_stream(lambda version: version >= 2)
    record = history.records[index]
    original = decode(record.value)
    value = reauthored(record.value, _impostor(history, original.site_id))
    breaks = history.verify(records=_with(history.records, index, value))
    authors = [b for b in breaks if b.check == CHECK_STREAM_AUTHOR]
    assert [(b.location.topic, b.location.partition, b.location.offset) for b in authors] == [
        (record.topic, record.partition, record.offset)
    ]
    assert original.site_id in authors[0].detail


def test_careful_truncation_at_a_streams_tail_is_a_break(history: Checkpointed) -> None:
    """The second rewrite of the issue: the last event of a stream deleted, the later offsets
    and the partition's extent renumbered; the checkpoint that committed it names it."""
    index = history.last_of_stream(lambda version: version >= 3)
    original = decode(history.records[index].value)
    header, records = remove_renumbered(history.header, history.records, {index})
    breaks = history.verify(header, records)
    heads = [b for b in breaks if b.check == CHECK_CHECKPOINT_HEAD]
    assert heads, breaks
    assert heads[0].aggregate_id == original.aggregate_id
    assert "truncat" in heads[0].detail
    assert f"v{original.aggregate_version}" in heads[0].detail
    assert "checkpoint" in heads[0].detail and "sequence" in heads[0].detail


def _checkpoint_index(history: Checkpointed, last: bool, sequence: int = 1) -> int:
    """A checkpoint that is (or is not) the last of its service, of `sequence` or later."""
    latest: dict[str, int] = {}
    indexes = []
    for index, record in enumerate(history.records):
        if is_checkpoint(record):
            envelope = decode(record.value)
            latest[envelope.aggregate_id] = index
            if envelope.aggregate_version >= sequence:
                indexes.append(index)
    finals = set(latest.values())
    return next(i for i in indexes if (i in finals) == last)


def test_a_resigned_lie_about_the_root_is_a_checkpoint_root_break(history: Checkpointed) -> None:
    index = _checkpoint_index(history, last=True)
    envelope = decode(history.records[index].value)
    signer = history.generated.signers[envelope.site_id]
    value = resealed_checkpoint(history.records[index].value, signer, root=bytes(32))
    breaks = history.verify(records=_with(history.records, index, value))
    assert [b.check for b in breaks] == [CHECK_CHECKPOINT_ROOT]
    assert f"sequence {envelope.aggregate_version}" in breaks[0].detail


def test_a_checkpoint_signed_by_a_site_not_entitled_to_its_topic_is_a_break(
    history: Checkpointed,
) -> None:
    """A QC lab signing (with its real key) a checkpoint of the intake topic for itself."""
    index = next(
        i
        for i, r in enumerate(history.records)
        if is_checkpoint(r) and "intake" in read_checkpoint(decode(r.value)).topic
    )
    record = history.records[index]
    qc = next(s for site, s in history.generated.signers.items() if site.startswith("QC-"))
    value = reauthored(record.value, qc)
    breaks = history.verify(records=_with(history.records, index, value))
    signer = [b for b in breaks if b.check == CHECK_CHECKPOINT_SIGNER]
    assert any("may not author intake events" in b.detail for b in signer), breaks
    assert any("checkpoint stream is" in b.detail for b in signer), breaks


def test_two_checkpoints_with_one_sequence_are_a_fork(history: Checkpointed) -> None:
    index = _checkpoint_index(history, last=True)
    record = history.records[index]
    envelope = decode(record.value)
    signer = history.generated.signers[envelope.site_id]
    twin = resealed_checkpoint(record.value, signer, position=10**6)
    records = list(history.records)
    records.insert(index + 1, replace(record, offset=record.offset + 1, value=twin))
    header, records = _shifted(history.header, records, index + 1)
    assert CHECK_FORK in {b.check for b in history.verify(header, records)}


def _shifted(
    header: HistoryHeader, records: list[HistoryRecord], inserted: int
) -> tuple[HistoryHeader, list[HistoryRecord]]:
    key = (records[inserted].topic, records[inserted].partition)
    for i in range(inserted + 1, len(records)):
        if (records[i].topic, records[i].partition) == key:
            records[i] = replace(records[i], offset=records[i].offset + 1)
    extents = [
        replace(e, end=e.end + 1) if (e.topic, e.partition) == key else e for e in header.extents
    ]
    return replace(header, extents=extents), records


@pytest.mark.parametrize("rewrite", [False, True], ids=["dropped", "rewritten"])
def test_a_rolled_back_history_is_caught_against_an_external_copy(
    history: Checkpointed, rewrite: bool
) -> None:
    """Rolled back to an earlier checkpoint of one service (its later checkpoints and the
    events they committed removed, offsets renumbered; rewritten: a new checkpoint signed by
    that site follows): consistent on its own, contradicted by the auditor's copy."""
    index = _checkpoint_index(history, last=True, sequence=3)
    envelope = decode(history.records[index].value)
    signer = history.generated.signers[envelope.site_id] if rewrite else None
    header, records = rolled_back(
        history.header, history.records, envelope.aggregate_id, 1, rewrite=signer
    )
    assert len(records) < len(history.records)
    assert history.verify(header, records) == []
    breaks = history.verify(header, records, external=history.checkpoints())
    assert breaks and {b.check for b in breaks} == {CHECK_EXTERNAL_CHECKPOINT}
    word = "forked" if rewrite else "missing"
    assert any(word in b.detail and envelope.site_id in b.detail for b in breaks), breaks
    assert all(b.location.topic == CHECKPOINT_TOPIC or b.version for b in breaks)
