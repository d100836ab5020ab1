"""`v2v audit`: export, replay, verify and report on the full event history.

Exit codes: 0 done (verify: no break), 1 verify found breaks, 2 usage or input problem.
Results go to stdout; progress bars and errors go to stderr.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from v2v_projection.audit.console import (
    EXIT_BREAKS,
    EXIT_OK,
    fail,
    progress_bar,
    stdout,
)
from v2v_projection.audit.keyring import KeyRingError, load_key_ring
from v2v_projection.audit.rendering import chain_detail, chains_table
from v2v_projection.audit.replay import AsOfError, Replayed, ViewError, parse_as_of, replay
from v2v_projection.audit.report import ReportContext, render_report
from v2v_projection.audit.sources import (
    DEFAULT_TOPICS,
    History,
    SourceError,
    open_file,
    open_kafka,
)
from v2v_projection.audit.verification import describe, verify_history
from v2v_projection.history_file import HistoryFileError, HistoryRecord, write_history

app = typer.Typer(
    help="Audit the v2v event history: export it, replay it, verify it, report on one chain.",
    no_args_is_help=True,
    add_completion=False,
)

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
        return open_kafka(bootstrap, _topics(topics))
    except SourceError as error:
        fail(str(error))


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_as_of(text)
    except AsOfError as error:
        raise typer.BadParameter(str(error), param_hint="'--as-of'") from None


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
) -> None:
    """Check hash chains, signatures, versions and offsets; print every break (exit 1 if any)."""
    try:
        ring = load_key_ring(keys)
    except KeyRingError as error:
        fail(str(error))
    history = _history(file, bootstrap, topics)
    try:
        with progress_bar(f"verifying {history.label}", history.expected_records) as tick:
            outcome = verify_history(history.header, history.records, ring, tick)
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
) -> None:
    """Write a printable HTML report of one chain: custody chart, signatures, alerts, lineage."""
    moment = _as_of(as_of)
    history = _history(file, bootstrap, topics)
    replayed = _replay(history, moment)
    chain = _chain(replayed, coi)
    source = history.label
    if file is not None:
        source += f" (exported from {history.header.source} at {history.header.exported_at})"
    context = ReportContext(source, datetime.now(UTC), moment, replayed.records)
    temporary = out.with_name(f".{out.name}.partial")
    try:
        temporary.write_text(render_report(chain, context), encoding="utf-8")
        temporary.replace(out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"cannot write {out}: {error.strerror or error}")
    typer.echo(f"report on {coi} written to {out}")
