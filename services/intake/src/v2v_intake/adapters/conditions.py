"""Domain conditions <-> the shared v2v.common.v1.Condition enum."""

from __future__ import annotations

from v2v.common.v1 import common_pb2
from v2v_intake.domain.values import Condition
from v2v_platform.errors import InvalidInput

TO_PROTO: dict[Condition, common_pb2.Condition.ValueType] = {
    Condition.FRESH_COLD: common_pb2.CONDITION_FRESH_COLD,
    Condition.FRESH_AMBIENT: common_pb2.CONDITION_FRESH_AMBIENT,
    Condition.CRYO: common_pb2.CONDITION_CRYO,
}
FROM_PROTO = {value: condition for condition, value in TO_PROTO.items()}


def condition_to_proto(value: str) -> common_pb2.Condition.ValueType:
    return TO_PROTO[Condition(value)] if value else common_pb2.CONDITION_UNSPECIFIED


def condition_from_proto(value: common_pb2.Condition.ValueType) -> str:
    condition = FROM_PROTO.get(value)
    if condition is None:
        raise InvalidInput("condition must be fresh-cold, fresh-ambient or cryo")
    return condition.value
