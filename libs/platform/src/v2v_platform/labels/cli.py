"""`v2v labels print`: render one bag's ISBT 128 label to a PDF (or a PNG with ``--png``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from v2v_platform.ids import Coi, Din, InvalidIdentifier, din_from_scan
from v2v_platform.labels.data_structures import InvalidLabelData, expiry_data
from v2v_platform.labels.label import MAX_LINES, Label
from v2v_platform.labels.product_codes import ENV_VARIABLE, load_product_codes
from v2v_platform.labels.render import label_pdf, label_png

app = typer.Typer(help="ISBT 128 bag labels (PDF to print, PNG to show).", no_args_is_help=True)


def _din(text: str) -> Din:
    try:
        return din_from_scan(text)
    except InvalidIdentifier as error:
        raise typer.BadParameter(str(error), param_hint="--din") from None


def _coi(text: str) -> str:
    try:
        return Coi.parse(text).value if text else ""
    except InvalidIdentifier as error:
        raise typer.BadParameter(str(error), param_hint="--coi") from None


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
        expiry_data(at)
    except ValueError as error:  # InvalidLabelData is a ValueError
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date and time with a UTC offset"
            f" (e.g. 2026-03-01T23:59+01:00): {error}",
            param_hint="--expires",
        ) from None
    return at


def _product(code: str | None, codes_file: Path | None) -> tuple[str | None, str]:
    try:
        codes = load_product_codes(codes_file)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--product-codes") from None
    if code is None:
        return None, ""
    try:
        return codes.describe(code)
    except InvalidLabelData as error:
        raise typer.BadParameter(str(error), param_hint="--product-code") from None


@app.command("print")
def print_command(
    din: Annotated[
        str, typer.Option("--din", help="The unit's DIN + flags (15), or as scanned/printed.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the label.", dir_okay=False)],
    coi: Annotated[str, typer.Option("--coi", help="The unit's COI, printed.")] = "",
    product_code: Annotated[
        str | None,
        typer.Option("--product-code", help="A product code the site loaded (e.g. S1234)."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Expiry, ISO 8601 with a UTC offset.")
    ] = None,
    line: Annotated[
        list[str] | None, typer.Option("--line", help=f"A site line (at most {MAX_LINES}).")
    ] = None,
    png: Annotated[bool, typer.Option("--png", help="Write a PNG image instead of a PDF.")] = False,
    dpi: Annotated[int, typer.Option("--dpi", min=72, max=1200, help="PNG resolution.")] = 300,
    product_codes: Annotated[
        Path | None,
        typer.Option(
            "--product-codes",
            envvar=ENV_VARIABLE,
            help="The site's licensed product description codes (CSV or JSON).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Render a bag label: DIN with flags and check character, COI, product code and expiry
    when given, a Code 128 per data structure and a DataMatrix with all of them."""
    wanted = ".png" if png else ".pdf"
    if out.suffix.lower() in (".png", ".pdf") and out.suffix.lower() != wanted:
        what = "a PNG (--png)" if png else "a PDF"
        raise typer.BadParameter(f"{out} would hold {what}: name it *{wanted}", param_hint="--out")
    code, description = _product(product_code, product_codes)
    try:
        label = Label(_din(din), _coi(coi), code, _expiry(expires), description, tuple(line or ()))
    except InvalidLabelData as error:
        raise typer.BadParameter(str(error), param_hint="--line") from None
    out.write_bytes(label_png(label, dpi) if png else label_pdf(label))
    typer.echo(f"written: {out} (DIN {label.eye_readable_din})")
