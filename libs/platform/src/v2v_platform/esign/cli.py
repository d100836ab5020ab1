"""`v2v signer add|unlock`: manage a service's e-signature signers (its own store).

The password is read from a hidden prompt (typed twice) or, for scripted set-up, from the
environment variable V2V_SIGNER_PASSWORD; it is never taken from the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from v2v_platform.auth.identity import InvalidSiteId, parse_site_id
from v2v_platform.esign.passwords import WeakPassword, hash_password
from v2v_platform.esign.store import Signer, open_signer_store

app = typer.Typer(help="E-signature signers of a service.", no_args_is_help=True)

DSN = typer.Option(None, envvar="V2V_POSTGRES_DSN", help="The service's PostgreSQL database.")
SQLITE = typer.Option(None, envvar="V2V_SQLITE_PATH", help="The service's SQLite event store.")
ROLES = typer.Option(..., "--role", help="Signing role (e.g. qp, physician); repeatable.")


def _site(site_id: str) -> str:
    try:
        return parse_site_id(site_id)
    except InvalidSiteId as error:
        raise typer.BadParameter(str(error)) from None


def _password() -> str:
    from_env = os.environ.get("V2V_SIGNER_PASSWORD")
    if from_env is not None:
        return from_env
    return str(typer.prompt("Signing password", hide_input=True, confirmation_prompt=True))


@app.command()
def add(
    site: str = typer.Option(..., help="The signer's site id."),
    user: str = typer.Option(..., help="The signer's user id at that site."),
    name: str = typer.Option(..., help="Printed name shown with every signature."),
    role: list[str] = ROLES,
    postgres_dsn: str | None = DSN,
    sqlite_path: Path | None = SQLITE,
) -> None:
    """Register (or re-register, resetting the password) a signer."""
    if postgres_dsn is None and sqlite_path is None:
        raise typer.BadParameter("give --postgres-dsn or --sqlite-path (the service's store)")
    if not user.strip() or not name.strip():
        raise typer.BadParameter("user id and printed name are required")
    site_id = _site(site)
    try:
        password_hash = hash_password(_password())
    except WeakPassword as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    store = open_signer_store(postgres_dsn, sqlite_path)
    store.put(Signer(site_id, user, name, frozenset(role), password_hash))
    typer.echo(f"signer {user} ({name}) at {site} may sign as: {', '.join(sorted(role))}")


@app.command()
def unlock(
    site: str = typer.Option(..., help="The signer's site id."),
    user: str = typer.Option(..., help="The signer's user id."),
    postgres_dsn: str | None = DSN,
    sqlite_path: Path | None = SQLITE,
) -> None:
    """Clear a signer's failed re-authentications."""
    store = open_signer_store(postgres_dsn, sqlite_path)
    if store.get(_site(site), user) is None:
        typer.echo(f"error: no signer {user!r} at {site}", err=True)
        raise typer.Exit(1)
    store.set_failures(site, user, 0)
    typer.echo(f"signer {user} at {site} unlocked")
