"""Conversions every service adapter needs between protobuf fields and plain values.

Who acts is built here too: the operator as the calling site asserts them, the site and the
role from the caller's certificate (never from request fields), and the active trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v_platform import telemetry
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput

_CONDITION_TO_PROTO: dict[Condition, common_pb2.Condition.ValueType] = {
    Condition.FRESH_COLD: common_pb2.CONDITION_FRESH_COLD,
    Condition.FRESH_AMBIENT: common_pb2.CONDITION_FRESH_AMBIENT,
    Condition.CRYO: common_pb2.CONDITION_CRYO,
}
_CONDITION_FROM_PROTO = {value: condition for condition, value in _CONDITION_TO_PROTO.items()}


def timestamp(moment: datetime) -> Timestamp:
    if moment.tzinfo is None:
        raise InvalidInput("times must carry a time zone (UTC)")
    value = Timestamp()
    value.FromDatetime(moment.astimezone(UTC))
    return value


def from_timestamp(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def optional_time(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return from_timestamp(getattr(message, field))


def required_time(message: Message, field: str) -> datetime:
    moment = optional_time(message, field)
    if moment is None:
        raise InvalidInput(f"{field} is required")
    return moment


def iso_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be an ISO 8601 date (YYYY-MM-DD), got {text!r}") from None


def condition_to_proto(condition: Condition | str) -> common_pb2.Condition.ValueType:
    return _CONDITION_TO_PROTO[Condition(condition)]


def condition_from_proto(value: common_pb2.Condition.ValueType) -> Condition:
    condition = _CONDITION_FROM_PROTO.get(value)
    if condition is None:
        raise InvalidInput("condition must be fresh-cold, fresh-ambient or cryo")
    return condition


_ROLE_ORDER = {role: index for index, role in enumerate(Role)}


def acting_role(caller: CallerIdentity, allowed: Iterable[Role]) -> Role:
    """The first of the method's roles the caller holds: in the order given, or for a set
    (a declared `Access`) in `Role`'s order, so the role recorded never depends on hashing."""
    ordered = (
        allowed
        if isinstance(allowed, list | tuple)
        else sorted(allowed, key=_ROLE_ORDER.__getitem__)
    )
    for role in ordered:
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
    """Who did it (as the calling site asserts), where (its certificate), why, and the trace."""
    return Attribution(
        user_id=user_id,
        printed_name=printed_name,
        role=acting_role(caller, allowed).value,
        site_id=caller.site_id,
        reason=reason,
        traceparent=telemetry.current_traceparent(),
    )


def signature_from_proto(message: common_pb2.SignatureManifestation) -> SignatureManifestation:
    return SignatureManifestation(
        message.user_id,
        message.printed_name,
        message.meaning,
        required_time(message, "signed_at"),
        message.record_hash,
    )


def signature_to_proto(
    manifestation: Mapping[str, str] | None,
) -> common_pb2.SignatureManifestation | None:
    """A stored signature (`SignatureManifestation.as_dict()`) as the shared proto message."""
    if manifestation is None:
        return None
    return common_pb2.SignatureManifestation(
        user_id=manifestation["user_id"],
        printed_name=manifestation["printed_name"],
        meaning=manifestation["meaning"],
        signed_at=timestamp(datetime.fromisoformat(manifestation["signed_at"])),
        record_hash=manifestation.get("record_hash", ""),
    )
