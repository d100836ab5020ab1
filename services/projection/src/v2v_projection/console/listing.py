"""The chains list's filters and search, on top of `ChainQueries.list_chains` (which applies the
caller's scope and pages by COI): the console's filter is a `ChainFilter` that also knows an
end date and a search text.

Search: a text that the platform's DIN parser accepts (surrounding blanks ignored; the
16-character form with its check character and the eye-readable form with single spaces are
accepted too, as printed on a label) matches the chains whose units include that DIN; any
other text matches the COIs that contain it (case-insensitive), so a full COI finds its chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from v2v_platform.errors import InvalidInput
from v2v_platform.ids.din import DIN_WITH_CHECK_LENGTH
from v2v_platform.service_application import parse_din
from v2v_projection.queries import ChainFilter

MAX_SEARCH_CHARS = 64


def din_of(text: str) -> str | None:
    """The DIN (15 characters, DIN + flags) `text` names, or None when it names none."""
    candidates = [text]
    squeezed = "".join(text.split())
    if squeezed != text.strip() and len(squeezed) <= DIN_WITH_CHECK_LENGTH:
        candidates.append(squeezed)  # "G1234 98 654321 00 H", as printed eye-readable
    for candidate in candidates:
        try:
            return str(parse_din(candidate))
        except InvalidInput:
            continue
    return None


@dataclass(frozen=True)
class Search:
    text: str = ""

    @property
    def din(self) -> str | None:
        return din_of(self.text) if self.text else None

    def matches(self, view: dict[str, Any]) -> bool:
        text = self.text.strip()
        if not text:
            return True
        din = self.din
        if din is not None:
            return any(unit["din"] == din for unit in view["units"])
        return text.upper() in view["coi"].upper()


@dataclass(frozen=True)
class ConsoleFilter(ChainFilter):
    """`ChainFilter` (stage, site, has alerts, updated since) + updated before + search."""

    updated_before: datetime | None = None
    search: Search = Search()

    def accepts(self, view: dict[str, Any]) -> bool:
        if not super().accepts(view):
            return False
        before = self.updated_before
        if before is not None and datetime.fromisoformat(view["updated_at"]) >= before:
            return False
        return self.search.matches(view)


def day_start(text: str, name: str) -> datetime | None:
    """The start (UTC) of the day `text` (YYYY-MM-DD) names; None for an empty text."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2025-03-01, got {text[:32]!r}") from None
    return datetime.combine(day, time(0), tzinfo=UTC)


def day_end(text: str, name: str) -> datetime | None:
    """The start (UTC) of the day after `text`: chains updated ON that day are included."""
    start = day_start(text, name)
    return None if start is None else start + timedelta(days=1)


def alerts_wanted(text: str) -> bool | None:
    return {"yes": True, "no": False}.get(text)
