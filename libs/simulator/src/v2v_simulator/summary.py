"""What the projection core says at the end, read through its gRPC API as the auditor: the
chains by stage (completed = infused), the KPIs of the consortium and of each site, and the
alerts by kind."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console
from rich.table import Table

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v_simulator.clients import Clients, call
from v2v_simulator.journey.context import Journey

COMPLETE = "infused"
POLL_INTERVAL_S = 0.25


@dataclass
class Summary:
    stages: dict[str, str] = field(default_factory=dict)  # COI -> stage
    alerts: Counter[str] = field(default_factory=Counter)
    kpis: Any = None  # GetKpisResponse

    @property
    def completed(self) -> int:
        return sum(1 for stage in self.stages.values() if stage == COMPLETE)


def all_chains(clients: Clients) -> list[Any]:
    projection = clients.projection()
    chains: list[Any] = []
    token = ""
    while True:
        page = call(projection.ListChains, pb.ListChainsRequest(page_size=1000, page_token=token))
        chains += list(page.chains)
        token = page.next_page_token
        if not token:
            return chains


def settled(clients: Clients, journeys: Iterable[Journey], timeout_s: float) -> dict[str, Any]:
    """Poll the projection until every journey's chain is complete (infused) with exactly the
    alerts its plan implies; the chains as last seen. The projection is eventually consistent
    (a chain may show a passing alert while one topic is ahead of another), so this waits;
    TimeoutError naming every chain that differs after `timeout_s`."""
    expected = {journey.coi: journey.plan.expected_alerts for journey in journeys}
    projection = clients.projection()
    deadline = time.monotonic() + timeout_s
    while True:
        chains = {}
        for coi in expected:
            try:
                chains[coi] = call(projection.GetChain, pb.GetChainRequest(coi=coi)).chain
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
        differences = [_difference(coi, chains.get(coi), kinds) for coi, kinds in expected.items()]
        differences = [d for d in differences if d]
        if not differences:
            return chains
        if time.monotonic() > deadline:
            shown = "; ".join(differences)
            raise TimeoutError(f"after {timeout_s:g}s the projection still differs: {shown}")
        time.sleep(POLL_INTERVAL_S)


def _difference(coi: str, chain: Any, alert_kinds: set[str]) -> str:
    if chain is None:
        return f"{coi} not projected"
    if chain.stage != COMPLETE:
        return f"{coi} at stage {chain.stage}"
    kinds = {alert.kind for alert in chain.alerts}
    if kinds != alert_kinds:
        details = [f"{a.kind}: {a.detail}" for a in chain.alerts]
        return f"{coi} alerts {sorted(kinds)} instead of {sorted(alert_kinds)} ({details})"
    return ""


def read_summary(clients: Clients) -> Summary:
    projection = clients.projection()
    summary = Summary()
    for chain in all_chains(clients):
        summary.stages[chain.coi] = chain.stage
        if chain.alert_count:
            detail = call(projection.GetChain, pb.GetChainRequest(coi=chain.coi)).chain
            summary.alerts.update(alert.kind for alert in detail.alerts)
    summary.kpis = call(projection.GetKpis, pb.GetKpisRequest())
    return summary


def _days(distribution: Any) -> str:
    """A distribution of hours as days: "median / p90"."""
    if not distribution.n or not distribution.HasField("median"):
        return "-"
    return f"{distribution.median / 24:.1f} / {distribution.p90 / 24:.1f}"


def _rate(summary: Any, name: str) -> str:
    return f"{100 * getattr(summary, name):.0f} %" if summary.HasField(name) else "-"


def _stage_table(consortium: Any) -> Table:
    """The consortium's stage times in days (docs/kpis.md), in the order of the journey."""
    table = Table(title="Stage times, consortium (days: median / p90)")
    table.add_column("Stage")
    table.add_column("Chains", justify="right")
    table.add_column("Days", justify="right")
    for stage in consortium.stage_hours:
        table.add_row(stage.stage.replace("_", " "), str(stage.hours.n), _days(stage.hours))
    if not consortium.stage_hours:
        table.add_row("(none yet)", "0", "-")
    return table


def render(summary: Summary, console: Console) -> None:
    stages = Counter(summary.stages.values())
    console.print(f"[bold]{summary.completed} of {len(summary.stages)} chains completed[/]")
    table = Table(title="Chains by stage")
    table.add_column("Stage")
    table.add_column("Chains", justify="right")
    for stage, count in stages.most_common():
        table.add_row(stage, str(count))
    console.print(table)
    kpis = Table(title="KPIs (projection core; days: median / p90)")
    for column in (
        "Site",
        "Chains",
        "Infused",
        "Vein-to-vein days",
        "Mfg OK",
        "OOS",
        "2nd apheresis",
    ):
        kpis.add_column(column)
    rows = [("consortium", summary.kpis.consortium)]
    rows += [(site.site_id, site.kpis) for site in summary.kpis.sites]
    for name, values in rows:
        kpis.add_row(
            name,
            str(values.chains),
            str(values.infused),
            _days(values.apheresis_to_infusion_hours),
            _rate(values, "manufacturing_success_rate"),
            _rate(values, "oos_rate"),
            _rate(values, "second_apheresis_rate"),
        )
    console.print(kpis)
    console.print(_stage_table(summary.kpis.consortium))
    alerts = Table(title="Alerts by kind")
    alerts.add_column("Kind")
    alerts.add_column("Count", justify="right")
    for kind, count in summary.alerts.most_common():
        alerts.add_row(kind, str(count))
    if not summary.alerts:
        alerts.add_row("(none)", "0")
    console.print(alerts)
