"""Times inside the fold are integer nanoseconds since the epoch (UTC); views show ISO-8601."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_HOUR = 3_600_000_000_000


def stamp_ns(value: Timestamp) -> int:
    """0 when the field is unset (protobuf default)."""
    return value.seconds * 1_000_000_000 + value.nanos


def datetime_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; give UTC times")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_TWO_DIGITS = [f"{n:02d}" for n in range(60)]
_HOUR_PREFIXES: dict[int, str] = {}
_SHOWN: dict[int, str] = {}  # a chain shows the same instants several times (custody bounds)
_SHOWN_LIMIT = 100_000


def iso(ns: int | None) -> str | None:
    """`datetime.isoformat()` of the UTC time (microseconds shown when not zero), faster."""
    if ns is None:
        return None
    shown = _SHOWN.get(ns)
    if shown is None:
        if len(_SHOWN) >= _SHOWN_LIMIT:
            _SHOWN.clear()
        shown = _SHOWN[ns] = _format(ns)
    return shown


def _format(ns: int) -> str:
    hour, rest = divmod(ns // 1000, 3_600_000_000)
    prefix = _HOUR_PREFIXES.get(hour)
    if prefix is None:
        prefix = _HOUR_PREFIXES[hour] = (EPOCH + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:")
    minute, rest = divmod(rest, 60_000_000)
    second, micro = divmod(rest, 1_000_000)
    clock = prefix + _TWO_DIGITS[minute] + ":" + _TWO_DIGITS[second]
    if micro:
        return clock + "." + str(1_000_000 + micro)[1:] + "+00:00"
    return clock + "+00:00"


def hours(start_ns: int | None, end_ns: int | None) -> float | None:
    if start_ns is None or end_ns is None:
        return None
    return round((end_ns - start_ns) / NS_PER_HOUR, 2)
