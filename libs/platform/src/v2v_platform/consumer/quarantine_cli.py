"""`v2v quarantine list|reapply`: the records a service's consumer refused to apply.

Each consumer keeps its quarantine beside its ledger: in the service's PostgreSQL database
(`--postgres-dsn`, default $V2V_POSTGRES_DSN), or in the consumer's own SQLite file beside the
service's event store (`--sqlite-path`, e.g. `.v2v-data/infusion.facts.sqlite` for a service
whose event store is `.v2v-data/infusion.sqlite`). `--consumer` is the consumer's ledger name
(`infusion-facts`, `release-facts`, `logistics-facts`, `manufacturing-facts`).

`reapply` verifies the stored bytes again with the key ring given (after it was fixed) and,
when they verify, marks the record `released` (`--all`: every quarantined record that verifies
now); it changes nothing else. The running consumer
verifies the record again with its own key ring (read again when its file changes) and applies
it on its next poll, in the same transaction as its ledger, before new records; if it still
fails there it goes back to `quarantined` with the reasons, and the service logs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.consumer.ledger import (
    GuardedLedger,
    PostgresConsumerStore,
    SqliteConsumerStore,
)
from v2v_platform.consumer.quarantine import QUARANTINED, STATUSES, QuarantinedRecord
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted
from v2v_platform.envelope.verify import Location

app = typer.Typer(
    help="Records a service's consumer refused to apply: list them, re-apply one after a "
    "key-ring fix.",
    no_args_is_help=True,
)

ConsumerOption = Annotated[
    str, typer.Option("--consumer", help="The consumer's ledger name, e.g. infusion-facts.")
]
SqliteOption = Annotated[
    Path | None,
    typer.Option("--sqlite-path", help="The consumer's SQLite file (e.g. infusion.facts.sqlite)."),
]
DsnOption = Annotated[
    str | None,
    typer.Option(
        "--postgres-dsn", envvar="V2V_POSTGRES_DSN", help="The service's PostgreSQL database."
    ),
]
DETAIL_SHOWN = 160


def parse_location(text: str) -> Location:
    """`topic:partition:offset` -> Location."""
    topic, _, rest = text.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    try:
        location = Location(topic, int(partition), int(rest))
    except ValueError:
        location = Location()
    if not location.topic or location.partition < 0 or location.offset < 0:
        raise typer.BadParameter(f"{text!r} is not topic:partition:offset", param_hint="'--offset'")
    return location


@contextmanager
def _ledger(
    consumer: str, sqlite_path: Path | None, postgres_dsn: str | None
) -> Iterator[GuardedLedger]:
    """The consumer's ledger (with its quarantine) in one transaction of its store."""
    store: Any
    if postgres_dsn:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            store = PostgresConsumerStore(connection, consumer)
            with store.transaction() as (_, ledger):
                yield ledger
        return
    if sqlite_path is None:
        raise typer.BadParameter("give --postgres-dsn or --sqlite-path (the consumer's store)")
    if not sqlite_path.is_file():
        raise typer.BadParameter(f"no SQLite file {sqlite_path}", param_hint="'--sqlite-path'")
    store = SqliteConsumerStore(sqlite_path, consumer)
    try:
        with store.transaction() as (_, ledger):
            yield ledger
    finally:
        store.connection.close()


def _line(row: QuarantinedRecord) -> str:
    detail = row.detail if len(row.detail) <= DETAIL_SHOWN else f"{row.detail[:DETAIL_SHOWN]}..."
    at = row.quarantined_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{row.location}  {row.status}  {row.reason}  coi={row.coi or '?'}"
        f"  claimed={row.claimed_site or '?'}  at={at}  {detail}"
    )


@app.command("list")
def list_command(
    consumer: ConsumerOption,
    sqlite_path: SqliteOption = None,
    postgres_dsn: DsnOption = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Only records in this status ({', '.join(STATUSES)})."),
    ] = None,
) -> None:
    """Print the quarantined records: location, status, reasons, COI, claimed site, time."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"one of {', '.join(STATUSES)}", param_hint="'--status'")
    with _ledger(consumer, sqlite_path, postgres_dsn) as ledger:
        rows = ledger.quarantine.records(status)
    for row in rows:
        typer.echo(_line(row))
    typer.echo(f"{len(rows)} record(s) in the quarantine of {consumer}")


def _ring(keys: Path) -> KeyRing:
    path = keys / KEY_RING_FILE if keys.is_dir() else keys
    try:
        return KeyRing.load(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise typer.BadParameter(f"cannot read {path}: {error}", param_hint="'--keys'") from None


def _still_untrusted(
    gate: EnvelopeGate, row: QuarantinedRecord, ledger: GuardedLedger
) -> Untrusted | None:
    found = gate.check(row.raw, row.location)
    if isinstance(found, Untrusted):
        return found
    pinned = ledger.authors([found.aggregate_id]).get(found.aggregate_id)
    return gate.check_stream_author(found, row.raw, row.location, pinned)


@app.command("reapply")
def reapply_command(
    consumer: ConsumerOption,
    keys: Annotated[
        Path,
        typer.Option("--keys", help="The fixed key ring (signing-keys.json or its PKI directory)."),
    ],
    offset: Annotated[
        str | None,
        typer.Option("--offset", help="The record's location: topic:partition:offset."),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every quarantined record (those that now verify).")
    ] = False,
    sqlite_path: SqliteOption = None,
    postgres_dsn: DsnOption = None,
) -> None:
    """Verify a record again with --keys; if it verifies, release it to the running consumer."""
    if (offset is None) == (not every):
        raise typer.BadParameter("give either --offset topic:partition:offset or --all")
    gate = EnvelopeGate(_ring(keys))
    if every:
        _reapply_all(consumer, gate, sqlite_path, postgres_dsn)
        return
    location = parse_location(offset or "")
    with _ledger(consumer, sqlite_path, postgres_dsn) as ledger:
        row = ledger.quarantine.get(location)
        if row is None:
            typer.echo(f"error: {consumer} has no quarantined record at {location}", err=True)
            raise typer.Exit(2)
        if row.status != QUARANTINED:
            typer.echo(f"error: the record at {location} is already {row.status}", err=True)
            raise typer.Exit(2)
        failed = _still_untrusted(gate, row, ledger)
        if failed is None:
            ledger.quarantine.release(location, datetime.now(UTC))
    if failed is not None:
        typer.echo(f"still untrusted, not released: {failed}", err=True)
        raise typer.Exit(1)
    typer.echo(f"released {location}: {consumer} applies it on its next poll")


def _reapply_all(
    consumer: str, gate: EnvelopeGate, sqlite_path: Path | None, postgres_dsn: str | None
) -> None:
    """Release every quarantined record that verifies now (after a key-ring fix that concerned
    many, e.g. a ring that lacked the sites' roles); list those that still do not."""
    released, failing = 0, 0
    with _ledger(consumer, sqlite_path, postgres_dsn) as ledger:
        for row in ledger.quarantine.records(QUARANTINED):
            failed = _still_untrusted(gate, row, ledger)
            if failed is None:
                released += ledger.quarantine.release(row.location, datetime.now(UTC))
            else:
                failing += 1
                typer.echo(f"still untrusted: {failed}")
    typer.echo(
        f"released {released} record(s), {failing} still untrusted: {consumer} applies the"
        " released ones on its next poll"
    )
