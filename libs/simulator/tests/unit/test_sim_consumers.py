"""A consumer group consumes when it is stable and holds every partition it subscribes to."""

from __future__ import annotations

from typing import Any

from v2v_simulator.consumers import _problem, group_prefix

TOPIC = "v2v.intake.events.v1"


class FakeAdmin:
    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [
            {"name": t, "partitions": [{"partition_index": p} for p in range(6)]} for t in topics
        ]


def group(state: str, partitions: list[int]) -> dict[str, Any]:
    member = {
        "member_metadata": {"topics": [TOPIC]},
        "member_assignment": {"assigned_partitions": [{"topic": TOPIC, "partitions": partitions}]},
    }
    return {"group_id": "v2v-manufacturing-GMP-1-intake", "group_state": state, "members": [member]}


def test_a_stable_group_holding_every_partition_consumes() -> None:
    assert _problem(FakeAdmin(), group("Stable", [0, 1, 2, 3, 4, 5])) == ""


def test_a_group_that_joined_with_no_partitions_is_reported() -> None:
    problem = _problem(FakeAdmin(), group("Stable", []))
    assert problem == "v2v-manufacturing-GMP-1-intake: 6 of 6 partitions assigned to no consumer"


def test_a_rebalancing_group_is_not_ready_yet() -> None:
    problem = _problem(FakeAdmin(), group("PreparingRebalance", [0]))
    assert problem.endswith("PreparingRebalance")


def test_group_names_follow_the_services_conventions() -> None:
    assert group_prefix("release", "GMP-1") == "v2v-release-GMP-1-"
    assert group_prefix("projection", "AUDIT") == "v2v-projection"
