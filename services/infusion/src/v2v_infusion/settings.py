"""The infusion service's settings (environment variables V2V_*)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from v2v_infusion.domain.values import Windows
from v2v_platform.config import PublishingServiceSettings, WindowHours, between


class InfusionSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:50065"
    http_port: int = 8065
    post_thaw_window_minutes: Annotated[int, between(1, 180, "minutes")] = 30
    fresh_product_window_hours: WindowHours = 72

    @property
    def windows(self) -> Windows:
        return Windows(
            timedelta(minutes=self.post_thaw_window_minutes),
            timedelta(hours=self.fresh_product_window_hours),
        )

    @property
    def facts_sqlite_path(self) -> Path | None:
        """The projection's SQLite file, next to the event store."""
        return self.side_sqlite_path("facts")
