"""Intake settings from V2V_* environment variables.

Intake applies no protocol rule of `ProtocolRules`: packaging records when a unit's stability
window starts (collection end, or freeze time), and the services downstream apply the
window's length; temperatures at packaging are checked against the conditions' definitions.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from v2v_platform.config import PublishingServiceSettings
from v2v_platform.ids.coi import CoiIssuer


class IntakeSettings(PublishingServiceSettings):
    fin: str
    manufacturing_target: str
    manufacturing_timeout_s: float = 5.0
    manufacturing_retry_s: float = Field(default=30.0, ge=0)
    """How long a slot booking retries manufacturing's NOT_FOUND (it has not learnt the COI's
    enrolment from Kafka yet), with exponential backoff, before failing naming the COI."""
    grpc_address: str = "127.0.0.1:50061"
    http_port: int = 8061

    @field_validator("fin")
    @classmethod
    def _fin(cls, value: str) -> str:
        CoiIssuer(value, 0)
        return value
