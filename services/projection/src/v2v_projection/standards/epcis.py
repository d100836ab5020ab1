"""One chain's envelopes -> an EPCIS 2.0 JSON-LD `EPCISDocument` (pure: the same envelopes and
creation date give the same document, byte for byte).

The facts are taken in the derivation order of the projection (occurred time, then event id:
chain/applied_envelope.py), each mapped by `epcis_events.py` to none, one or more EPCIS events
(the table in docs/standards.md). Every event's `eventID` is its CBV 2.0 event hash, computed
alone (in a one-event document), so an event has the same id in every document that holds it.
A QC result that corrects an earlier one (the one v2v fact that corrects an earlier event) is
followed by the corrected event again with its `errorDeclaration` (same eventID, EPCIS 2.0
section 7.4.1.3), naming the correcting event in `correctiveEventIDs`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from v2v_projection.chain.applied_envelope import in_derivation_order
from v2v_projection.chain.times import EPOCH, datetime_ns
from v2v_projection.standards.epcis_events import MAPPERS, ChainEvents, Declared, epcis_time
from v2v_projection.standards.epcis_hash import EPCIS_CONTEXT, event_hashes

EXTENSION_PREFIX = "v2v"
EXTENSION_NAMESPACE = "urn:v2v:epcis:"
CONTEXT: list[Any] = [EPCIS_CONTEXT, {EXTENSION_PREFIX: EXTENSION_NAMESPACE}]
MEDIA_TYPE = "application/ld+json"


def epcis_document(envelopes: list[bytes], created: datetime) -> dict[str, Any]:
    """The EPCIS document of one chain's (or several chains') envelopes."""
    return document_of(epcis_events(envelopes), created)


def document_of(events: list[dict[str, Any]], created: datetime) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": epcis_time(datetime_ns(created)),
        "epcisBody": {"eventList": events},
    }


def epcis_events(envelopes: list[bytes]) -> list[dict[str, Any]]:
    """The EPCIS events of the envelopes, in derivation order, each with its eventID."""
    chain = ChainEvents()
    for fact in in_derivation_order(envelopes):
        found = MAPPERS.get(fact.event_type)
        if found is not None:
            decode, mapper = found
            mapper(chain, fact, decode(fact.payload))
    ids: dict[int, str] = {}
    listed: list[dict[str, Any]] = []
    for entry in chain.entries:
        if isinstance(entry, Declared):
            listed.append(declaration(chain, entry, ids))
        else:
            ids[id(entry)] = event_id(entry)
            listed.append({"type": entry["type"], "eventID": ids[id(entry)], **entry})
    return listed


def event_id(event: dict[str, Any]) -> str:
    """The event's CBV 2.0 hash, computed over a document holding the event alone."""
    (found,) = event_hashes(document_of([event], EPOCH))
    return found


def declaration(chain: ChainEvents, entry: Declared, ids: dict[int, str]) -> dict[str, Any]:
    """The corrected event again, declared erroneous: its content and eventID unchanged
    (errorDeclaration and recordTime are not hashed), recorded when the correction was."""
    original, corrective = entry.original, entry.corrective
    return {
        "type": original["type"],
        "eventID": ids[id(original)],
        **original,
        "recordTime": corrective["recordTime"],
        "errorDeclaration": {
            "declarationTime": corrective["recordTime"],
            "reason": "incorrect_data",
            "correctiveEventIDs": [ids[id(corrective)]],
        },
    }
