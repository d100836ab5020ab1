"""The vendored EPCIS 2.0 JSON schema (schemas/README.md) and a validator over it, for the
tests and tools that check v2v's documents (jsonschema is a development dependency: imported
only when a document is validated).

The schema's `uri` and `date-time` formats are checked here (jsonschema checks them only with
optional packages): a URI is a scheme and a rest without spaces (RFC 3986 section 3), a
date-time an ISO 8601 / RFC 3339 time with its offset."""

from __future__ import annotations

import importlib.resources
import json
import re
from datetime import datetime
from functools import cache
from typing import Any

SCHEMA_FILE = "EPCIS-JSON-Schema.json"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*")


@cache
def epcis_schema() -> dict[str, Any]:
    text = importlib.resources.files(__package__).joinpath("schemas", SCHEMA_FILE).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def is_uri(value: object) -> bool:
    return not isinstance(value, str) or _URI.fullmatch(value) is not None


def is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value and moment.tzinfo is not None


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Every way `document` breaks the EPCIS 2.0 JSON schema (empty: valid)."""
    import jsonschema  # type: ignore[import-untyped, unused-ignore]

    formats = jsonschema.FormatChecker(formats=())
    formats.checks("uri")(is_uri)
    formats.checks("date-time")(is_date_time)
    validator = jsonschema.Draft7Validator(epcis_schema(), format_checker=formats)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(document)'}: {error.message[:300]}"
        for error in validator.iter_errors(document)
    ]
