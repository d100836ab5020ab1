"""The infusion service's settings (environment variables V2V_*).

The windows it applies come from `ProtocolRulesSettings` (V2V_POST_THAW_WINDOW_MINUTES,
V2V_FRESH_PRODUCT_WINDOW_HOURS, ...): `protocol_rules()`.
"""

from __future__ import annotations

from v2v_platform.config import PublishingServiceSettings
from v2v_platform.protocol_rules import ProtocolRulesSettings


class InfusionSettings(PublishingServiceSettings, ProtocolRulesSettings):
    grpc_address: str = "127.0.0.1:50065"
    http_port: int = 8065
