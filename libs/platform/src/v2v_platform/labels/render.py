"""A label as a printable PDF (reportlab) and as a PNG image (Pillow), from one `layout`."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from v2v_platform.labels.label import Label
from v2v_platform.labels.layout import POINT_MM, SIZE_MM, Box, Element, Modules, Text, layout

PDF_FONTS = {False: "Helvetica", True: "Helvetica-Bold"}


def dark_runs(row: tuple[bool, ...]) -> Iterator[tuple[int, int]]:
    """(first module, number of modules) of each run of dark modules in ``row``."""
    start = None
    for index, dark in enumerate((*row, False)):
        if dark and start is None:
            start = index
        elif not dark and start is not None:
            yield start, index - start
            start = None


def label_pdf(label: Label) -> bytes:
    """The label as a one-page PDF of 100 x 100 mm."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(SIZE_MM * mm, SIZE_MM * mm), pageCompression=1)
    canvas.setTitle(f"ISBT 128 label {label.din}")
    canvas.setCreator("v2v")
    for element in layout(label):
        _draw_pdf(canvas, element)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _draw_pdf(canvas: Canvas, element: Element) -> None:
    top = SIZE_MM
    if isinstance(element, Text):
        canvas.setFont(PDF_FONTS[element.bold], element.size_pt)
        canvas.drawString(element.x * mm, (top - element.baseline) * mm, element.text)
    elif isinstance(element, Box):
        y = (top - element.y - element.height) * mm
        fill = 1 if element.filled else 0
        canvas.setLineWidth(0.3 * mm)
        canvas.rect(element.x * mm, y, element.width * mm, element.height * mm, 1 - fill, fill)
    else:
        for number, row in enumerate(element.rows):
            y = (top - element.y - (number + 1) * element.row_height) * mm
            for first, count in dark_runs(row):
                x = (element.x + first * element.module) * mm
                canvas.rect(x, y, count * element.module * mm, element.row_height * mm, 0, 1)


def label_png(label: Label, dpi: int = 300) -> bytes:
    """The label as a PNG image (``dpi`` dots per inch: 100 mm is ``dpi * 100 / 25.4`` px)."""
    if not 72 <= dpi <= 1200:
        raise ValueError(f"dpi {dpi} is out of range 72-1200")
    scale = dpi / 25.4
    side = round(SIZE_MM * scale)
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    for element in layout(label):
        _draw_png(draw, element, scale)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def _draw_png(draw: ImageDraw.ImageDraw, element: Element, scale: float) -> None:
    def px(value: float) -> int:
        return round(value * scale)

    if isinstance(element, Text):
        font = ImageFont.load_default(size=max(1, round(element.size_pt * POINT_MM * scale)))
        position = (px(element.x), px(element.baseline))
        draw.text(position, element.text, fill=0, font=font, anchor="ls")
        if element.bold:
            draw.text((position[0] + 1, position[1]), element.text, fill=0, font=font, anchor="ls")
    elif isinstance(element, Box):
        corners = (
            px(element.x),
            px(element.y),
            px(element.x + element.width) - 1,
            px(element.y + element.height) - 1,
        )
        if element.filled:
            draw.rectangle(corners, fill=0)
        else:
            draw.rectangle(corners, outline=0, width=max(1, px(0.3)))
    else:
        _draw_modules(draw, element, px)


def _draw_modules(draw: ImageDraw.ImageDraw, element: Modules, px: Callable[[float], int]) -> None:
    for number, row in enumerate(element.rows):
        top = px(element.y + number * element.row_height)
        bottom = px(element.y + (number + 1) * element.row_height) - 1
        for first, count in dark_runs(row):
            left = px(element.x + first * element.module)
            right = px(element.x + (first + count) * element.module) - 1
            draw.rectangle((left, top, right, bottom), fill=0)
