"""Payload vectors of a service's events: built by its mappers, written byte for byte."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import ListValue, Struct

from v2v_testkit.golden import __main__ as golden_main
from v2v_testkit.golden import envelope
from v2v_testkit.golden import vectors as golden


@dataclass
class Opened:
    number: int


@dataclass
class Listed:
    items: tuple[str, ...]


def opened(event: Opened) -> Message:
    payload = Struct()
    payload.update({"number": event.number, "b": "x", "a": "y"})
    return payload


def listed(event: Listed) -> Message:
    payload = ListValue()
    payload.extend(event.items)
    return payload


MAPPERS: dict[type, Callable[[Any], Message]] = {Opened: opened, Listed: listed}
EVENTS = [Opened(1), Listed(("a",)), Opened(2)]


def test_the_last_event_of_each_message_type_by_default() -> None:
    payloads = golden.payloads_by_name(EVENTS, MAPPERS)
    assert list(payloads) == ["Struct", "ListValue"]
    assert payloads["Struct"] == opened(Opened(2))


def test_or_the_first() -> None:
    payloads = golden.payloads_by_name(EVENTS, MAPPERS, first_of_each=True)
    assert payloads["Struct"] == opened(Opened(1))


def test_write_vectors_writes_deterministic_bytes_and_sorted_json(tmp_path: Path) -> None:
    (tmp_path / "Retired.bin").write_bytes(b"old")
    (tmp_path / "Retired.json").write_text("{}")
    payloads = golden.payloads_by_name(EVENTS, MAPPERS)
    written = golden.write_vectors(tmp_path, payloads)
    assert written == [tmp_path / "Struct.bin", tmp_path / "ListValue.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ListValue.bin",
        "ListValue.json",
        "Struct.bin",
        "Struct.json",
    ]
    binary, text = golden.vector_files(tmp_path, "Struct")
    assert binary.read_bytes() == payloads["Struct"].SerializeToString(deterministic=True)
    assert text.read_text() == '{\n  "a": "y",\n  "b": "x",\n  "number": 2.0\n}\n'
    assert golden.to_bytes(payloads["Struct"]) == binary.read_bytes()


def test_golden_main_refuses_without_write(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "argv", ["golden"])
    monkeypatch.setattr(envelope, "GOLDEN_DIR", tmp_path)
    with pytest.raises(SystemExit) as raised:
        golden_main.main()
    assert raised.value.code == 2
    assert "pass --write" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_golden_main_writes_on_purpose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "argv", ["golden", "--write", "--context", "envelope"])
    monkeypatch.setattr(envelope, "GOLDEN_DIR", tmp_path)
    golden_main.main()
    assert capsys.readouterr().out.splitlines() == [
        f"envelope: wrote {tmp_path / 'envelope-v1.bin'} (+ .json)",
        f"envelope: wrote {tmp_path / 'envelope-v2.bin'} (+ .json)",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "envelope-v1.bin",
        "envelope-v1.json",
        "envelope-v2.bin",
        "envelope-v2.json",
        "signing-keys.json",
    ]


def test_every_context_has_a_writer() -> None:
    assert list(golden_main.writers()) == [
        "envelope",
        "intake",
        "manufacturing",
        "logistics",
        "release",
        "infusion",
    ]
