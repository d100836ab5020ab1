"""Domain conditions <-> v2v.common.v1.Condition."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition as ConditionProto
from v2v_manufacturing.domain.values import Condition
from v2v_platform.errors import InvalidInput

TO_PROTO: dict[Condition, ConditionProto.ValueType] = {
    Condition.FRESH_COLD: ConditionProto.CONDITION_FRESH_COLD,
    Condition.FRESH_AMBIENT: ConditionProto.CONDITION_FRESH_AMBIENT,
    Condition.CRYO: ConditionProto.CONDITION_CRYO,
}
FROM_PROTO = {value: key for key, value in TO_PROTO.items()}


def condition_to_proto(condition: Condition | str) -> ConditionProto.ValueType:
    return TO_PROTO[Condition(condition)]


def condition_from_proto(value: ConditionProto.ValueType) -> Condition:
    try:
        return FROM_PROTO[value]
    except KeyError:
        raise InvalidInput("condition must be fresh cold, fresh ambient or cryo") from None


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)
