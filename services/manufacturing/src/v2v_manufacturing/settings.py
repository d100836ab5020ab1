"""The manufacturing service's settings (environment variables V2V_*)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import field_validator

from v2v_platform.config import PublishingServiceSettings, WindowHours
from v2v_platform.ids import issue_din


class ManufacturingSettings(PublishingServiceSettings):
    fin: str
    grpc_address: str = "127.0.0.1:50062"
    http_port: int = 8062
    fresh_window_hours: WindowHours = 48

    @field_validator("fin")
    @classmethod
    def _fin(cls, value: str) -> str:
        issue_din(value, 25, 1)  # raises a ValueError naming the problem
        return value

    @property
    def fresh_window(self) -> timedelta:
        return timedelta(hours=self.fresh_window_hours)

    @property
    def facts_sqlite_path(self) -> Path | None:
        return self.side_sqlite_path("intake-facts")
