"""`python -m v2v_simulator demo|up|down|status|clean`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.markup import escape

from v2v_platform.processes import ServiceDied
from v2v_simulator.broker import BrokerError, LocalBroker
from v2v_simulator.consortium import ConsortiumError
from v2v_simulator.demo import STATE_FILE, DemoError, DemoOptions, DemoState, run_demo
from v2v_simulator.setup import SetupFailed
from v2v_simulator.stores import Stores
from v2v_simulator.system import StartupFailed, service_names
from v2v_simulator.up import DEFAULT_PATIENTS, UpOptions, run_down, run_status, run_up
from v2v_simulator.up_record import UpError, UpRecord

app = typer.Typer(
    help=(
        "The v2v consortium simulator: `demo` runs the whole system and stops it, `up` starts"
        " it and leaves it running (`down` stops it, `status` shows it), `clean` starts over."
    ),
    no_args_is_help=True,
    add_completion=False,
)
DataDir = Annotated[
    Path, typer.Option("--data-dir", help="Where the demo keeps its state.", file_okay=False)
]
DEMO_MARKERS = (STATE_FILE, "pki", "kafka", "stores", "logs")
FAILURES = (DemoError, ConsortiumError, SetupFailed, StartupFailed, BrokerError, UpError)


@app.command()
def demo(
    patients: Annotated[int, typer.Option(min=1, max=1000, help="Patients to add.")] = 30,
    data_dir: DataDir = Path(".v2v-data"),
    hospitals: Annotated[int, typer.Option(min=1, help="Hospitals (collect and infuse).")] = 2,
    gmp_sites: Annotated[int, typer.Option(min=1, help="GMP sites (manufacture, QC).")] = 1,
    in_house: Annotated[
        int, typer.Option(min=0, max=1, help="In-house hospitals (every role at one site).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the patients' scenarios.")] = 7,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Journeys at a time.")] = 6,
) -> None:
    """Start the broker and every service, simulate the consortium, print the summary."""
    console = Console()
    options = DemoOptions(patients, data_dir, hospitals, gmp_sites, in_house, seed, workers)
    code = _exit_code(
        "demo", console, lambda: run_demo(options, console), lambda: "every service was stopped"
    )
    raise typer.Exit(code)


@app.command()
def up(
    patients: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=1000,
            help=f"Patients to add (default: {DEFAULT_PATIENTS} when the consortium has none"
            " yet, else none).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = Path(".v2v-data"),
    hospitals: Annotated[int, typer.Option(min=1, help="Hospitals (collect and infuse).")] = 2,
    gmp_sites: Annotated[int, typer.Option(min=1, help="GMP sites (manufacture, QC).")] = 1,
    in_house: Annotated[
        int, typer.Option(min=0, max=1, help="In-house hospitals (every role at one site).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the patients' scenarios.")] = 7,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Journeys at a time.")] = 6,
) -> None:
    """Start the broker and every service and leave them running (`down` stops them); seed
    simulated patients; print the console, courier page, gRPC targets and audit commands."""
    console = Console()
    options = UpOptions(data_dir, patients, hospitals, gmp_sites, in_house, seed, workers)

    def interrupted() -> str:
        running = UpRecord.load(data_dir.resolve()) is not None
        return "the services stay up (`make down` stops them)" if running else "nothing runs"

    code = _exit_code("up", console, lambda: run_up(options, console), interrupted)
    raise typer.Exit(code)


@app.command()
def down(data_dir: DataDir = Path(".v2v-data")) -> None:
    """Stop what `up` started (SIGTERM, SIGKILL after 20 s) and the broker if it started it."""
    try:
        code = run_down(data_dir, Console())
    except (UpError, BrokerError) as error:
        Console().print(f"[red]down failed: {escape(str(error))}[/]")
        code = 1
    raise typer.Exit(code)


@app.command()
def status(data_dir: DataDir = Path(".v2v-data")) -> None:
    """What `up` started: running or not, HTTP /ready and gRPC health (exit 0 all ready, 1
    not, 3 nothing up)."""
    try:
        code = run_status(data_dir, Console())
    except UpError as error:
        Console().print(f"[red]status failed: {escape(str(error))}[/]")
        code = 1
    raise typer.Exit(code)


def _exit_code(
    what: str, console: Console, work: Callable[[], int], interrupted: Callable[[], str]
) -> int:
    """`work`'s exit status, or 130 when interrupted and 1 on a failure, each said plainly."""
    try:
        return work()
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted: {interrupted()}[/]")
        return 130
    except FAILURES as error:
        console.print(f"[red]{what} failed: {escape(str(error))}[/]")
    except ServiceDied as died:
        console.print(f"[red]{what} failed: a service died: {escape(str(died))}[/]")
    except psycopg.Error as error:
        console.print(f"[red]{what} failed: PostgreSQL (V2V_POSTGRES_DSN): {escape(str(error))}[/]")
    return 1


@app.command()
def clean(data_dir: DataDir = Path(".v2v-data")) -> None:
    """Stop what `up` started and the demo's broker, and remove its data directory (and its
    PostgreSQL databases when V2V_POSTGRES_DSN is set)."""
    directory = data_dir.resolve()
    if not directory.exists():
        typer.echo(f"nothing to clean: {directory} does not exist")
        return
    if not any((directory / marker).exists() for marker in DEMO_MARKERS):
        typer.echo(f"refusing to remove {directory}: it is not a v2v demo data directory", err=True)
        raise typer.Exit(2)
    if UpRecord.load(directory) is not None:
        run_down(directory, Console())
    if (directory / "kafka").exists():
        LocalBroker(directory).down()
    _drop_databases(directory)
    shutil.rmtree(directory)
    typer.echo(f"removed {directory}")


def _drop_databases(directory: Path) -> None:
    dsn = os.environ.get("V2V_POSTGRES_DSN")
    state = DemoState.load(directory)
    if not dsn or state is None:
        return
    consortium = state.consortium()
    dropped = Stores(directory, dsn).drop_databases(service_names(consortium))
    if dropped:
        typer.echo(f"dropped databases: {', '.join(dropped)}")
