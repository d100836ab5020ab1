"""The logistics service's settings (environment variables V2V_*)."""

from __future__ import annotations

from datetime import timedelta

from v2v_logistics.domain.values import StabilityRules
from v2v_platform.config import PublishingServiceSettings, WindowHours


class LogisticsSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:50063"
    http_port: int = 8063
    fresh_apheresis_window_hours: WindowHours = 48
    fresh_product_window_hours: WindowHours = 72

    @property
    def rules(self) -> StabilityRules:
        return StabilityRules(
            timedelta(hours=self.fresh_apheresis_window_hours),
            timedelta(hours=self.fresh_product_window_hours),
        )
