"""Contracts: contracts/asyncapi.yaml agrees with the platform's topic and header names and with
the envelope proto, and every proto package under proto/ imports as generated Python.

Generated code comes from `uv run python tools/gen_proto.py` (make proto).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev group
from google.protobuf.descriptor import Descriptor, EnumDescriptor

from v2v.checkpoints.v1.checkpoint_pb2 import Checkpoint, StreamHead
from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.checkpoints.envelopes import (
    CHECKPOINT_AGGREGATE_TYPE,
    CHECKPOINT_EVENT_TYPE,
    CHECKPOINT_TOPIC,
)
from v2v_platform.envelope.headers import (
    CONTEXTS,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
    HEADER_TRACEPARENT,
    HEADER_TRACESTATE,
    topic_for,
)
from v2v_platform.relay.topics import V2V_TOPICS

ROOT = Path(__file__).resolve().parents[4]
ASYNCAPI = ROOT / "contracts" / "asyncapi.yaml"
PROTO_ROOT = ROOT / "proto"
PROTO_FILES = sorted(PROTO_ROOT.rglob("*.proto"))

REQUIRED_HEADERS = {HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION, HEADER_EVENT_ID, HEADER_TRACEPARENT}
OPTIONAL_HEADERS = {HEADER_TRACESTATE}
COI_PATTERN = "^CH[A-NP-Z1-9][0-9]{4}[0-9]{2}[A-Z0-9]{6}$"
PARTITIONS = 6
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    with ASYNCAPI.open(encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    assert isinstance(loaded, dict), f"{ASYNCAPI} is not a YAML mapping"
    return loaded


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s ("#/a/b") until a non-reference node."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert isinstance(ref, str) and ref.startswith("#/"), f"only local $refs expected: {ref}"
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and key in node, f"dangling $ref {ref}"
            node = node[key]
    return node


def channel_messages(doc: dict[str, Any], channel: dict[str, Any]) -> list[dict[str, Any]]:
    messages = resolve(doc, channel.get("messages", {}))
    assert messages, "channel declares no message"
    return [resolve(doc, message) for message in messages.values()]


def schema_properties(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    properties = resolve(doc, schema).get("properties", {})
    assert isinstance(properties, dict)
    return {name: resolve(doc, prop) for name, prop in properties.items()}


def proto_module(proto: Path, suffix: str = "_pb2") -> str:
    relative = proto.relative_to(PROTO_ROOT).with_suffix("")
    return ".".join((*relative.parent.parts, relative.name + suffix))


def import_generated(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        pytest.fail(
            f"cannot import generated module {module_name} ({error}); "
            "run `uv run python tools/gen_proto.py` (make proto)"
        )


# --- AsyncAPI document ---------------------------------------------------------------------


def test_asyncapi_is_version_3(doc: dict[str, Any]) -> None:
    assert str(doc.get("asyncapi", "")).startswith("3."), doc.get("asyncapi")
    assert doc["info"]["title"] and doc["info"]["version"]


def test_contexts_and_topic_names_agree() -> None:
    assert CONTEXTS == ("intake", "manufacturing", "logistics", "release", "infusion")
    for context in CONTEXTS:
        assert topic_for(context) == f"v2v.{context}.events.v1"


def test_every_context_has_exactly_its_channel(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    expected = {topic_for(context) for context in CONTEXTS} | {CHECKPOINT_TOPIC}  # issue 15
    assert set(channels) == expected
    for name, channel in channels.items():
        assert resolve(doc, channel)["address"] == name


@pytest.mark.parametrize("context", CONTEXTS)
def test_channel_messages_are_protobuf_envelopes(doc: dict[str, Any], context: str) -> None:
    channel = resolve(doc, doc["channels"][topic_for(context)])
    for message in channel_messages(doc, channel):
        content_type = message.get("contentType", doc.get("defaultContentType"))
        assert content_type == PROTOBUF_CONTENT_TYPE
        payload = resolve(doc, message["payload"])
        assert payload.get("x-protobuf-message") == "v2v.events.v1.Envelope"


@pytest.mark.parametrize("context", CONTEXTS)
def test_headers_match_platform_constants(doc: dict[str, Any], context: str) -> None:
    channel = resolve(doc, doc["channels"][topic_for(context)])
    for message in channel_messages(doc, channel):
        headers = resolve(doc, message["headers"])
        assert set(headers["required"]) == REQUIRED_HEADERS
        assert set(headers["properties"]) == REQUIRED_HEADERS | OPTIONAL_HEADERS


def test_header_schemas_accept_and_reject(doc: dict[str, Any]) -> None:
    message = channel_messages(doc, resolve(doc, doc["channels"][topic_for("intake")]))[0]
    properties = schema_properties(doc, message["headers"])
    event_type = re.compile(properties[HEADER_EVENT_TYPE]["pattern"])
    assert event_type.match("v2v.intake.events.v1.CoiIssued")
    assert not event_type.match("v2v.events.v1.Envelope")
    schema_version = re.compile(properties[HEADER_SCHEMA_VERSION]["pattern"])
    assert schema_version.match("1") and schema_version.match("12")
    assert not schema_version.match("0") and not schema_version.match("v1")
    assert properties[HEADER_EVENT_ID]["format"] == "uuid"
    traceparent = re.compile(properties[HEADER_TRACEPARENT]["pattern"])
    assert traceparent.match("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert not traceparent.match("00-4bf92f3577b34da6a3ce929d0e0e4736-01")


@pytest.mark.parametrize("context", CONTEXTS)
def test_kafka_key_is_the_coi(doc: dict[str, Any], context: str) -> None:
    channel = resolve(doc, doc["channels"][topic_for(context)])
    for message in channel_messages(doc, channel):
        binding = resolve(doc, message["bindings"])["kafka"]
        key = resolve(doc, binding["key"])
        assert key["type"] == "string"
        assert key["pattern"] == COI_PATTERN


def test_coi_pattern_follows_isbt128_ds040() -> None:
    coi = re.compile(COI_PATTERN)
    assert coi.match("CHA123425000017")  # DESIGN.md example
    assert coi.match("CH1000025ZZZZZZ")
    for bad in ("CHO123425000017", "CH0123425000017", "CHA12342500001", "CHA123425000017X"):
        assert not coi.match(bad), bad


def test_topics_are_co_partitioned(doc: dict[str, Any]) -> None:
    partitions = {
        name: resolve(doc, resolve(doc, channel)["bindings"])["kafka"]["partitions"]
        for name, channel in doc["channels"].items()
    }
    assert set(partitions.values()) == {PARTITIONS}, partitions


def test_each_topic_is_sent_by_its_relay_and_received_by_the_projection(
    doc: dict[str, Any],
) -> None:
    actions: dict[str, list[str]] = {topic: [] for topic in V2V_TOPICS}
    for operation in doc["operations"].values():
        channel_ref = operation["channel"]["$ref"]
        channel_name = channel_ref.removeprefix("#/channels/")
        assert channel_name in actions, channel_ref
        actions[channel_name].append(operation["action"])
        channel_messages_ = resolve(doc, doc["channels"][channel_name])["messages"]
        for message_ref in operation.get("messages", []):
            prefix = f"{channel_ref}/messages/"
            assert message_ref["$ref"].startswith(prefix), "operation message not on its channel"
            assert message_ref["$ref"].removeprefix(prefix) in channel_messages_
    for channel_name, seen in actions.items():
        assert sorted(seen) == ["receive", "send"], (channel_name, seen)


def test_the_checkpoints_channel_carries_signed_checkpoints_keyed_by_site(
    doc: dict[str, Any],
) -> None:
    [message] = channel_messages(doc, resolve(doc, doc["channels"][CHECKPOINT_TOPIC]))
    assert message.get("contentType", doc.get("defaultContentType")) == PROTOBUF_CONTENT_TYPE
    payload = resolve(doc, message["payload"])
    assert payload["x-protobuf-message"] == "v2v.events.v1.Envelope"
    envelope_fields = {f.name: f.number for f in Envelope.DESCRIPTOR.fields}
    for name, prop in payload["properties"].items():
        assert envelope_fields[name] == prop["x-protobuf-field"], name
    assert payload["properties"]["event_type"]["const"] == CHECKPOINT_EVENT_TYPE
    assert payload["properties"]["aggregate_type"]["const"] == CHECKPOINT_AGGREGATE_TYPE
    headers = resolve(doc, message["headers"])
    assert set(headers["required"]) == {HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION, HEADER_EVENT_ID}
    assert headers["properties"][HEADER_EVENT_TYPE]["const"] == CHECKPOINT_EVENT_TYPE
    key = resolve(doc, resolve(doc, message["bindings"])["kafka"]["key"])
    assert re.match(key["pattern"], "HOSP-A") and not re.match(key["pattern"], "hosp a")
    _mirror_matches(doc, "Checkpoint", Checkpoint.DESCRIPTOR)
    _mirror_matches(doc, "StreamHead", StreamHead.DESCRIPTOR)


def test_servers(doc: dict[str, Any]) -> None:
    servers = doc["servers"]
    assert servers["local"]["host"] == "127.0.0.1:9092"
    assert servers["local"]["protocol"] == "kafka"
    assert servers["production"]["protocol"] in {"kafka", "kafka-secure"}


# --- the JSON mirror of the envelope follows the proto ---------------------------------------


def _mirror_matches(doc: dict[str, Any], schema_name: str, descriptor: Descriptor) -> None:
    schema = resolve(doc, doc["components"]["schemas"][schema_name])
    assert schema["x-protobuf-message"] == descriptor.full_name
    mirrored = {name: prop["x-protobuf-field"] for name, prop in schema["properties"].items()}
    in_proto = {field.name: field.number for field in descriptor.fields}
    assert mirrored == in_proto
    assert set(schema.get("required", [])) <= set(in_proto)


def _enum_mirror_matches(doc: dict[str, Any], schema_name: str, enum: EnumDescriptor) -> None:
    schema = resolve(doc, doc["components"]["schemas"][schema_name])
    assert schema["x-protobuf-enum"] == enum.full_name
    assert schema["enum"] == [value.name for value in enum.values]


def test_envelope_mirror_matches_proto(doc: dict[str, Any]) -> None:
    envelope_pb2 = import_generated("v2v.events.v1.envelope_pb2")
    _mirror_matches(doc, "Envelope", envelope_pb2.Envelope.DESCRIPTOR)
    _mirror_matches(doc, "Actor", envelope_pb2.Actor.DESCRIPTOR)
    _enum_mirror_matches(doc, "SignatureMeaning", envelope_pb2.SignatureMeaning.DESCRIPTOR)


# --- proto packages import as generated Python ---------------------------------------------


def _proto_ids() -> Iterator[str]:
    for proto in PROTO_FILES:
        yield proto.relative_to(PROTO_ROOT).as_posix()


def test_proto_tree_is_not_empty() -> None:
    assert PROTO_FILES, f"no .proto files under {PROTO_ROOT}"


@pytest.mark.parametrize("proto", PROTO_FILES, ids=list(_proto_ids()))
def test_proto_package_imports_as_generated_python(proto: Path) -> None:
    module = import_generated(proto_module(proto))
    import_generated(proto_module(proto, "_pb2_grpc"))
    # Directories mirror packages (buf lint PACKAGE_DIRECTORY_MATCH; Python imports rely on it).
    expected_package = ".".join(proto.relative_to(PROTO_ROOT).parent.parts)
    assert module.DESCRIPTOR.package == expected_package
    assert module.DESCRIPTOR.name == proto.relative_to(PROTO_ROOT).as_posix()


@pytest.mark.parametrize("context", CONTEXTS)
def test_each_context_has_an_events_package_and_a_service(context: str) -> None:
    events = import_generated(f"v2v.{context}.events.v1.events_pb2")
    assert events.DESCRIPTOR.package == f"v2v.{context}.events.v1"
    service = import_generated(f"v2v.{context}.v1.{context}_service_pb2")
    assert f"{context.capitalize()}Service" in service.DESCRIPTOR.services_by_name


def test_projection_has_the_chain_query_service() -> None:
    service = import_generated("v2v.projection.v1.projection_service_pb2")
    assert "ChainQueryService" in service.DESCRIPTOR.services_by_name
