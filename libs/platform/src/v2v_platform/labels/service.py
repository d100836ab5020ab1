"""What intake and manufacturing share to print a unit's label over HTTP: the label of a
unit they issued, from the site's product codes, refused as `InvalidInput` when the request
asks for what no label may carry; and the PDF response."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Response

from v2v_platform.errors import InvalidInput
from v2v_platform.ids import Din
from v2v_platform.labels.data_structures import InvalidLabelData
from v2v_platform.labels.label import Label
from v2v_platform.labels.product_codes import ProductCodes
from v2v_platform.labels.render import label_pdf

PDF = "application/pdf"
PDF_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {PDF: {}}, "description": "The label, a 100 x 100 mm PDF page."}
}
"""The label routes' `responses` (OpenAPI): a PDF, not JSON."""


def unit_label(
    din: Din,
    coi: str,
    codes: ProductCodes,
    product_code: str | None,
    expires_at: datetime | None,
    lines: tuple[str, ...],
) -> Label:
    """The unit's label; a product code only when the site loaded it (with its description)."""
    try:
        code, description = (None, "") if product_code is None else codes.describe(product_code)
        return Label(din, coi, code, expires_at, description, lines)
    except InvalidLabelData as error:
        raise InvalidInput(str(error)) from None


def pdf_response(label: Label) -> Response:
    filename = f"label-{label.din}.pdf"
    headers = {"Content-Disposition": f'inline; filename="{filename}"'}
    return Response(label_pdf(label), media_type=PDF, headers=headers)
