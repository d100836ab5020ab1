"""CBV 2.0 event hashes: the reference implementation's published vectors (copied with their
MIT licence into epcis_hash_vectors/) give their published hashes through v2v's hashing, which
reads only the EPCIS contexts the package ships (never the network) and is fast."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from pyld import jsonld  # type: ignore[import-untyped]

from v2v_projection.standards.epcis import event_id
from v2v_projection.standards.epcis_hash import EPCIS_CONTEXT, event_hashes, offline_loader

VECTORS = Path(__file__).parent / "epcis_hash_vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.jsonld"))
PER_EVENT_BOUND_S = 1.0


def expected(name: str) -> list[str]:
    text = (VECTORS / f"{name}.hashes").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_there_are_vectors_with_their_licence() -> None:
    assert len(NAMES) >= 5
    assert "MIT License" in (VECTORS / "LICENSE").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_the_published_vectors_hash_to_their_published_hashes(name: str) -> None:
    document = json.loads((VECTORS / f"{name}.jsonld").read_text())
    unchanged = json.loads(json.dumps(document))

    assert event_hashes(document) == expected(name)
    assert document == unchanged


def test_only_the_shipped_epcis_contexts_are_loaded_never_the_network() -> None:
    assert jsonld.get_document_loader() is offline_loader
    assert offline_loader(EPCIS_CONTEXT)["document"]["@context"]
    with pytest.raises(jsonld.JsonLdError):
        offline_loader("https://example.org/some-other-context.jsonld")
    document = json.loads((VECTORS / "epcisDocWithSingleEvent.jsonld").read_text())
    document["@context"] = [*document["@context"], "https://example.org/other.jsonld"]
    with pytest.raises(jsonld.JsonLdError):
        event_hashes(document)


def test_hashing_takes_far_less_than_a_second_per_event() -> None:
    document = json.loads((VECTORS / "epcisDocWithVariousEventTypes.jsonld").read_text())
    events = document["epcisBody"]["eventList"]
    started = time.perf_counter()

    hashes = [event_id(event) for event in events]

    elapsed = time.perf_counter() - started
    assert elapsed < PER_EVENT_BOUND_S * len(events) / 10, f"{elapsed:.2f} s"
    assert len(set(hashes)) == len(events)


def test_an_event_id_ignores_the_event_id_record_time_and_error_declaration() -> None:
    document = json.loads((VECTORS / "epcisDocWithSingleEvent.jsonld").read_text())
    (event,) = document["epcisBody"]["eventList"]
    declared = {
        **event,
        "eventID": "ni:///sha-256;0?ver=CBV2.0",
        "recordTime": "2030-01-01T00:00:00Z",
        "errorDeclaration": {"declarationTime": "2030-01-01T00:00:00Z"},
    }

    assert event_id(declared) == event_id(event) == expected("epcisDocWithSingleEvent")[0]


def test_the_generator_logs_no_line_per_event_at_info(caplog: pytest.LogCaptureFixture) -> None:
    document = json.loads((VECTORS / "epcisDocWithVariousEventTypes.jsonld").read_text())

    with caplog.at_level(logging.DEBUG):
        event_hashes(document)

    assert [r for r in caplog.records if "epcis_event_hash_generator" in r.pathname] == []
