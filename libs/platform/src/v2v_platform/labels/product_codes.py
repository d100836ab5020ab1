"""The product description codes a site loads: ICCBBA's tables are licensed, v2v ships none.

A site that licensed them writes the codes it uses, with their descriptions, to a small file
and points `V2V_PRODUCT_CODES_FILE` at it (`ProductCodesSettings`, mixed into the intake and
manufacturing settings; the `v2v labels print` command reads the same variable):

- CSV with a header row ``code,description``, one code a row; or
- JSON, one object ``{"S1234": "description", ...}``.

A code is a product description code (``S1234``) or a full product code (``S1234A00``: with
the type of donation and divisions). Without the file no label carries a product code, and a
label asked for one is refused: a product code is never printed without its description.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import field_validator

from v2v_platform.config import V2VSettings
from v2v_platform.labels.data_structures import InvalidLabelData, product_code_data

MAX_CODES = 10_000
MAX_DESCRIPTION_CHARS = 120
ENV_VARIABLE = "V2V_PRODUCT_CODES_FILE"


class UnknownProductCode(InvalidLabelData):
    """A product code the site did not load (or no codes are loaded at all)."""


@dataclass(frozen=True)
class ProductCodes:
    """The site's product codes: code -> description (empty: none configured)."""

    descriptions: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.descriptions)

    def describe(self, code: str) -> tuple[str, str]:
        """(the 8-character product code, its description); UnknownProductCode unless the
        site loaded ``code`` (or the product description code it starts with)."""
        data = product_code_data(code)
        description = self.descriptions.get(code) or self.descriptions.get(data)
        if description is None and len(code) == len(data):
            description = self.descriptions.get(code[:5])
        if description is None:
            if not self.configured:
                raise UnknownProductCode(
                    f"product code {code!r} cannot be printed: this site loaded no product"
                    f" description codes ({ENV_VARIABLE} is not set)"
                )
            raise UnknownProductCode(
                f"product code {code!r} is not among the {len(self.descriptions)} product codes"
                f" this site loaded from {self.source}"
            )
        return data, description


NO_PRODUCT_CODES = ProductCodes()


def load_product_codes(path: Path | None) -> ProductCodes:
    """The codes in ``path`` (CSV or JSON, see the module doc); none when ``path`` is None.
    ValueError naming the file and the problem for anything else."""
    if path is None:
        return NO_PRODUCT_CODES
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"product codes file {path}: {error.strerror or error}") from None
    pairs = _json_pairs(path, text) if path.suffix.lower() == ".json" else _csv_pairs(path, text)
    if len(pairs) > MAX_CODES:
        raise ValueError(f"product codes file {path}: more than {MAX_CODES} codes")
    descriptions: dict[str, str] = {}
    for code, description in pairs:
        _check_entry(path, code, description)
        if code in descriptions:
            raise ValueError(f"product codes file {path}: code {code!r} is listed twice")
        descriptions[code] = description
    return ProductCodes(descriptions, str(path))


def _json_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"product codes file {path}: not JSON ({error.msg})") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise ValueError(f"product codes file {path}: expected one object of code -> description")
    return [(code.strip(), description.strip()) for code, description in loaded.items()]


def _csv_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip().lower() for cell in rows[0]] != ["code", "description"]:
        raise ValueError(f"product codes file {path}: expected the header row 'code,description'")
    pairs: list[tuple[str, str]] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise ValueError(f"product codes file {path}, row {number}: expected 2 columns")
        pairs.append((row[0].strip(), row[1].strip()))
    return pairs


def _check_entry(path: Path, code: str, description: str) -> None:
    try:
        product_code_data(code)
    except InvalidLabelData as error:
        raise ValueError(f"product codes file {path}: {error}") from None
    if not description or len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(
            f"product codes file {path}: code {code!r} needs a description of 1-"
            f"{MAX_DESCRIPTION_CHARS} characters"
        )
    if not description.isprintable():
        raise ValueError(f"product codes file {path}: code {code!r} has an unprintable description")


class ProductCodesSettings(V2VSettings):
    """`V2V_PRODUCT_CODES_FILE` (mix into a service's settings): the site's licensed product
    description codes; unset, labels carry no product code."""

    product_codes_file: Path | None = None

    @field_validator("product_codes_file")
    @classmethod
    def _loadable(cls, value: Path | None) -> Path | None:
        load_product_codes(value)  # a bad file stops the service at start, naming it
        return value

    def product_codes(self) -> ProductCodes:
        return load_product_codes(self.product_codes_file)
