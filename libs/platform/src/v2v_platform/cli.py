"""The `v2v` command: platform tools (pki, signer, quarantine, relay), plus the commands
packages register under the entry-point group `v2v.cli` (e.g. `v2v audit` from the
projection package)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import typer

from v2v_platform import kafka_broker
from v2v_platform.auth import pki_cli
from v2v_platform.consumer import quarantine_cli
from v2v_platform.din_allocation import cli as din_allocation_cli
from v2v_platform.esign import cli as signer_cli
from v2v_platform.labels import cli as labels_cli

app = typer.Typer(help="Vein-to-Vein platform tools.", no_args_is_help=True)
app.add_typer(pki_cli.app, name="pki")
app.add_typer(signer_cli.app, name="signer")
app.add_typer(quarantine_cli.app, name="quarantine")
app.add_typer(kafka_broker.app, name="kafka")
app.add_typer(din_allocation_cli.app, name="dins")
app.add_typer(labels_cli.app, name="labels")
for plugin in entry_points(group="v2v.cli"):
    app.add_typer(plugin.load(), name=plugin.name)


@app.command()
def relay(
    spec: str = typer.Option(..., help="The service's RelaySpec, as package.module:NAME."),
) -> None:
    """Run an outbox relay: publish a service's events to its Kafka topic until stopped."""
    from v2v_platform.relay.process import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(spec)


if __name__ == "__main__":
    app()
