"""Who may read which chain: a site reads the chains it takes part in (its site is among the
chain's `sites`); a site with the auditor role reads every chain. A chain the caller may not
read is reported exactly like a chain that does not exist."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.errors import NotFound

READERS = (
    Role.COLLECTION,
    Role.MANUFACTURING,
    Role.QC,
    Role.INFUSION,
    Role.COURIER,
    Role.AUDITOR,
)


def may_read(caller: CallerIdentity, view: dict[str, Any]) -> bool:
    return Role.AUDITOR in caller.roles or caller.site_id in view["sites"]


def readable(caller: CallerIdentity, views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [view for view in views if may_read(caller, view)]


def require_readable(
    caller: CallerIdentity, coi: str, view: dict[str, Any] | None
) -> dict[str, Any]:
    if view is None or not may_read(caller, view):
        raise NotFound(f"no chain {coi!r} is visible to site {caller.site_id}")
    return view
