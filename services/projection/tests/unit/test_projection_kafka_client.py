"""The projection's librdkafka clients (ADR 0012): options in librdkafka's names, and
librdkafka's errors raised as the kafka-python errors the consume loop and the catch-up
measurement wait out (`service_runtime.TRANSIENT`)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException

from v2v_platform.service_runtime import TRANSIENT
from v2v_projection.catch_up import KafkaEndOffsets
from v2v_projection.kafka_client import (
    BrokerErrors,
    LibrdkafkaError,
    librdkafka_config,
    translated,
)


def test_kafka_python_security_names_become_librdkafka_names() -> None:
    kafka_python = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": "/pki/ca.crt",
        "ssl_check_hostname": False,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "projection",
        "sasl_plain_password": "pw",
    }
    assert librdkafka_config(kafka_python) == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/pki/ca.crt",
        "ssl.endpoint.identification.algorithm": "none",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "projection",
        "sasl.password": "pw",
    }
    assert librdkafka_config({"security.protocol": "SSL"}) == {"security.protocol": "SSL"}
    with pytest.raises(ValueError, match="max_poll_records"):
        librdkafka_config({"max_poll_records": 10})


def test_a_librdkafka_error_is_a_transient_error_of_the_runtime() -> None:
    with pytest.raises(TRANSIENT) as raised, translated():
        raise KafkaException(RdKafkaError(RdKafkaError._TRANSPORT, "broker went away"))
    assert isinstance(raised.value, LibrdkafkaError)
    assert "broker went away" in str(raised.value)


def test_a_lost_cluster_is_raised_once_and_a_passing_disconnect_never() -> None:
    errors = BrokerErrors()
    errors.record(RdKafkaError(RdKafkaError._TRANSPORT, "idle connection closed"))
    errors.raise_pending()  # librdkafka reconnects by itself: nothing to raise
    errors.record(RdKafkaError(RdKafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    with pytest.raises(LibrdkafkaError, match="brokers are down"):
        errors.raise_pending()
    errors.raise_pending()  # raised once


def test_end_offsets_from_an_unreachable_broker_fail_as_a_transient_error() -> None:
    offsets = KafkaEndOffsets("127.0.0.1:1", ["v2v.intake.events.v1"])
    with pytest.raises(TRANSIENT):
        offsets.measure()
    offsets.close()
