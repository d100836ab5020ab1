"""`python -m v2v_platform.din_allocation ...`: declare, show and check the consortium's DIN
blocks in a PKI directory (``din-allocations.json``, beside the key ring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from v2v_platform.din_allocation import (
    DEFAULT_BLOCKS,
    DinAllocationError,
    DinAllocations,
    IssuingService,
)

app = typer.Typer(
    help="The consortium's DIN allocations: which site's service numbers which DINs under a "
    "FIN (ISBT 128 facility identification number).",
    no_args_is_help=True,
)

OutOption = Annotated[Path, typer.Option("--out", help="PKI directory.", file_okay=False)]
DEFAULTS = ", ".join(f"{name} {first}-{last}" for name, (first, last) in DEFAULT_BLOCKS.items())


@app.command("declare")
def declare_command(
    out: OutOption,
    fin: Annotated[str, typer.Option("--fin", help="The facility identification number.")],
    issuer: Annotated[
        str, typer.Option("--issuer", help="SITE/CONTEXT: HOSP-A/intake, HOSP-A/manufacturing.")
    ],
    first: Annotated[
        int | None, typer.Option("--first", help=f"First sequence number (default: {DEFAULTS}).")
    ] = None,
    last: Annotated[int | None, typer.Option("--last", help="Last sequence number.")] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the issuer's block under this FIN.")
    ] = False,
) -> None:
    """Declare the block of sequence numbers an issuer numbers DINs from under a FIN (the same
    block every year). Refused when it would overlap another issuer's block under that FIN;
    declaring the same block again changes nothing."""
    try:
        allocations = DinAllocations.read(out)
        changed = allocations.declare(
            fin, IssuingService.parse(issuer), first, last, replace_existing=replace
        )
    except DinAllocationError as error:
        raise typer.BadParameter(str(error)) from None
    if changed == allocations and DinAllocations.path_in(out).is_file():
        typer.echo(f"unchanged: {DinAllocations.path_in(out)}")
    else:
        typer.echo(f"written: {changed.write(out)}")
    block = changed.block_of(fin, IssuingService.parse(issuer))
    assert block is not None
    typer.echo(f"{block.fin} {block.issuer}: {block.range_text}")


@app.command("show")
def show_command(out: OutOption) -> None:
    """List every declared block, then any two that overlap (exit status 1 if any do)."""
    try:
        allocations = DinAllocations.read(out)
    except DinAllocationError as error:
        raise typer.BadParameter(str(error), param_hint="'--out'") from None
    for block in sorted(allocations.blocks, key=lambda b: (b.fin, b.first)):
        typer.echo(f"{block.fin}  {block.range_text:>15}  {block.issuer}")
    overlaps = allocations.overlaps()
    for one, other in overlaps:
        typer.echo(
            f"OVERLAP under {one.fin}: {one.issuer} {one.range_text} and {other.issuer}"
            f" {other.range_text}",
            err=True,
        )
    if overlaps:
        raise typer.Exit(1)
