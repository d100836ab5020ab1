"""Kafka client security: the one place that turns the V2V_KAFKA_* settings into kafka-python
client options (TLS, mTLS, SASL PLAIN / SCRAM), and into librdkafka's (`librdkafka_options`,
for the confluent-kafka clients: the projection's consumer and catch-up, the audit's Kafka
source, the relay's librdkafka producer; ADR 0012).

Every Kafka client of a process is built with `client_options(settings)` (kafka-python: the
relay's topic admin and kafka-python producer, every `EnvelopeConsumer`) or
`librdkafka_options(settings)` (confluent-kafka) merged into its configuration. The settings
are validated when the process starts (`v2v_platform.config.KafkaSecuritySettings`): a missing
CA file for SSL, or a SASL protocol without credentials, stops it with a message naming the
variable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from v2v_platform.config import (
    SASL_PROTOCOLS,
    TLS_PROTOCOLS,
    ConfigurationError,
    KafkaSecuritySettings,
    load_settings,
)

SECURITY_FIELDS: tuple[str, ...] = tuple(KafkaSecuritySettings.model_fields)
"""The settings fields of `KafkaSecuritySettings` (each read from V2V_<FIELD>)."""


class KafkaSecurityConfig(Protocol):
    """What `client_options` reads: any settings object deriving `KafkaSecuritySettings`."""

    @property
    def kafka_security_protocol(self) -> str: ...
    @property
    def kafka_ssl_cafile(self) -> Path | None: ...
    @property
    def kafka_ssl_certfile(self) -> Path | None: ...
    @property
    def kafka_ssl_keyfile(self) -> Path | None: ...
    @property
    def kafka_ssl_check_hostname(self) -> bool: ...
    @property
    def kafka_sasl_mechanism(self) -> str | None: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> SecretStr | None: ...
    @property
    def kafka_sasl_password_file(self) -> Path | None: ...

    def kafka_sasl_secret(self) -> str | None: ...


def client_options(settings: KafkaSecurityConfig) -> dict[str, object]:
    """kafka-python options (KafkaProducer, KafkaConsumer, KafkaAdminClient) for `settings`:
    `security_protocol`, and for TLS `ssl_cafile`, `ssl_check_hostname` (+ `ssl_certfile`,
    `ssl_keyfile` for mTLS), for SASL `sasl_mechanism`, `sasl_plain_username`,
    `sasl_plain_password`."""
    protocol = settings.kafka_security_protocol
    options: dict[str, object] = {"security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options["ssl_cafile"] = str(settings.kafka_ssl_cafile)
        options["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
        if settings.kafka_ssl_certfile is not None:
            options["ssl_certfile"] = str(settings.kafka_ssl_certfile)
            options["ssl_keyfile"] = str(settings.kafka_ssl_keyfile)
    if protocol in SASL_PROTOCOLS:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_secret()
    return options


def librdkafka_options(settings: KafkaSecurityConfig) -> dict[str, str]:
    """The same security as `client_options`, in librdkafka's names (confluent-kafka's
    Consumer, Producer, AdminClient): `security.protocol`, for TLS `ssl.ca.location` and
    `ssl.endpoint.identification.algorithm` (`https`, or `none` when the host name is not
    checked) (+ `ssl.certificate.location`, `ssl.key.location` for mTLS), for SASL
    `sasl.mechanisms`, `sasl.username`, `sasl.password`."""
    protocol = settings.kafka_security_protocol
    options = {"security.protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
        check = settings.kafka_ssl_check_hostname
        options["ssl.endpoint.identification.algorithm"] = "https" if check else "none"
        if settings.kafka_ssl_certfile is not None:
            options["ssl.certificate.location"] = str(settings.kafka_ssl_certfile)
            options["ssl.key.location"] = str(settings.kafka_ssl_keyfile)
    if protocol in SASL_PROTOCOLS:
        options["sasl.mechanisms"] = str(settings.kafka_sasl_mechanism)
        options["sasl.username"] = str(settings.kafka_sasl_username)
        options["sasl.password"] = str(settings.kafka_sasl_secret())
    return options


def security_fields(settings: KafkaSecurityConfig) -> dict[str, Any]:
    """The security settings of `settings` as keyword arguments for another settings class
    deriving `KafkaSecuritySettings` (a service's settings -> its relay's)."""
    return {name: getattr(settings, name) for name in SECURITY_FIELDS}


def environment_options() -> dict[str, object]:
    """`client_options` of the V2V_KAFKA_* variables of the environment, for a command that
    has no settings class of its own (the audit export, the simulator's admin clients).
    ConfigurationError (exit status 2) naming each bad variable, its message on stderr."""
    try:
        return client_options(load_settings(KafkaSecuritySettings))
    except ConfigurationError as error:
        print(str(error), file=sys.stderr)
        raise
