"""A group member left without partitions subscribes again after a wait; one with partitions
is left alone."""

from __future__ import annotations

from v2v_platform.consumer.subscription import SubscriptionWatch


class Member:
    """Stands in for kafka-python's KafkaConsumer (the watch's collaborator, not under test)."""

    def __init__(self, assigned: set[str]) -> None:
        self.assigned = assigned
        self.calls: list[str] = []

    def assignment(self) -> set[str]:
        return self.assigned

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")


def test_an_unassigned_member_subscribes_again_and_backs_off() -> None:
    member = Member(set())
    watch = SubscriptionWatch(member, lambda: member.calls.append("subscribe"), "t", after_s=0)
    watch.check()
    assert member.calls == ["unsubscribe", "subscribe"]
    watch.check()  # still unassigned and the (doubled) zero wait has passed: again
    assert member.calls.count("subscribe") == 2


def test_a_member_with_partitions_is_left_alone() -> None:
    member = Member({"v2v.intake.events.v1-0"})
    watch = SubscriptionWatch(member, lambda: member.calls.append("subscribe"), "t", after_s=0)
    watch.check()
    assert member.calls == []


def test_nothing_happens_before_the_wait_has_passed() -> None:
    member = Member(set())
    watch = SubscriptionWatch(member, lambda: member.calls.append("subscribe"), "t", after_s=60)
    watch.check()
    assert member.calls == []  # not yet: 60 s have not passed
