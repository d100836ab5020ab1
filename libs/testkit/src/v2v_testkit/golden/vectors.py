"""Golden vectors: fixed inputs that producer and consumer tests both use; the helpers.

Each context's module (`v2v_testkit.golden.<context>`) keeps only its example events and
builds its payload vectors with `payloads_by_name`; `python -m v2v_testkit.golden --write`
(`make golden`) rewrites them all with `write_vectors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


def to_json(message: Message) -> str:
    """A vector's JSON file: sorted keys, two-space indent, a final newline."""
    return json_format.MessageToJson(message, sort_keys=True, indent=2) + "\n"


def to_bytes(message: Message) -> bytes:
    """A vector's binary file: the deterministic protobuf encoding."""
    return message.SerializeToString(deterministic=True)


def payloads_by_name(
    events: Iterable[object],
    mappers: Mapping[type, Callable[[Any], Message]],
    *,
    first_of_each: bool = False,
) -> dict[str, Message]:
    """Message name -> payload the production `mappers` build from the golden events: of the
    events mapped to one message type, the last one (the first with `first_of_each`)."""
    payloads: dict[str, Message] = {}
    for event in events:
        payload = mappers[type(event)](event)
        name = payload.DESCRIPTOR.name
        if not first_of_each or name not in payloads:
            payloads[name] = payload
    return payloads


def vector_files(directory: Path, name: str) -> tuple[Path, Path]:
    """The binary and JSON files of message `name`'s vector."""
    return directory / f"{name}.bin", directory / f"{name}.json"


def write_vectors(directory: Path, payloads: Mapping[str, Message]) -> list[Path]:
    """Rewrite the vectors; a vector of a message no longer published is removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in sorted(directory.glob("*.bin")) + sorted(directory.glob("*.json")):
        if stale.stem not in payloads:
            stale.unlink()
    written = []
    for name, payload in payloads.items():
        binary, text = vector_files(directory, name)
        binary.write_bytes(to_bytes(payload))
        text.write_text(to_json(payload))
        written.append(binary)
    return written
