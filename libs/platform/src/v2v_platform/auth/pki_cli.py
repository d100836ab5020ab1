"""`v2v pki ...`: the command line over `v2v_platform.auth.pki`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from v2v_platform.auth.identity import ROLE_NAMES
from v2v_platform.auth.pki import (
    DEFAULT_SITE_VALIDITY_DAYS,
    MAX_VALIDITY_DAYS,
    InvalidSiteSpec,
    IssuedSite,
    PkiError,
    SiteSpec,
    add_sites,
    check_unique,
    init_pki,
    parse_site_spec,
    write_ring_roles,
)
from v2v_platform.auth.revocation import REASONS
from v2v_platform.auth.tls import CA_CERT_FILE, KEY_RING_FILE
from v2v_platform.auth.tokens import serial_text

app = typer.Typer(
    help="Consortium PKI: a CA, per-site mTLS certificates (site id and roles inside) and "
    "Ed25519 envelope signing keys.",
    no_args_is_help=True,
)

OutOption = Annotated[Path, typer.Option("--out", help="PKI directory.", file_okay=False)]
SiteOption = Annotated[
    list[str] | None,
    typer.Option(
        "--site",
        help=f"SITE_ID:role1,role2 (repeatable). Roles: {ROLE_NAMES}.",
        show_default=False,
    ),
]
DaysOption = Annotated[
    int,
    typer.Option(
        "--days", min=1, max=MAX_VALIDITY_DAYS, help="Validity of the site certificates, in days."
    ),
]
DnsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--dns",
        help="Extra DNS name for every site certificate issued by this command (repeatable).",
        show_default=False,
    ),
]


def _specs_from_options(values: Sequence[str]) -> list[SiteSpec]:
    try:
        specs = [parse_site_spec(value) for value in values]
        check_unique(specs)
    except InvalidSiteSpec as error:
        raise typer.BadParameter(str(error), param_hint="'--site'") from None
    return specs


def _print_summary(pki_dir: Path, issued: Sequence[IssuedSite], title: str) -> None:
    table = Table(title=title)
    table.add_column("Site", no_wrap=True)
    table.add_column("Roles")
    table.add_column("TLS certificate", overflow="fold")
    table.add_column("Signing key id", overflow="fold")
    table.add_column("Expires (UTC)")
    for site in issued:
        table.add_row(
            site.site_id,
            ", ".join(sorted(role.value for role in site.roles)),
            str(site.cert_path.relative_to(pki_dir)),
            site.signing_key_id,
            site.not_after.strftime("%Y-%m-%d %H:%M"),
        )
    console = Console()
    console.print(table)
    console.print(f"CA: {pki_dir / CA_CERT_FILE}   key ring: {pki_dir / KEY_RING_FILE}")


def _run(action: str, pki_dir: Path, issue: Callable[[], list[IssuedSite]]) -> None:
    try:
        issued = issue()
    except PkiError as error:
        raise typer.BadParameter(str(error), param_hint="'--out'") from None
    except InvalidSiteSpec as error:
        raise typer.BadParameter(str(error), param_hint="'--dns'") from None
    _print_summary(pki_dir, issued, f"{action} {pki_dir}")


@app.command("init")
def init_command(
    out: OutOption,
    site: SiteOption = None,
    days: DaysOption = DEFAULT_SITE_VALIDITY_DAYS,
    dns: DnsOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing PKI in --out entirely.")
    ] = False,
) -> None:
    """Create the consortium CA, the key ring and material for each --site."""
    specs = _specs_from_options(site or [])
    _run(
        "New PKI in",
        out,
        lambda: init_pki(out, specs, days=days, force=force, dns_names=dns or []),
    )


@app.command("add-site")
def add_site_command(
    out: OutOption,
    site: SiteOption = None,
    days: DaysOption = DEFAULT_SITE_VALIDITY_DAYS,
    dns: DnsOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-issue a site that already exists.")
    ] = False,
) -> None:
    """Issue material for more sites with the CA already in --out."""
    specs = _specs_from_options(site or [])
    if not specs:
        raise typer.BadParameter("give at least one SITE_ID:role1,role2", param_hint="'--site'")
    _run(
        "Sites added to",
        out,
        lambda: add_sites(out, specs, days=days, force=force, dns_names=dns or []),
    )


@app.command("token")
def token_command(
    out: OutOption,
    site: Annotated[str, typer.Option("--site", help="The site the token is for.")],
    days: Annotated[int, typer.Option("--days", min=1, max=366, help="Validity in days.")] = 1,
) -> None:
    """Print a bearer token for a site's HTTP API calls (roles from its certificate); its id
    (jti, what `revoke-token` takes) goes to stderr."""
    import jwt

    from v2v_platform.auth.tokens import issue_site_token

    try:
        token = issue_site_token(out, site, days)
    except PkiError as error:
        raise typer.BadParameter(str(error), param_hint="'--site'") from None
    typer.echo(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    typer.echo(f"token id (jti): {claims['jti']}", err=True)


@app.command("revoke-token")
def revoke_token_command(
    out: OutOption,
    token: Annotated[
        str,
        typer.Argument(help="The token id (jti), the token, or a file holding the token."),
    ],
) -> None:
    """Revoke a site bearer token: the services refuse it (401) within seconds, no restart."""
    from v2v_platform.auth.revocation import revoke_token

    try:
        done = revoke_token(out, token)
    except PkiError as error:
        raise typer.BadParameter(str(error), param_hint="TOKEN") from None
    site = f" of site {done.token.sub}" if done.token.sub else ""
    state = "was already revoked" if done.already else "revoked"
    typer.echo(f"token {done.token.jti}{site} {state}")
    typer.echo(f"revoked-token list number {done.number}, {done.entries} token(s): {done.path}")


@app.command("revoke")
def revoke_command(
    out: OutOption,
    certificate: Annotated[
        str,
        typer.Argument(
            help="A site certificate file, a site id of this PKI (its current certificate), "
            "or a certificate serial (hex)."
        ),
    ],
    reason: Annotated[
        str | None,
        typer.Option("--reason", help=f"RFC 5280 reason: {', '.join(REASONS)}."),
    ] = None,
) -> None:
    """Revoke a site certificate (the CA's CRL, ca.crl): the gRPC servers refuse it and the
    HTTP APIs the site's tokens within seconds, no restart. Re-issue with `add-site --force`."""
    from v2v_platform.auth.revocation import revoke_certificate

    if reason is not None and reason not in REASONS:
        raise typer.BadParameter(f"one of {', '.join(REASONS)}", param_hint="'--reason'")
    try:
        done = revoke_certificate(out, certificate, REASONS[reason] if reason else None)
    except PkiError as error:
        raise typer.BadParameter(str(error), param_hint="CERTIFICATE") from None
    site = f" of site {done.site_id}" if done.site_id else ""
    state = "was already revoked" if done.already else "revoked"
    when = done.revoked_at.strftime("%Y-%m-%d %H:%M")
    typer.echo(f"certificate serial {serial_text(done.serial)}{site} {state} ({when} UTC)")
    typer.echo(f"CRL number {done.crl_number}, {done.entries} certificate(s): {done.path}")


@app.command("ring-roles")
def ring_roles_command(out: OutOption) -> None:
    """Write each site's certified roles into the key ring (a ring made before it had roles)."""
    try:
        roles = write_ring_roles(out)
    except PkiError as error:
        raise typer.BadParameter(str(error), param_hint="'--out'") from None
    for site_id, granted in sorted(roles.items()):
        typer.echo(f"{site_id}: {', '.join(sorted(role.value for role in granted)) or '-'}")
    typer.echo(f"key ring: {out / KEY_RING_FILE}")
