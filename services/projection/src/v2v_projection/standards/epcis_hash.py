"""CBV 2.0 event hashes (`ni:///sha-256;<hex>?ver=CBV2.0`) with the reference implementation,
epcis-event-hash-generator (PyPI), offline.

The package expands each document with PyLD, whose default loader fetches a context from the
network when the package does not ship it. Here PyLD's loader serves only the two EPCIS 2.0
contexts the package ships and refuses every other remote document: a hash never waits on (or
depends on) the network."""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
from typing import Any

from epcis_event_hash_generator import hash_generator, json_to_py  # type: ignore[import-untyped]
from pyld import jsonld  # type: ignore[import-untyped]

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_SHIPPED_CONTEXTS = {
    # The files epcis_event_hash_generator.file_document_loader maps these URLs to.
    "https://gs1.github.io/EPCIS/epcis-context.jsonld": (
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861.jsonld"
    ),
    EPCIS_CONTEXT: "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld",
}
_loaded: dict[str, Any] = {}


def offline_loader(url: str, options: Any = None) -> dict[str, Any]:
    """PyLD document loader: the shipped EPCIS contexts, nothing from the network."""
    name = _SHIPPED_CONTEXTS.get(url)
    if name is None:
        raise jsonld.JsonLdError(
            f"{url} is not a shipped EPCIS context (no network)",
            "jsonld.LoadDocumentError",
            details={"url": url},
            code="loading document failed",
        )
    document = _loaded.get(url)
    if document is None:
        package = importlib.resources.files("epcis_event_hash_generator")
        document = _loaded[url] = json.loads(package.joinpath(name).read_text("utf-8"))
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": document,
    }


jsonld.set_document_loader(offline_loader)


def _not_the_generators_chatter(record: logging.LogRecord) -> bool:
    """The package logs each event it hashes at INFO through the root logger (services log
    at INFO): kept out, its warnings and errors kept."""
    return record.levelno >= logging.WARNING or "epcis_event_hash_generator" not in record.pathname


logging.getLogger().addFilter(_not_the_generators_chatter)


def event_hashes(document: dict[str, Any]) -> list[str]:
    """The CBV 2.0 SHA-256 event hash of each event of an EPCIS document, in order (the
    document is not changed; `eventID`, `recordTime` and `errorDeclaration` are not hashed)."""
    events = json_to_py.event_list_from_epcis_document_json(copy.deepcopy(document))
    count = len(document["epcisBody"]["eventList"])
    prehashes = hash_generator.derive_prehashes_from_events(events)
    if len(prehashes) != count:  # the package logs and skips an event it cannot read
        raise ValueError(f"{count - len(prehashes)} of {count} events could not be hashed")
    hashes: list[str] = hash_generator.calculate_hashes_from_pre_hashes(prehashes)
    return hashes
