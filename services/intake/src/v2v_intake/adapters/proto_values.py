"""Small conversions between protobuf fields and the application's plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Operator
from v2v_platform.attribution import Attribution
from v2v_platform.auth import CallerIdentity
from v2v_platform.errors import InvalidInput

COMMAND_ROLE = "collection"


def attribution(operator: Operator, caller: CallerIdentity, reason: str = "") -> Attribution:
    """Who acts: the operator named by the calling site; the site from its certificate."""
    return Attribution(
        operator.user_id, operator.printed_name, COMMAND_ROLE, caller.site_id, reason
    )


def iso_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be an ISO 8601 date (YYYY-MM-DD), got {text!r}") from None


def required_time(message: Message, field: str) -> datetime:
    moment = optional_time(message, field)
    if moment is None:
        raise InvalidInput(f"{field} is required")
    return moment


def optional_time(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value
