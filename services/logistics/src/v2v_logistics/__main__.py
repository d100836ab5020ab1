"""`python -m v2v_logistics`: the service (gRPC + HTTP + outbox relay + facts consumer), and
the site administrator's courier token commands.

    python -m v2v_logistics                      # serve (default)
    python -m v2v_logistics issue-courier-token --courier C-17 --name "Kim Courier" --site HOSP-A
    python -m v2v_logistics issue-courier-token ... --password-stdin < password-file
    python -m v2v_logistics revoke-courier-token --courier C-17 --site HOSP-A

Settings come from V2V_* variables (a missing one stops the process naming it); SIGTERM or
SIGINT stops everything cleanly. Tokens are printed once; only their hash is stored. A token
issued with the courier's password (`--password-stdin`: the first line of standard input) is
accepted once the courier signed in with it on the courier page.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from v2v_logistics.adapters.courier_tokens import CourierTokens
from v2v_logistics.bootstrap import LogisticsService, bootstrap, courier_tokens_for
from v2v_logistics.settings import LogisticsSettings
from v2v_platform import service_main
from v2v_platform.config import load_or_exit
from v2v_platform.errors import InvalidInput

cli = typer.Typer(add_completion=False, no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def main(context: typer.Context) -> None:
    """Serve the logistics service (when no command is given)."""
    if context.invoked_subcommand is None:
        serve()


@cli.command("serve")
def serve() -> None:
    """gRPC + HTTP + outbox relay + facts consumer, until SIGTERM/SIGINT."""
    service_main.serve(
        "logistics",
        LogisticsSettings,
        bootstrap,
        LogisticsService.start_facts_consumer,
        note=" (courier page at /courier)",
    )


def durable_tokens() -> CourierTokens:
    settings = load_or_exit(LogisticsSettings)
    if not settings.postgres_dsn and not settings.sqlite_path:
        print(
            "set V2V_POSTGRES_DSN or V2V_SQLITE_PATH: tokens need a durable store", file=sys.stderr
        )
        raise typer.Exit(2)
    return courier_tokens_for(settings)


@cli.command("issue-courier-token")
def issue_courier_token(
    courier: Annotated[str, typer.Option(help="courier id, e.g. C-17")],
    name: Annotated[str, typer.Option(help="the courier's printed name")],
    site: Annotated[str, typer.Option(help="the site the courier works for")],
    password_stdin: Annotated[
        bool, typer.Option(help="read the courier's password (8+ characters) from stdin")
    ] = False,
) -> None:
    """Issue a courier token and print it ONCE (only its SHA-256 hash is stored)."""
    tokens = durable_tokens()
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
    try:
        token = tokens.issue(courier, name, site, password)
    except InvalidInput as error:
        print(f"issue-courier-token: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    expires = tokens.expires_at(token)
    print(f"valid until {expires.isoformat() if expires else '?'}", file=sys.stderr)
    print(token)


@cli.command("revoke-courier-token")
def revoke_courier_token(
    courier: Annotated[str, typer.Option(help="courier id")],
    site: Annotated[str, typer.Option(help="the site the token was issued for")],
) -> None:
    """Revoke every live token of the courier at the site."""
    tokens = durable_tokens()
    count = tokens.revoke(courier, site)
    print(f"revoked {count} token(s) of courier {courier} at {site}")


if __name__ == "__main__":
    cli()
