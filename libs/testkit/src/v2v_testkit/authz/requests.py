"""What a request builder gives: where the call goes, who is related to it, and the request.

A builder is a function of the `Seed` (the seeded journey's identifiers), so every request
names records that exist. `service_site` is the site whose instance of the service is
called (HOSP-A's intake, GMP-1's release...); `related` is the caller the seeded records
relate to the call (a site id; a courier id on courier routes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from v2v_testkit.authz.seed import Person, Seed


@dataclass(frozen=True)
class Request:
    service_site: str
    related: str
    body: dict[str, Any] | None = None
    """gRPC: the request message in proto JSON (field names as in the .proto); HTTP: the
    JSON body (None: no body)."""
    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)


Builder = Callable[[Seed], Request]


def operator(person: Person) -> dict[str, str]:
    return {"user_id": person.user_id, "printed_name": person.printed_name}


def signature(person: Person, meaning: str) -> dict[str, str]:
    return {"user_id": person.user_id, "password": person.password, "meaning": meaning}


def moment(minutes_ago: float = 0.0) -> str:
    """An RFC 3339 time `minutes_ago` before now (clinical times may not lie ahead)."""
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4()}"


def patient_details(seed: Seed) -> dict[str, str]:
    return {
        "given_name": "Ada",
        "family_name": "Matrix",
        "mrn": unique(f"MRN-{seed.hospital}")[:40],
        "birth_date": "1970-01-15",
    }
