"""Reading a rendered ISBT 128 label back as a scanner would: the PDF rendered to an image
(pypdfium2), every barcode decoded (zxing-cpp), keyed like `v2v_platform.labels.
barcode_texts` (``din``, ``product``, ``expiry`` Code 128s by their data identifier, the
``datamatrix``), so a test compares what was read with what the label encodes, exactly."""

from __future__ import annotations

from typing import Any

import pypdfium2  # type: ignore[import-untyped, unused-ignore]
import zxingcpp

CODE128_KEYS = {"=<": "product", "&>": "expiry"}


def pdf_image(pdf: bytes, dpi: int = 300) -> Any:
    """The PDF's first page as a PIL image at ``dpi``."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        return document[0].render(scale=dpi / 72).to_pil()
    finally:
        document.close()


def pdf_text(pdf: bytes) -> str:
    """The text printed on the PDF's first page."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        return str(document[0].get_textpage().get_text_range())
    finally:
        document.close()


def read_barcodes(image: Any) -> dict[str, str]:
    """Every barcode in ``image`` by kind; AssertionError for one of another symbology or two
    of one kind."""
    read: dict[str, str] = {}
    for barcode in zxingcpp.read_barcodes(image):
        if barcode.format == zxingcpp.BarcodeFormat.DataMatrix:
            key = "datamatrix"
        else:
            assert barcode.format == zxingcpp.BarcodeFormat.Code128, barcode.format
            key = CODE128_KEYS.get(barcode.text[:2], "din")
        assert key not in read, f"two {key} barcodes: {read[key]!r}, {barcode.text!r}"
        read[key] = barcode.text
    return read


def read_pdf_barcodes(pdf: bytes, dpi: int = 300) -> dict[str, str]:
    return read_barcodes(pdf_image(pdf, dpi))
