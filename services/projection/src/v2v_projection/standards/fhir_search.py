"""FHIR search over the chains a caller reads: `identifier` (token: `system|value`, `|value`,
or a bare `value`; commas OR values, repeated parameters AND) and `_id`.

A search by `_id` goes straight to its chain (the id names the COI). A search by identifier
scans the views of the chains the caller reads (`ChainQueries.readable`: the fold keeps each
view derived once and re-derives only chains that took events since, so a search derives
nothing new on a quiet projection); no DIN -> COI index is public today (the fold's
`DinIndex` is private to it). A search names at least one parameter: there is no unbounded
listing (GET /v1/chains pages the chains).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from v2v_platform.errors import NotFound
from v2v_platform.ids.din import DIN_DATA_LENGTH, DIN_LENGTH, DIN_WITH_CHECK_LENGTH, Din
from v2v_platform.limits import MAX_NAME_CHARS, MAX_PARAMETERS
from v2v_platform.scope import Scope
from v2v_projection.queries import ChainQueries
from v2v_projection.standards import fhir

FORMATS = frozenset({"json", "application/json", fhir.FHIR_JSON})


class BadSearch(Exception):
    """A search the server refuses (400), naming the parameter."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"search parameter {parameter!r}: {problem}")
        self.parameter = parameter


@dataclass(frozen=True)
class Criteria:
    """Per parameter occurrence, the values any of which must match (AND of ORs)."""

    ids: tuple[frozenset[str], ...] = ()
    dins: tuple[frozenset[str], ...] = ()

    def accepts(self, resource_id: str, din: str) -> bool:
        return all(resource_id in wanted for wanted in self.ids) and all(
            din in wanted for wanted in self.dins
        )


def criteria(params: Sequence[tuple[str, str]]) -> Criteria:
    """The criteria of a query string (its items in order); BadSearch when malformed."""
    if len(params) > MAX_PARAMETERS:
        raise BadSearch("*", f"at most {MAX_PARAMETERS} parameters")
    ids: list[frozenset[str]] = []
    dins: list[frozenset[str]] = []
    for name, raw in params:
        if len(raw) > MAX_NAME_CHARS:
            raise BadSearch(name, f"longer than {MAX_NAME_CHARS} characters")
        if name == "_format":
            if raw not in FORMATS:
                raise BadSearch(name, "this server answers JSON only (json, application/fhir+json)")
        elif name == "_id":
            ids.append(frozenset(values(name, raw)))
        elif name == "identifier":
            dins.append(frozenset(din for v in values(name, raw) if (din := unit_din(name, v))))
        else:
            raise BadSearch(name, "not supported here (supported: identifier, _id, _format)")
    if not ids and not dins:
        raise BadSearch("identifier", "a search names identifier or _id")
    return Criteria(tuple(ids), tuple(dins))


def values(name: str, raw: str) -> list[str]:
    found = [value.strip() for value in raw.split(",")]
    if not all(found):
        raise BadSearch(name, "an empty value")
    return found


def unit_din(name: str, token: str) -> str:
    """The unit DIN a token names ("" when it can name none of ours: another system, or no
    system); BadSearch when it names our system with no DIN."""
    system, bar, value = token.rpartition("|") if "|" in token else (None, "", token)
    if bar and (not value or "|" in (system or "")):
        raise BadSearch(name, f"{token!r} is not a token (system|value or value)")
    if system not in (None, fhir.UNIT_SYSTEM):
        return ""
    din = canonical_din(value)
    if din is None and system == fhir.UNIT_SYSTEM:
        raise BadSearch(
            name,
            f"{value!r} is not an ISBT 128 DIN with flags (15 characters, 16 with the"
            " check character)",
        )
    return din or ""


def canonical_din(value: str) -> str | None:
    """The 15-character DIN + flags of `value`: as the bar code carries it, with the check
    character (16), or as in the EPCIS unit URI (`<DIN>:<flags>`); None if none of these."""
    if len(value) == DIN_DATA_LENGTH + 3 and value[DIN_DATA_LENGTH] == ":":
        value = value[:DIN_DATA_LENGTH] + value[DIN_DATA_LENGTH + 1 :]
    if len(value) not in (DIN_LENGTH, DIN_WITH_CHECK_LENGTH):
        return None
    try:
        return str(Din.parse(value))
    except ValueError:
        return None


def readable_views(
    queries: ChainQueries, scope: Scope, wanted: Criteria
) -> Iterable[dict[str, Any]]:
    """The chains an `_id` names (those the caller reads), else every chain it reads."""
    if not wanted.ids:
        return queries.readable(scope)
    cois = {
        parsed[1] for parsed in map(fhir.parse_resource_id, wanted.ids[0]) if parsed is not None
    }
    found = []
    for coi in sorted(cois):
        try:
            found.append(queries.chain(scope, coi))
        except NotFound:
            continue
    return found


def search_products(
    queries: ChainQueries, scope: Scope, params: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    wanted = criteria(params)
    return [
        fhir.product(view, unit)
        for view in readable_views(queries, scope, wanted)
        for unit in view["units"]
        if wanted.accepts(fhir.resource_id(unit["din"], view["coi"]), unit["din"])
    ]


def search_dispenses(
    queries: ChainQueries, scope: Scope, params: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    wanted = criteria(params)
    found = []
    for view in readable_views(queries, scope, wanted):
        infusion = view["infusion"]
        din = infusion["din"] if infusion is not None else ""
        if din and wanted.accepts(fhir.resource_id(din, view["coi"]), din):
            made = fhir.dispense(view)
            if made is not None:
                found.append(made)
    return found


def read_product(queries: ChainQueries, scope: Scope, resource_id: str) -> dict[str, Any]:
    view, din = chain_of(queries, scope, fhir.PRODUCT, resource_id)
    unit = next((u for u in view["units"] if u["din"] == din), None)
    if unit is None:
        raise NotFound(f"no {fhir.PRODUCT}/{resource_id} is visible to site {scope.site_id}")
    return fhir.product(view, unit)


def read_dispense(queries: ChainQueries, scope: Scope, resource_id: str) -> dict[str, Any]:
    view, din = chain_of(queries, scope, fhir.DISPENSE, resource_id)
    infusion = view["infusion"]
    made = fhir.dispense(view) if infusion is not None and infusion["din"] == din else None
    if made is None:
        raise NotFound(f"no {fhir.DISPENSE}/{resource_id} is visible to site {scope.site_id}")
    return made


def chain_of(
    queries: ChainQueries, scope: Scope, kind: str, resource_id: str
) -> tuple[dict[str, Any], str]:
    """The chain a resource id names (NotFound, as if absent, when the caller may not read
    it) and the unit's DIN."""
    parsed = fhir.parse_resource_id(resource_id)
    if parsed is None:
        raise NotFound(f"no {kind}/{resource_id[:80]} is visible to site {scope.site_id}")
    din, coi = parsed
    try:
        return queries.chain(scope, coi), din
    except NotFound:
        raise NotFound(f"no {kind}/{resource_id} is visible to site {scope.site_id}") from None
