"""The logistics service's settings (environment variables V2V_*), with the protocol rules
it applies (stability windows, temperature ranges: `ProtocolRulesSettings`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from v2v_platform.config import PublishingServiceSettings, between
from v2v_platform.protocol_rules import ProtocolRulesSettings


class LogisticsSettings(PublishingServiceSettings, ProtocolRulesSettings):
    grpc_address: str = "127.0.0.1:50063"
    http_port: int = 8063
    courier_token_hours: Annotated[int, between(1, 72, "hours")] = 12
    """V2V_COURIER_TOKEN_HOURS: how long a courier token is accepted (a shift by default)."""

    @property
    def courier_token_lifetime(self) -> timedelta:
        return timedelta(hours=self.courier_token_hours)
