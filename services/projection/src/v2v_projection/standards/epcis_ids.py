"""The URIs v2v's EPCIS documents name things by (docs/standards.md, "Identifiers").

A unit is `urn:v2v:isbt128:din:<DIN>:<flags>`: the ISBT 128 DIN's 13 characters (FIN, year,
sequence), then its 2 flag characters. Together they are v2v's unit identity and exactly the
data content of the unit's DIN bar code (data structure 001 after its `=`), so one scan
resolves it; the FHIR identifier of the same unit is system `urn:v2v:isbt128:din`, value the
15 characters. The check character is printed, never encoded, and is not part of it.

Parties and locations reuse the names v2v already gives them: a site is
`urn:v2v:site:<SITE_ID>` (its certificate's SAN URI), a department of a site
`urn:v2v:site:<SITE_ID>/<department>`, a courier `urn:v2v:courier:<COURIER_ID>`. A batch (a
transformation) is `urn:v2v:batch:<BATCH_ID>`, a collection (the apheresis the units were
labelled from) `urn:v2v:collection:<COLLECTION_ID>`, a shipment
`urn:v2v:shipment:<SHIPMENT_ID>`, a data logger `urn:v2v:logger:<DEVICE_ID>`. Every
identifier is percent-encoded (RFC 3986) beyond letters, digits and `-._~`."""

from __future__ import annotations

from urllib.parse import quote, unquote

from v2v_platform.ids.din import DIN_DATA_LENGTH, DIN_LENGTH

DIN_PREFIX = "urn:v2v:isbt128:din:"
SITE_PREFIX = "urn:v2v:site:"


def _part(text: str) -> str:
    return quote(text, safe="-._~")


def din_uri(din: str) -> str:
    """`urn:v2v:isbt128:din:G123498654321:00` for the DIN `G123498654321` with flags `00`."""
    value = din.strip()
    if len(value) != DIN_LENGTH:
        raise ValueError(f"{din!r} is not a 15-character DIN with its flags")
    return f"{DIN_PREFIX}{_part(value[:DIN_DATA_LENGTH])}:{_part(value[DIN_DATA_LENGTH:])}"


def din_of_uri(uri: str) -> str:
    """The 15-character DIN (with flags) a unit URI names (how a partner resolves one)."""
    if not uri.startswith(DIN_PREFIX):
        raise ValueError(f"{uri!r} is no v2v ISBT 128 unit URI")
    data, _, flags = unquote(uri[len(DIN_PREFIX) :]).partition(":")
    return data + flags


def site_uri(site_id: str, department: str = "") -> str:
    suffix = f"/{_part(department)}" if department else ""
    return f"{SITE_PREFIX}{_part(site_id)}{suffix}"


def party_uri(party: str) -> str:
    """`site:<ID>`, `site:<ID>/<department>` or `courier:<ID>` (v2v custody parties)."""
    kind, _, name = party.partition(":")
    if kind == "site":
        site_id, _, department = name.partition("/")
        return site_uri(site_id, department)
    return f"urn:v2v:{_part(kind)}:{_part(name)}"


def location_of_party(party: str) -> str | None:
    """A party's location when it has one (a site or a department, not a courier)."""
    return party_uri(party) if party.startswith("site:") else None


def batch_uri(batch_id: str) -> str:
    return f"urn:v2v:batch:{_part(batch_id)}"


def collection_uri(collection_id: str) -> str:
    return f"urn:v2v:collection:{_part(collection_id)}"


def shipment_uri(shipment_id: str) -> str:
    return f"urn:v2v:shipment:{_part(shipment_id)}"


def logger_uri(device_id: str) -> str:
    return f"urn:v2v:logger:{_part(device_id)}"
