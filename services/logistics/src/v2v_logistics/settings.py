"""The logistics service's settings (environment variables V2V_*), with the protocol rules
it applies (stability windows, temperature ranges: `ProtocolRulesSettings`)."""

from __future__ import annotations

from v2v_platform.config import PublishingServiceSettings
from v2v_platform.protocol_rules import ProtocolRulesSettings


class LogisticsSettings(PublishingServiceSettings, ProtocolRulesSettings):
    grpc_address: str = "127.0.0.1:50063"
    http_port: int = 8063
