"""The health state machine: parts alive and progressing, stalls, stops, the service stopping."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from kafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from v2v_platform.health import (
    DEFAULT_STALL_AFTER_S,
    HealthReport,
    ServiceHealth,
    describe_error,
    stall_bound,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_new_parts_are_alive_and_progressing(clock: Clock) -> None:
    health = ServiceHealth(60, clock)
    health.part("relay")
    health.part("facts-consumer")
    report = health.report()
    assert report.ready and report.live
    assert report.reasons == []
    assert report.describe() == "every part alive and progressing"


def test_a_part_that_makes_no_progress_past_the_bound_is_not_ready_but_live(
    clock: Clock,
) -> None:
    health = ServiceHealth(60, clock)
    consumer = health.part("facts-consumer")
    clock.now += 30
    consumer.progressed()
    clock.now += 60  # exactly the bound since the last cycle: still progressing
    assert health.report().ready
    consumer.waiting(KafkaConnectionError("connection refused"))
    clock.now += 15
    report = health.report()
    assert not report.ready and report.live
    assert report.reasons == [
        "facts-consumer: no progress for 75 s: KafkaConnectionError: connection refused"
    ]
    consumer.progressed()
    assert health.report() == HealthReport()


def test_a_stall_without_an_error_says_so(clock: Clock) -> None:
    health = ServiceHealth(5, clock)
    health.part("consumer")
    clock.now += 6
    assert health.report().reasons == ["consumer: no progress for 6 s"]


def test_a_stopped_part_is_neither_ready_nor_live_whatever_its_progress(clock: Clock) -> None:
    health = ServiceHealth(60, clock)
    relay = health.part("relay")
    health.part("facts-consumer")
    relay.progressed()
    relay.stopped("the broker refused an event for good")
    relay.stopped("a later reason does not replace the first")
    report = health.report()
    assert not report.ready and not report.live
    assert report.reasons == ["relay stopped: the broker refused an event for good"]


def test_a_part_whose_thread_ended_unrecorded_is_stopped(clock: Clock) -> None:
    health = ServiceHealth(60, clock)
    part = health.part("alerts", watch_progress=False)
    thread = threading.Thread(target=lambda: None)
    part.runs_in(thread)
    assert health.report().ready  # not started yet: nothing ended
    thread.start()
    thread.join()
    assert health.report().reasons == ["alerts stopped: its thread ended"]


def test_a_part_watched_for_liveness_only_never_stalls(clock: Clock) -> None:
    health = ServiceHealth(60, clock)
    health.part("alerts", watch_progress=False)
    clock.now += 3600
    assert health.report().ready


def test_a_stopping_service_is_not_ready_but_live(clock: Clock) -> None:
    health = ServiceHealth(60, clock)
    health.part("relay").stopped("whatever")
    health.stopping()
    report = health.report()
    assert not report.ready and report.live
    assert report.reasons == ["the service is stopping"]


def test_the_key_of_a_report_ignores_the_growing_age_of_a_stall(clock: Clock) -> None:
    health = ServiceHealth(10, clock)
    consumer = health.part("consumer")
    consumer.waiting(KafkaConnectionError("refused"))
    clock.now += 11
    first = health.report()
    clock.now += 5
    later = health.report()
    assert first.reasons != later.reasons
    assert first.key == later.key
    consumer.waiting(KafkaConnectionError("another error"))
    assert health.report().key != first.key


def test_errors_are_named_once_and_bounded() -> None:
    assert describe_error(ValueError("bad")) == "ValueError: bad"
    assert describe_error(ValueError()) == "ValueError"
    too_large = MessageSizeTooLargeError("big")
    assert describe_error(too_large) == "[Error 10] MessageSizeTooLargeError: big"
    assert len(describe_error(ValueError("x" * 10_000))) == 500


def test_the_bound_comes_from_the_settings_when_they_declare_it() -> None:
    assert stall_bound(SimpleNamespace(stall_after_s=5)) == 5.0
    assert stall_bound(SimpleNamespace()) == DEFAULT_STALL_AFTER_S == 60.0
    with pytest.raises(ValueError, match="positive"):
        ServiceHealth(0)
