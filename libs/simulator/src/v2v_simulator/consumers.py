"""Are the services' Kafka consumers actually consuming? A service is ready only when its
consumer group is stable and holds every partition of the topics it subscribes to.

Why check: kafka-python can complete a group join with an EMPTY assignment when the topic
metadata races the join ("No partition metadata for topic ..." in the service's log); that
consumer then never receives anything. Seen after a service start and after a broker
restart; the fix belongs in the platform's consumer (see the report of issue 7).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient

from v2v_platform.kafka_security import environment_options

# The contexts whose services consume other contexts' topics, and their group names
# (v2v_platform.service_runtime: v2v-<context>-<site>-<name>; the projection's setting).
CONSUMING = ("manufacturing", "logistics", "release", "infusion", "projection")
POLL_INTERVAL_S = 0.25


def group_prefix(context: str, site_id: str) -> str:
    return "v2v-projection" if context == "projection" else f"v2v-{context}-{site_id}-"


def unassigned(bootstrap: str, prefixes: Iterable[str]) -> dict[str, str]:
    """What is wrong with each expected group (by prefix); empty when all consume."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="v2v-simulator-groups", **environment_options()
    )
    try:
        names = [g["group_id"] for g in admin.list_groups()]
        wanted = {p: [n for n in names if n.startswith(p)] for p in prefixes}
        found = [name for names_of in wanted.values() for name in names_of]
        groups = admin.describe_groups(found) if found else {}
        problems = {}
        for prefix, group_names in wanted.items():
            live = [groups[n] for n in group_names if groups[n]["group_state"] != "Empty"]
            found_problems = [p for group in live if (p := _problem(admin, group))]
            if not live:
                problems[prefix] = f"{prefix}*: no consumer has joined"
            elif found_problems:
                problems[prefix] = "; ".join(found_problems)
        return problems
    finally:
        admin.close()


def _problem(admin: KafkaAdminClient, group: dict[str, Any]) -> str:
    name, state = group["group_id"], group["group_state"]
    if state != "Stable":
        return f"{name}: {state}"
    subscribed = {t for m in group["members"] for t in m["member_metadata"]["topics"]}
    held = {
        (a["topic"], p)
        for m in group["members"]
        for a in m["member_assignment"]["assigned_partitions"]
        for p in a["partitions"]
    }
    wanted = {
        (d["name"], p["partition_index"])
        for d in admin.describe_topics(sorted(subscribed))
        for p in d.get("partitions") or []
    }
    missing = wanted - held
    if missing:
        return f"{name}: {len(missing)} of {len(wanted)} partitions assigned to no consumer"
    return ""


def wait_assigned(bootstrap: str, prefixes: Iterable[str], timeout_s: float) -> dict[str, str]:
    """Poll until every group consumes; what is still wrong after `timeout_s` (or {})."""
    expected = list(prefixes)
    deadline = time.monotonic() + timeout_s
    while True:
        problems = unassigned(bootstrap, expected)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(POLL_INTERVAL_S)
