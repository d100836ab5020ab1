"""Manufacturing-specific domain errors."""

from __future__ import annotations

from v2v_platform.errors import Refused


class SlotsExhausted(Refused):
    """Every slot of the requested manufacturing day is booked."""

    slug = "slots-exhausted"
    title = "No free manufacturing slot"
    grpc_code = "RESOURCE_EXHAUSTED"
