"""Shared by the gRPC and HTTP adapters: who is acting, with which of the method's roles."""

from __future__ import annotations

from collections.abc import Iterable

from v2v_platform import telemetry
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.errors import Forbidden


def acting_role(caller: CallerIdentity, allowed: Iterable[Role]) -> Role:
    """The first of the method's roles (in preference order) the caller holds."""
    for role in allowed:
        if role in caller.roles:
            return role
    raise Forbidden(f"site {caller.site_id} holds none of the roles this command needs")


def attribution(
    caller: CallerIdentity,
    allowed: Iterable[Role],
    user_id: str,
    printed_name: str,
    reason: str = "",
) -> Attribution:
    """Who did it (as the calling site asserts), where (from its certificate) and why."""
    return Attribution(
        user_id=user_id,
        printed_name=printed_name,
        role=acting_role(caller, allowed).value,
        site_id=caller.site_id,
        reason=reason,
        traceparent=telemetry.current_traceparent(),
    )
