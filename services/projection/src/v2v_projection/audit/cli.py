"""`v2v audit`: export, replay, verify and report on the full event history; copy the signed
checkpoints out (`checkpoints pull`) and prove one chain's heads against them (`prove`);
write chains as EPCIS 2.0 documents (`epcis`).

Exit codes: 0 done (verify: no break), 1 verify found breaks, 2 usage or input problem.
Results go to stdout; progress bars and errors go to stderr.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf.message import DecodeError
from rich.table import Table

from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.audit.console import (
    EXIT_BREAKS,
    EXIT_OK,
    fail,
    progress_bar,
    stdout,
)
from v2v_projection.audit.keyring import KeyRingError, load_key_ring
from v2v_projection.audit.proofs import Proof, gather, prove
from v2v_projection.audit.rendering import chain_detail, chains_table
from v2v_projection.audit.replay import AsOfError, Replayed, ViewError, parse_as_of, replay
from v2v_projection.audit.report import ReportContext, render_report
from v2v_projection.audit.report_integrity import IntegrityCheck
from v2v_projection.audit.sources import (
    DEFAULT_TOPICS,
    OPTIONAL_TOPICS,
    History,
    SourceError,
    open_file,
    open_kafka,
)
from v2v_projection.audit.verification import describe, verify_history
from v2v_projection.history_file import (
    Extent,
    HistoryFileError,
    HistoryHeader,
    HistoryRecord,
    read_history,
    write_history,
)
from v2v_projection.standards.epcis import document_of, epcis_events

app = typer.Typer(
    help="Audit the v2v event history: export it, replay it, verify it, report on one chain.",
    no_args_is_help=True,
    add_completion=False,
)
checkpoints_app = typer.Typer(
    help="The services' signed checkpoints: keep a copy outside the history.",
    no_args_is_help=True,
)
app.add_typer(checkpoints_app, name="checkpoints")

FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="An export file (default: read the Kafka topics).", dir_okay=False),
]
BootstrapOption = Annotated[
    str | None,
    typer.Option("--bootstrap", envvar="V2V_KAFKA_BOOTSTRAP", help="Kafka HOST:PORT."),
]
TopicsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--topics",
        help="Topics to read (repeatable or comma separated;"
        f" default {', '.join(DEFAULT_TOPICS)}).",
        show_default=False,
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="Ignore events recorded after this UTC time (ISO-8601)."),
]
KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        envvar="V2V_PKI_DIR",
        help="PKI directory holding the consortium key ring (signing-keys.json), or that file.",
    ),
]


def _topics(values: list[str] | None) -> list[str]:
    topics = [t.strip() for value in values or [] for t in value.split(",") if t.strip()]
    return list(dict.fromkeys(topics)) or list(DEFAULT_TOPICS)


def _history(file: Path | None, bootstrap: str | None, topics: list[str] | None) -> History:
    try:
        if file is not None:
            return open_file(file)
        if not bootstrap:
            fail(
                "no history to read: give --file FILE, or --bootstrap HOST:PORT"
                " (or set V2V_KAFKA_BOOTSTRAP)"
            )
        return open_kafka(bootstrap, _topics(topics), () if topics else OPTIONAL_TOPICS)
    except SourceError as error:
        fail(str(error))


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_as_of(text)
    except AsOfError as error:
        raise typer.BadParameter(str(error), param_hint="'--as-of'") from None


def _keys(keys: Path | None) -> KeyRing:
    try:
        return load_key_ring(keys)
    except KeyRingError as error:
        fail(str(error))


CheckpointsOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="An external copy of the checkpoints (`v2v audit checkpoints pull`).",
        dir_okay=False,
    ),
]


def _external_checkpoints(path: Path | None) -> list[bytes] | None:
    """The checkpoint envelopes of a copy made by `checkpoints pull` (or of an export)."""
    if path is None:
        return None
    try:
        return [r.value for r in open_file(path).records if is_checkpoint_topic(r.topic)]
    except (SourceError, HistoryFileError) as error:
        fail(f"cannot read the checkpoints in {path}: {error}")


def _replay(history: History, as_of: datetime | None) -> Replayed:
    try:
        with progress_bar(f"replaying {history.label}", history.expected_records) as tick:
            replayed = replay(history, as_of, tick)
    except (SourceError, HistoryFileError) as error:
        fail(f"replay stopped: {error}")
    if replayed.undecodable:
        typer.echo(
            f"warning: {replayed.undecodable} record(s) are not envelopes and were skipped"
            " (run `v2v audit verify`)",
            err=True,
        )
    return replayed


def _chain(replayed: Replayed, coi: str) -> dict[str, Any]:
    try:
        chain = replayed.chain(coi)
    except ViewError as error:
        fail(str(error))
    if chain is None:
        known = len(replayed.fold.cois())
        fail(
            f"no chain for COI {coi!r} in this history ({known} chains, {replayed.records} records)"
        )
    return chain


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The history file to write.", dir_okay=False)],
    bootstrap: BootstrapOption = None,
    topics: TopicsOption = None,
) -> None:
    """Write every record of the topics, up to their offsets now, to a history file."""
    if not bootstrap:
        fail("export reads Kafka: give --bootstrap HOST:PORT (or set V2V_KAFKA_BOOTSTRAP)")
    history = _history(None, bootstrap, topics)
    per_topic: Counter[str] = Counter()

    def counted(records: Iterator[HistoryRecord]) -> Iterator[HistoryRecord]:
        for record in records:
            per_topic[record.topic] += 1
            yield record

    try:
        with progress_bar(f"exporting to {out}", history.expected_records) as tick:
            written = write_history(out, history.header, counted(tick.through(history.records)))
    except SourceError as error:
        _discard_partial(out)
        fail(f"export stopped, nothing written: {error}")
    except OSError as error:
        _discard_partial(out)
        fail(f"cannot write {out}: {error.strerror or error}")
    table = Table("Topic", "Partitions", "Records", title=f"Exported to {out}")
    partitions = Counter(extent.topic for extent in history.header.extents)
    for topic in history.header.topics:
        table.add_row(topic, str(partitions[topic]), str(per_topic[topic]))
    table.add_row("total", str(sum(partitions.values())), str(written))
    stdout().print(table)


def _discard_partial(out: Path) -> None:
    """write_history writes `.<name>.partial` and renames it only when complete."""
    out.with_name(f".{out.name}.partial").unlink(missing_ok=True)


@app.command("replay")
def replay_command(
    file: FileOption = None,
    bootstrap: BootstrapOption = None,
    topics: TopicsOption = None,
    as_of: AsOfOption = None,
    coi: Annotated[str | None, typer.Option("--coi", help="Show this chain in detail.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Replay the history with the projection's fold; print the chains, or one chain."""
    moment = _as_of(as_of)
    replayed = _replay(_history(file, bootstrap, topics), moment)
    try:
        if coi is not None:
            _print_chain(_chain(replayed, coi), as_json)
        else:
            _print_chains(replayed, moment, as_json)
    except ViewError as error:
        fail(str(error))


def _print_chain(chain: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(chain, indent=2, sort_keys=True))
    else:
        stdout().print(*chain_detail(chain))


def _print_chains(replayed: Replayed, moment: datetime | None, as_json: bool) -> None:
    chains = replayed.chains()
    if as_json:
        document = {"chains": chains, "kpis": replayed.kpis()}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    when = f"as of {moment.isoformat()}" if moment else "at the end of the history"
    title = f"{len(chains)} chains {when} ({replayed.records} records)"
    stdout().print(chains_table(chains, title))


@app.command()
def verify(
    file: FileOption = None,
    bootstrap: BootstrapOption = None,
    topics: TopicsOption = None,
    keys: KeysOption = None,
    checkpoints: CheckpointsOption = None,
    check_every_signature: Annotated[
        bool,
        typer.Option(
            "--check-every-signature/--skip-covered-signatures",
            help=(
                "Verify every event's Ed25519 signature, or skip (default) the events whose"
                " hash chain reaches a head committed by a verified checkpoint together with"
                " the digest of the stream's signatures (their content and signature bytes"
                " are proven by the checkpoint's signature; the breaks are the same)."
            ),
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help=(
                "Processes checking the Ed25519 signatures (default: one per CPU core; 1:"
                " in this process). The breaks do not depend on it."
            ),
        ),
    ] = None,
) -> None:
    """Check hash chains, signatures, versions, offsets and the signed checkpoints (against
    the history, and against an external copy with --checkpoints); print every break (exit 1
    if any)."""
    ring = _keys(keys)
    external = _external_checkpoints(checkpoints)
    history = _history(file, bootstrap, topics)
    try:
        with progress_bar(f"verifying {history.label}", history.expected_records) as tick:
            outcome = verify_history(
                history.header,
                history.records,
                ring,
                tick,
                external_checkpoints=external,
                check_every_signature=check_every_signature,
                workers=workers if workers is not None else os.cpu_count() or 1,
            )
    except SourceError as error:
        fail(f"verify stopped: {error}")
    for found in outcome.breaks:
        typer.echo(describe(found))
    verdict = "BREAKS FOUND" if outcome.breaks else "clean"
    typer.echo(f"{verdict}: {outcome.summary()}")
    raise typer.Exit(EXIT_BREAKS if outcome.breaks else EXIT_OK)


@app.command()
def report(
    coi: Annotated[str, typer.Option("--coi", help="The chain to report on.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.", dir_okay=False)],
    file: FileOption = None,
    bootstrap: BootstrapOption = None,
    topics: TopicsOption = None,
    as_of: AsOfOption = None,
    keys: KeysOption = None,
    checkpoints: CheckpointsOption = None,
) -> None:
    """Write a printable HTML report of one chain: its integrity (with --keys: its streams
    verified and their heads proven in the latest checkpoints), custody chart, temperature
    per shipment, signatures, alerts, lineage."""
    moment = _as_of(as_of)
    ring = _keys(keys) if keys is not None else None
    external = _external_checkpoints(checkpoints)
    history = _history(file, bootstrap, topics)
    check = None
    if ring is not None:
        check = IntegrityCheck(history.header, coi, ring, external)
        history = History(history.header, check.through(history.records), history.label)
    replayed = _replay(history, moment)
    chain = _chain(replayed, coi)
    integrity = check.finish() if check is not None else None
    source = history.label
    if file is not None:
        source += f" (exported from {history.header.source} at {history.header.exported_at})"
    context = ReportContext(source, datetime.now(UTC), moment, replayed.records)
    temporary = out.with_name(f".{out.name}.partial")
    try:
        temporary.write_text(render_report(chain, context, integrity), encoding="utf-8")
        temporary.replace(out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"cannot write {out}: {error.strerror or error}")
    verdict = "integrity not checked (no --keys)"
    if integrity is not None:
        verdict = "integrity clean" if integrity.clean else "integrity NOT CLEAN"
    typer.echo(f"report on {coi} written to {out} ({verdict})")


@app.command("epcis")
def epcis_command(
    coi: Annotated[str | None, typer.Option("--coi", help="The chain to export.")] = None,
    every_chain: Annotated[
        bool, typer.Option("--all", help="Every chain of the history, in one document.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The JSON-LD file to write (default: stdout).", dir_okay=False),
    ] = None,
    file: FileOption = None,
    bootstrap: BootstrapOption = None,
    topics: TopicsOption = None,
    as_of: AsOfOption = None,
) -> None:
    """Write one chain (--coi) or every chain (--all) as an EPCIS 2.0 JSON-LD EPCISDocument:
    custody, transformations, temperatures and refusals, each event's eventID its CBV 2.0
    event hash (docs/standards.md). Check the history first with `v2v audit verify`."""
    if (coi is None) == (not every_chain):
        fail("give --coi COI or --all (one of them)")
    replayed = _replay(_history(file, bootstrap, topics), _as_of(as_of))
    if coi is not None:
        _chain(replayed, coi)
    cois = [coi.strip()] if coi is not None else replayed.fold.cois()
    try:
        events = [e for c in cois for e in epcis_events(replayed.fold.envelopes_of(c))]
    except DecodeError as error:
        fail(f"a record's payload does not decode ({error}); run `v2v audit verify`")
    text = json.dumps(document_of(events, datetime.now(UTC)), indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    _write_atomically(out, text + "\n")
    typer.echo(f"{len(events)} EPCIS events of {len(cois)} chain(s) written to {out}", err=True)


def _write_atomically(out: Path, text: str) -> None:
    temporary = out.with_name(f".{out.name}.partial")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"cannot write {out}: {error.strerror or error}")


@checkpoints_app.command("pull")
def checkpoints_pull(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="The copy to write (merged with what it holds).", dir_okay=False
        ),
    ],
    file: FileOption = None,
    bootstrap: BootstrapOption = None,
    topics: Annotated[
        list[str] | None,
        typer.Option(
            "--topics",
            help=f"The checkpoint topic (default {CHECKPOINT_TOPIC}; other topics are skipped).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Copy the checkpoint topic to a file in the export format, keeping every checkpoint the
    file already holds (exit 1 if the topic holds another checkpoint with the same sequence)."""
    held = _held_checkpoints(out)
    if file is None and not bootstrap:
        fail("no checkpoints to read: give --bootstrap HOST:PORT (or set V2V_KAFKA_BOOTSTRAP)")
    history = _history(file, bootstrap, topics or [CHECKPOINT_TOPIC])
    copied: dict[tuple[str, int], bytes] = dict(held)
    new = conflicts = 0
    try:
        for record in history.records:
            if not is_checkpoint_topic(record.topic):
                continue
            key = _checkpoint_key(record.value)
            if key is None:
                continue
            known = copied.get(key)
            if known is None:
                copied[key] = record.value
                new += 1
            elif known != record.value:
                conflicts += 1
                typer.echo(
                    f"checkpoint sequence {key[1]} of stream {key[0]} differs from the copy"
                    f" held in {out} (kept the held one): forked",
                    err=True,
                )
    except (SourceError, HistoryFileError) as error:
        fail(f"pull stopped, nothing written: {error}")
    values = list(copied.values())
    header = HistoryHeader(
        datetime.now(UTC).isoformat(),
        f"checkpoints of {history.label}",
        [Extent(CHECKPOINT_TOPIC, 0, 0, len(values))],
    )
    records = [HistoryRecord(CHECKPOINT_TOPIC, 0, i, v) for i, v in enumerate(values)]
    try:
        write_history(out, header, records)
    except OSError as error:
        _discard_partial(out)
        fail(f"cannot write {out}: {error.strerror or error}")
    typer.echo(f"{len(values)} checkpoints in {out} ({new} new, {len(held)} held before)")
    raise typer.Exit(EXIT_BREAKS if conflicts else EXIT_OK)


def _checkpoint_key(value: bytes) -> tuple[str, int] | None:
    try:
        envelope = decode(value)
    except DecodeError:
        return None
    return envelope.aggregate_id, envelope.aggregate_version


def _held_checkpoints(out: Path) -> dict[tuple[str, int], bytes]:
    if not out.exists():
        return {}
    try:
        _, records = read_history(out)
        held: dict[tuple[str, int], bytes] = {}
        for record in records:
            key = _checkpoint_key(record.value)
            if key is not None:
                held.setdefault(key, record.value)
    except (HistoryFileError, OSError) as error:
        fail(f"{out} holds no readable checkpoints: {error}")
    return held


@app.command("prove")
def prove_command(
    coi: Annotated[str, typer.Option("--coi", help="The chain whose stream heads to prove.")],
    file: FileOption = None,
    bootstrap: BootstrapOption = None,
    topics: TopicsOption = None,
    keys: KeysOption = None,
    checkpoints: CheckpointsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """For each stream of one chain: the inclusion proof of its head in the latest verified
    checkpoint of its service (leaf index, tree size, root, audit path), verified (exit 1
    with the reason when one does not verify)."""
    ring = _keys(keys)
    external = _external_checkpoints(checkpoints)
    history = _history(file, bootstrap, topics)
    try:
        with progress_bar(f"reading {history.label}", history.expected_records) as tick:
            found = gather(tick.through(history.records), coi)
    except (SourceError, HistoryFileError) as error:
        fail(f"prove stopped: {error}")
    if not found.streams:
        fail(f"no chain for COI {coi!r} in this history")
    if external is not None:
        found.checkpoints = [decode(v) for v in external if _checkpoint_key(v) is not None]
    proofs = prove(found, ring)
    if as_json:
        document = {"coi": coi, "proofs": [p.to_json() for p in proofs]}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        for proof in proofs:
            typer.echo(_proof_text(proof))
    failed = [p for p in proofs if not p.verified]
    verdict = f"{len(proofs) - len(failed)} of {len(proofs)} stream heads of {coi} proven"
    typer.echo(("NOT PROVEN: " if failed else "proven: ") + verdict)
    raise typer.Exit(EXIT_BREAKS if failed else EXIT_OK)


def _proof_text(proof: Proof) -> str:
    head = f"{proof.aggregate_id} ({proof.topic}, site {proof.site_id})"
    if proof.error:
        return f"{head}: NOT PROVEN: {proof.error}"
    path = " ".join(node.hex() for node in proof.path) or "(none: a one-leaf tree)"
    return (
        f"{head}: v{proof.version} hash {proof.head_hash.hex()} is leaf {proof.leaf_index} of"
        f" {proof.tree_size} in checkpoint sequence {proof.sequence}, root {proof.root.hex()};"
        f" audit path {path}; verified"
        + (
            f" ({proof.history_version - proof.version} later versions chained after it)"
            if proof.history_version > proof.version
            else ""
        )
    )
