"""Courier-token requests in the access log (`v2v_platform.access_log`, logger `v2v.access`).

A courier token is this service's own credential, so the platform's access-log middleware
cannot identify its holder: the courier routes note the courier (its site, the courier role
and the courier id) and, once the courier is known to be one of the shipment's parties, the
shipment's COI. The middleware then logs each such request, allowed or refused, with the
route, the shipment id and the status. No personal data: request bodies are not logged.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from v2v_platform.auth.identity import Role
from v2v_platform.http_api import NotedCaller, note_caller, note_coi

__all__ = ["note_coi", "note_courier"]
COURIER = frozenset({Role.COURIER})


def note_courier(request: Request, courier: Any) -> None:
    """The courier a token identified (a `CourierIdentity`), for the access log."""
    note_caller(request, NotedCaller(courier.site_id, COURIER, f"courier={courier.courier_id}"))
