"""The manufacturing service's settings (environment variables V2V_*).

The protocol rules it applies (the fresh apheresis window, V2V_FRESH_APHERESIS_WINDOW_HOURS)
come from `ProtocolRulesSettings`: `protocol_rules()` is what the application gets.
"""

from __future__ import annotations

from pydantic import field_validator

from v2v_platform.config import PublishingServiceSettings
from v2v_platform.ids import issue_din
from v2v_platform.protocol_rules import ProtocolRulesSettings


class ManufacturingSettings(PublishingServiceSettings, ProtocolRulesSettings):
    fin: str
    grpc_address: str = "127.0.0.1:50062"
    http_port: int = 8062

    @field_validator("fin")
    @classmethod
    def _fin(cls, value: str) -> str:
        issue_din(value, 25, 1)  # raises a ValueError naming the problem
        return value
