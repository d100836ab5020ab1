"""The projection's settings: Kafka security is checked at start, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_platform import kafka_security
from v2v_platform.config import ConfigurationError, load_settings
from v2v_projection.settings import ProjectionSettings


def test_tls_without_a_ca_file_stops_the_projection_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(
            ProjectionSettings, site_id="AUDIT-1", pki_dir=tmp_path, kafka_security_protocol="SSL"
        )
    assert any("V2V_KAFKA_SSL_CAFILE" in problem for problem in raised.value.problems)


def test_the_projection_consumer_gets_the_sasl_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(
        ProjectionSettings,
        site_id="AUDIT-1",
        pki_dir=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=ca,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="projection",
        kafka_sasl_password="secret",
    )
    options = kafka_security.client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_username"] == "projection"
    assert options["ssl_cafile"] == str(ca)
