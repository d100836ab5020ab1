"""The exported history file (`v2v audit export`): every record of every context topic with
its Kafka position, so an auditor can verify and replay without the broker.

Layout (version 1):
  line 1  b"V2V-HISTORY 1\\n"
  line 2  JSON header + b"\\n": {"exported_at": ISO-8601 UTC, "source": str,
          "topics": [topic, ...], "extents": [{"topic", "partition", "start", "end"}, ...]}
          where [start, end) is the offset range of the partition that was exported
  then    records, each: struct ">HIQI" (topic index into "topics", partition, offset,
          value length) followed by the value (a serialized v2v.events.v1.Envelope).

Written to a temporary file and renamed into place, so a crash never leaves half a history.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"V2V-HISTORY 1\n"
RECORD = struct.Struct(">HIQI")


class HistoryFileError(ValueError):
    """The file is not a readable v2v history (names what is wrong and where)."""


@dataclass(frozen=True)
class HistoryRecord:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class Extent:
    topic: str
    partition: int
    start: int
    end: int


@dataclass
class HistoryHeader:
    exported_at: str
    source: str
    extents: list[Extent] = field(default_factory=list)

    @property
    def topics(self) -> list[str]:
        return sorted({extent.topic for extent in self.extents})

    def to_json(self) -> bytes:
        extents = [vars(extent) for extent in self.extents]
        document = {
            "exported_at": self.exported_at,
            "source": self.source,
            "topics": self.topics,
            "extents": extents,
        }
        return json.dumps(document, sort_keys=True).encode() + b"\n"


def write_history(path: Path, header: HistoryHeader, records: Iterable[HistoryRecord]) -> int:
    """Write the file atomically; returns the number of records written."""
    index = {topic: i for i, topic in enumerate(header.topics)}
    temporary = path.with_name(f".{path.name}.partial")
    count = 0
    with temporary.open("wb") as out:
        out.write(MAGIC)
        out.write(header.to_json())
        for record in records:
            out.write(
                RECORD.pack(index[record.topic], record.partition, record.offset, len(record.value))
            )
            out.write(record.value)
            count += 1
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)
    return count


def _header(line: bytes) -> HistoryHeader:
    try:
        document = json.loads(line)
        extents = [Extent(**extent) for extent in document["extents"]]
        return HistoryHeader(document["exported_at"], document["source"], extents)
    except (ValueError, KeyError, TypeError) as error:
        raise HistoryFileError(f"the history header is unreadable: {error}") from None


def read_history(path: Path) -> tuple[HistoryHeader, Iterator[HistoryRecord]]:
    """The header, and the records in file order. A truncated or garbled record raises
    HistoryFileError naming its byte position (after the records before it were yielded)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise HistoryFileError(f"{path} is not a v2v history file (bad magic)")
    header_end = data.find(b"\n", len(MAGIC))
    if header_end < 0:
        raise HistoryFileError(f"{path}: the header line is missing")
    header = _header(data[len(MAGIC) : header_end])
    return header, _records(data, header_end + 1, header.topics)


def _records(data: bytes, position: int, topics: list[str]) -> Iterator[HistoryRecord]:
    size = len(data)
    while position < size:
        if position + RECORD.size > size:
            raise HistoryFileError(f"truncated record header at byte {position}")
        topic_index, partition, offset, length = RECORD.unpack_from(data, position)
        start = position + RECORD.size
        if topic_index >= len(topics) or start + length > size:
            raise HistoryFileError(f"garbled record at byte {position}")
        yield HistoryRecord(topics[topic_index], partition, offset, data[start : start + length])
        position = start + length
