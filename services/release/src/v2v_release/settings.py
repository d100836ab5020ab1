"""The release service's settings (environment variables V2V_*).

V2V_RELEASE_SPECS_FILE names a JSON file of extra specification versions (format in
`v2v_release.adapters.spec_file`); it is checked at start-up, so a bad file stops the
service.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from v2v_platform.config import PublishingServiceSettings
from v2v_release.adapters.spec_file import load_catalog
from v2v_release.domain.specification import SpecificationCatalog


class ReleaseSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:50064"
    http_port: int = 8064
    release_specs_file: Path | None = None

    @field_validator("release_specs_file")
    @classmethod
    def _specs(cls, value: Path | None) -> Path | None:
        load_catalog(value)  # raises a ValueError naming the problem
        return value

    def specifications(self) -> SpecificationCatalog:
        return load_catalog(self.release_specs_file)
