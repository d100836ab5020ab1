"""The end-of-run summary: chains by stage, KPIs per site, alerts by kind; the auditor's
verdict line; and what each plan's chain must show."""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v_simulator.audit import Verdict
from v2v_simulator.consortium import Consortium
from v2v_simulator.scenarios import plan_patients
from v2v_simulator.summary import Summary, render


def kpis() -> pb.GetKpisResponse:
    consortium = pb.KpiSummary(
        chains=3,
        infused=2,
        apheresis_to_infusion_hours=pb.Distribution(n=2, median=300.0, p90=420.0),
        stage_hours=[
            pb.StageDistribution(
                stage="enrolment_to_collection", hours=pb.Distribution(n=3, median=96, p90=180)
            ),
            pb.StageDistribution(
                stage="manufacturing", hours=pb.Distribution(n=2, median=216, p90=264)
            ),
        ],
        manufacturing_success_rate=0.75,
    )
    site = pb.KpiSummary(chains=2, infused=2, oos_rate=0.5)
    return pb.GetKpisResponse(
        consortium=consortium, sites=[pb.SiteKpis(site_id="HOSP-A", kpis=site)]
    )


def test_the_summary_shows_completed_chains_kpis_in_days_per_site_and_alerts_by_kind() -> None:
    summary = Summary(
        stages={"CHA1": "infused", "CHA2": "infused", "CHA3": "release"},
        alerts=Counter({"temperature-excursion": 2, "identity-mismatch": 1}),
        kpis=kpis(),
    )
    console = Console(width=160, record=True)
    render(summary, console)
    text = console.export_text()
    assert "2 of 3 chains completed" in text
    assert "12.5 / 17.5" in text and "75 %" in text and "50 %" in text  # days
    assert "Vein-to-vein days" in text
    assert "enrolment to collection │      3 │  4.0 / 7.5" in text
    assert "manufacturing           │      2 │ 9.0 / 11.0" in text
    assert "HOSP-A" in text and "consortium" in text
    assert "temperature-excursion │     2" in text
    assert summary.completed == 2


def test_a_run_without_alerts_says_so() -> None:
    console = Console(width=160, record=True)
    render(Summary(stages={"CHA1": "infused"}, kpis=pb.GetKpisResponse()), console)
    assert "(none)" in console.export_text()


def test_the_verdict_line_is_the_last_line_of_the_output() -> None:
    verdict = Verdict(True, 0, "clean: 10 records, 2 aggregates, 0 duplicates, 0 breaks\n\n")
    assert verdict.last_line.startswith("clean: 10 records")
    assert Verdict(False, 2, "", "error: no key ring\n").last_line == "error: no key ring"


def test_only_a_wrong_wristband_and_an_excursion_leave_alerts_on_a_chain() -> None:
    plans = plan_patients(Consortium.sized(), 30, seed=5)
    for plan in plans:
        expected = set()
        if plan.wrong_bag:
            expected.add("identity-mismatch")
        if plan.excursion:
            expected.add("temperature-excursion")
        assert plan.expected_alerts == expected
    assert any(plan.expected_alerts for plan in plans)
