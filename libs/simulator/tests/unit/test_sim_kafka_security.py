"""The simulator's admin clients authenticate to an external broker as the environment says
(V2V_KAFKA_*), like the services it starts (they inherit the same environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from v2v_simulator import consumers


def test_the_admin_client_authenticates_as_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = {
        "V2V_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "V2V_KAFKA_SSL_CAFILE": str(ca),
        "V2V_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "V2V_KAFKA_SASL_USERNAME": "admin",
        "V2V_KAFKA_SASL_PASSWORD": "admin-password",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    built: list[dict[str, Any]] = []

    class Admin:
        def __init__(self, **options: Any) -> None:
            built.append(options)

        def list_groups(self) -> list[dict[str, Any]]:
            return []

        def close(self) -> None:
            pass

    monkeypatch.setattr(consumers, "KafkaAdminClient", Admin)
    assert consumers.unassigned("kafka:9092", ["v2v-release-GMP-1-"])
    assert built[0]["security_protocol"] == "SASL_SSL"
    assert built[0]["ssl_cafile"] == str(ca)
    assert built[0]["sasl_plain_username"] == "admin"
