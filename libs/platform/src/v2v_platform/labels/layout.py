"""Where everything goes on a 100 x 100 mm ISBT 128 bag label, in millimetres from the top
left, drawn the same by the PDF and the PNG renderer (`render`).

The four quadrants follow the ISBT 128 label layout: the DIN top left (its Code 128, then the
DIN eye-readable with its flags and boxed check character), top right the COI and the
DataMatrix (the compound message), bottom left the product code, bottom right the expiry,
the site's lines along the bottom. Barcode modules come from zxing-cpp's encoder, so both
renderers draw exactly the same bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import zxingcpp
from reportlab.pdfbase.pdfmetrics import stringWidth  # type: ignore[import-untyped]

from v2v_platform.labels.label import Label, barcode_texts

SIZE_MM = 100.0
MARGIN_MM = 4.0
HALF_MM = SIZE_MM / 2
QUADRANT_WIDTH_MM = HALF_MM - 2 * MARGIN_MM
LINEAR_HEIGHT_MM = 13.0
MAX_MODULE_MM = 0.33
DATAMATRIX_MM = 22.0
POINT_MM = 25.4 / 72


@dataclass(frozen=True)
class Text:
    x: float
    baseline: float
    size_pt: float
    text: str
    bold: bool = False


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    filled: bool = False


@dataclass(frozen=True)
class Modules:
    """A barcode: ``rows`` of dark (True) / light modules, each ``module`` mm wide and
    ``row_height`` mm high (a linear barcode is one row)."""

    x: float
    y: float
    module: float
    row_height: float
    rows: tuple[tuple[bool, ...], ...]


Element = Text | Box | Modules


def modules_of(text: str, matrix: bool) -> tuple[tuple[bool, ...], ...]:
    """zxing-cpp's symbol for ``text`` (Code 128 or ECC 200 DataMatrix), one bool a module."""
    kind = zxingcpp.BarcodeFormat.DataMatrix if matrix else zxingcpp.BarcodeFormat.Code128
    symbol = zxingcpp.create_barcode(text, kind)
    image: Any = zxingcpp.write_barcode_to_image(symbol, scale=1, add_quiet_zones=False)
    view: Any = memoryview(image)
    pixels: list[list[int]] = view.tolist()  # rows of modules: 0 dark, 255 light
    rows = tuple(tuple(value == 0 for value in row) for row in pixels)
    return rows if matrix else rows[:1]


def linear(text: str, x: float, y: float) -> Modules:
    [row] = modules_of(text, matrix=False)
    module = min(MAX_MODULE_MM, QUADRANT_WIDTH_MM / len(row))
    return Modules(x, y, module, LINEAR_HEIGHT_MM, (row,))


def matrix(text: str, x: float, y: float) -> Modules:
    rows = modules_of(text, matrix=True)
    module = DATAMATRIX_MM / max(len(rows), len(rows[0]))
    return Modules(x, y, module, module, rows)


def layout(label: Label) -> list[Element]:
    texts = barcode_texts(label)
    left, right = MARGIN_MM, HALF_MM + MARGIN_MM
    lower = HALF_MM + MARGIN_MM
    elements: list[Element] = [
        Box(HALF_MM - 0.15, MARGIN_MM, 0.3, SIZE_MM - 2 * MARGIN_MM - 12, filled=True),
        Box(MARGIN_MM, HALF_MM - 0.15, SIZE_MM - 2 * MARGIN_MM, 0.3, filled=True),
        linear(texts["din"], left, MARGIN_MM + 2),
        *din_eye_readable(label, left, MARGIN_MM + 2 + LINEAR_HEIGHT_MM + 6),
        Text(right, MARGIN_MM + 4, 7, "COI"),
        Text(right, MARGIN_MM + 9, 10, label.coi or "-", bold=True),
        matrix(texts["datamatrix"], right, MARGIN_MM + 13),
    ]
    elements += product_quadrant(label, texts, left, lower)
    elements += expiry_quadrant(label, texts, right, lower)
    for number, line in enumerate(label.lines):
        elements.append(Text(left, SIZE_MM - MARGIN_MM - 8 + 4 * number, 7, line))
    return elements


def din_eye_readable(label: Label, x: float, baseline: float) -> list[Element]:
    """``G1234 98 654321``, the flags in smaller type, the check character in a box."""
    din = label.din
    data = f"{din.fin} {din.year} {din.sequence}"
    size = 12.0
    data_width = stringWidth(data, "Helvetica-Bold", size) * POINT_MM
    flags_x = x + data_width + 1.5
    check_x = flags_x + 4.5
    box = size * POINT_MM + 1.2
    return [
        Text(x, baseline, size, data, bold=True),
        Text(flags_x, baseline - 1.5, 7, din.flags),
        Box(check_x - 0.8, baseline - box + 1.0, box * 0.8, box),
        Text(check_x, baseline, size, din.check_character, bold=True),
    ]


def product_quadrant(label: Label, texts: dict[str, str], x: float, y: float) -> list[Element]:
    if "product" not in texts or label.product_code is None:
        return [Text(x, y + 4, 7, "Product code: not configured")]
    elements: list[Element] = [
        linear(texts["product"], x, y),
        Text(x, y + LINEAR_HEIGHT_MM + 5, 11, texts["product"][2:], bold=True),
    ]
    for number, line in enumerate(wrapped(label.product_description, 40)[:3]):
        elements.append(Text(x, y + LINEAR_HEIGHT_MM + 9 + 3.5 * number, 7, line))
    return elements


def expiry_quadrant(label: Label, texts: dict[str, str], x: float, y: float) -> list[Element]:
    at = label.expires_at
    if "expiry" not in texts or at is None:
        return [Text(x, y + 4, 7, "Expiry: not set")]
    offset = at.strftime("%z")
    return [
        linear(texts["expiry"], x, y),
        Text(x, y + LINEAR_HEIGHT_MM + 5, 7, "EXPIRES"),
        Text(x, y + LINEAR_HEIGHT_MM + 10, 11, at.strftime("%Y-%m-%d %H:%M"), bold=True),
        Text(x, y + LINEAR_HEIGHT_MM + 14, 7, f"UTC{offset[:3]}:{offset[3:]}"),
    ]


def wrapped(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word[:width])
    return lines
