"""`python -m v2v_simulator demo|clean`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from v2v_platform.processes import ServiceDied
from v2v_simulator.broker import BrokerError, LocalBroker
from v2v_simulator.consortium import ConsortiumError
from v2v_simulator.demo import STATE_FILE, DemoError, DemoOptions, DemoState, run_demo
from v2v_simulator.setup import SetupFailed
from v2v_simulator.stores import Stores
from v2v_simulator.system import StartupFailed, service_names

app = typer.Typer(
    help="The v2v consortium simulator: `demo` runs the whole system, `clean` starts over.",
    no_args_is_help=True,
    add_completion=False,
)
DataDir = Annotated[
    Path, typer.Option("--data-dir", help="Where the demo keeps its state.", file_okay=False)
]
DEMO_MARKERS = (STATE_FILE, "pki", "kafka", "stores", "logs")


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
    try:
        code = run_demo(options, console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every service was stopped[/]")
        code = 130
    except (DemoError, ConsortiumError, SetupFailed, StartupFailed, BrokerError) as error:
        console.print(f"[red]demo failed: {error}[/]")
        code = 1
    except ServiceDied as died:
        console.print(f"[red]demo failed: a service died: {died}[/]")
        code = 1
    except psycopg.Error as error:
        console.print(f"[red]demo failed: PostgreSQL (V2V_POSTGRES_DSN): {error}[/]")
        code = 1
    raise typer.Exit(code)


@app.command()
def clean(data_dir: DataDir = Path(".v2v-data")) -> None:
    """Stop the demo's broker and remove its data directory (and its PostgreSQL databases
    when V2V_POSTGRES_DSN is set)."""
    directory = data_dir.resolve()
    if not directory.exists():
        typer.echo(f"nothing to clean: {directory} does not exist")
        return
    if not any((directory / marker).exists() for marker in DEMO_MARKERS):
        typer.echo(f"refusing to remove {directory}: it is not a v2v demo data directory", err=True)
        raise typer.Exit(2)
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
