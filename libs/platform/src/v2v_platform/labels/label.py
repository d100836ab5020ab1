"""What a v2v bag label says: the unit's DIN, its COI, the product code and expiry when
configured, a few lines naming the site, and what each of its barcodes encodes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2v_platform.ids import Coi, Din, din_from_scan
from v2v_platform.labels.data_structures import (
    InvalidLabelData,
    compound_message,
    din_structure,
    expiry_data,
    expiry_structure,
    product_code_data,
    product_code_structure,
)

MAX_LINES = 3
MAX_LINE_CHARS = 48
MAX_DESCRIPTION_CHARS = 120


@dataclass(frozen=True)
class Label:
    """One bag's label. ``din`` may be given as text in any form a scan accepts
    (`v2v_platform.ids.din_from_scan`); it is kept as a `Din`. ``product_code`` is the code
    the site loaded (see `ProductCodes.describe`) with its ``product_description``; both
    None/empty when the site configured none. ``lines``: up to 3 short lines naming the site
    or facility. Anything a label cannot carry raises `InvalidLabelData` (or
    `InvalidIdentifier` for the DIN or COI)."""

    din: Din
    coi: str = ""
    product_code: str | None = None
    expires_at: datetime | None = None
    product_description: str = ""
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        din = self.din if isinstance(self.din, Din) else din_from_scan(str(self.din))
        object.__setattr__(self, "din", din)
        if self.coi:
            object.__setattr__(self, "coi", Coi.parse(self.coi).value)
        if self.product_code is not None:
            product_code_data(self.product_code)
            _check_text("product description", self.product_description, MAX_DESCRIPTION_CHARS)
        if self.expires_at is not None:
            expiry_data(self.expires_at)
        if len(self.lines) > MAX_LINES:
            raise InvalidLabelData(f"a label prints at most {MAX_LINES} site lines")
        for line in self.lines:
            _check_text("site line", line, MAX_LINE_CHARS, required=False)

    @property
    def eye_readable_din(self) -> str:
        """``G1234 98 654321 00 H``: DIN, flags and check character as printed."""
        return self.din.eye_readable()


def barcode_texts(label: Label) -> dict[str, str]:
    """What each barcode of ``label`` encodes: ``din`` (data structure 001), ``product``
    (003, only with a product code), ``expiry`` (005, only with an expiry) and ``datamatrix``
    (023, the compound message of those structures in that order)."""
    texts = {"din": din_structure(label.din)}
    if label.product_code is not None:
        texts["product"] = product_code_structure(label.product_code)
    if label.expires_at is not None:
        texts["expiry"] = expiry_structure(label.expires_at)
    texts["datamatrix"] = compound_message(list(texts.values()))
    return texts


def _check_text(what: str, text: str, max_chars: int, *, required: bool = True) -> None:
    if required and not text.strip():
        raise InvalidLabelData(f"a label with a product code needs its {what}")
    if len(text) > max_chars or not text.isprintable():
        raise InvalidLabelData(
            f"{what} {text[:max_chars]!r}...: at most {max_chars} printable characters"
        )
