"""Who looked at, or acted on, which chain: one line per call, allowed or refused.

Logger `v2v.access`, level INFO, one line per gRPC call and per HTTP request made with a site
credential: the channel, the caller's site and roles, the method or route, the COI the call
names (a `coi`-like request field or path parameter; `-` when it names none) and the outcome
(gRPC status name or HTTP status). Never personal data: request bodies are not logged. An
auditor answers "who looked at this chain" by searching the COI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

log = logging.getLogger("v2v.access")
_NOTED_COI: ContextVar[str] = ContextVar("v2v_access_noted_coi", default="")


def note_coi(coi: str) -> None:
    """The COI a gRPC call acted on or read when its request names none (e.g. a shipment's):
    the handler notes it, the interceptor's line shows it."""
    _NOTED_COI.set(coi)


def noted_coi() -> str:
    return _NOTED_COI.get()


COI_FIELDS = ("coi", "wristband_coi", "scanned_coi")


def coi_of_message(request: Any) -> str:
    """The COI a protobuf request names in one of `COI_FIELDS` ('' for none or no message)."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return ""
    for name in _coi_fields_of(descriptor):
        value = getattr(request, name)
        if isinstance(value, str) and value:
            return value
    return ""


_COI_FIELDS_OF: dict[Any, tuple[str, ...]] = {}


def _coi_fields_of(descriptor: Any) -> tuple[str, ...]:
    """The `COI_FIELDS` a message type has (looked up once per type)."""
    found = _COI_FIELDS_OF.get(descriptor)
    if found is None:
        found = tuple(name for name in COI_FIELDS if name in descriptor.fields_by_name)
        _COI_FIELDS_OF[descriptor] = found
    return found


def coi_of_params(params: Mapping[str, Any]) -> str:
    for name in COI_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def record(
    channel: str, site: str, roles: Iterable[Any], what: str, coi: str, outcome: str
) -> None:
    shown = ",".join(sorted(str(getattr(role, "value", role)) for role in roles)) or "-"
    log.info(
        "%s site=%s roles=%s %s coi=%s outcome=%s",
        channel,
        site or "-",
        shown,
        what,
        coi[:64] or "-",
        outcome,
    )
