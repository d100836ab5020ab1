"""Server-side SVG charts (`v2v_projection.charts`): the ids of their data artists, one shaded
span per excursion, the same bytes for the same input, charts without data, and the pure
series behind the KPI charts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest

from v2v_projection.chain.kpis import STAGE_SPANS, VEIN_TO_VEIN, summarize
from v2v_projection.charts import (
    KPI_CHARTS,
    NO_DATA,
    NO_READINGS,
    MonthRates,
    excursion_span,
    first_release_at,
    kpi_charts,
    monthly_rates,
    range_text,
    stage_medians,
    success_rates,
    temperature_chart,
    vein_to_vein_days,
    y_limits,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def shipment(readings: int = 48, excursions: int = 2, **changes: Any) -> dict[str, Any]:
    found = {
        "shipment_id": "SHP-1",
        "origin_site_id": "HOSP-A",
        "destination_site_id": "GMP-B",
        "condition": "fresh-cold",
        "range_c": [2.0, 8.0],
        "created_at": at(0),
        "delivered_at": at(5 * readings),
        "readings": [
            {"at": at(5 * i), "c": 5.0 + (4.0 if i % 20 == 10 else 0.0), "device_id": "LOGGER-7"}
            for i in range(readings)
        ],
        "excursions": [
            {
                "started_at": at(100 * i + 48),
                "ended_at": at(100 * i + 55),
                "duration_s": 420,
                "min_c": 8.5,
                "max_c": 9.0,
                "device_id": "LOGGER-7",
            }
            for i in range(excursions)
        ],
    }
    found.update(changes)
    return found


def parsed(svg: str) -> ElementTree.Element:
    assert svg.startswith("<svg"), svg[:80]
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def ids(svg: str) -> set[str]:
    return {element.get("id", "") for element in parsed(svg).iter()} - {""}


def texts(svg: str) -> list[str]:
    return [element.text or "" for element in parsed(svg).iter(f"{SVG}text")]


def group(svg: str, gid: str) -> ElementTree.Element:
    found = [e for e in parsed(svg).iter() if e.get("id") == gid]
    assert len(found) == 1, (gid, len(found))
    return found[0]


# ---------------------------------------------------------------- temperature chart


def test_the_temperature_chart_is_inline_svg_with_a_viewbox_and_no_fixed_size() -> None:
    svg = temperature_chart(shipment())
    root = parsed(svg)
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert root.get("viewBox") and root.get("width") is None and root.get("height") is None
    assert "Date" not in svg and "<dc:date>" not in svg


def test_readings_range_band_and_one_shaded_span_per_excursion() -> None:
    for count in (0, 1, 3):
        svg = temperature_chart(shipment(excursions=count))
        found = ids(svg)
        assert {"readings", "range-band"} <= found
        assert sorted(i for i in found if i.startswith("excursion-")) == sorted(
            f"excursion-{i}" for i in range(count)
        )
        shown = " ".join(texts(svg))
        assert "SHP-1" in shown and "fresh-cold" in shown
        assert "°C" in shown and "clinical time (UTC)" in shown


def test_the_same_shipment_gives_the_same_bytes() -> None:
    assert temperature_chart(shipment()) == temperature_chart(shipment())
    assert kpi_charts(*programme()) == kpi_charts(*programme())


def test_charts_drawn_at_once_from_several_threads_are_the_ones_drawn_alone() -> None:
    alone = temperature_chart(shipment())
    results: list[str] = []

    def draw() -> None:
        results.append(temperature_chart(shipment()))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [alone] * 4


def test_a_shipment_without_readings_says_so() -> None:
    svg = temperature_chart(shipment(readings=0, excursions=0))
    assert NO_READINGS in texts(svg)
    assert not ids(svg) & {"readings", "range-band", "excursion-0"}


def test_excursions_without_readings_are_still_shaded() -> None:
    svg = temperature_chart(shipment(readings=0, excursions=2))
    assert {"excursion-0", "excursion-1"} <= ids(svg)
    assert NO_READINGS in texts(svg) and "readings" not in ids(svg)


def test_several_loggers_get_one_line_each() -> None:
    readings = shipment()["readings"] + [
        {"at": at(5 * i + 2), "c": 6.0, "device_id": "LOGGER-9"} for i in range(10)
    ]
    svg = temperature_chart(shipment(readings=0, excursions=0) | {"readings": readings})
    assert {"readings", "readings-2"} <= ids(svg)
    assert {"logger LOGGER-7", "logger LOGGER-9"} <= set(texts(svg))


def test_cryo_shades_up_to_its_high_end_without_going_down_to_absolute_zero() -> None:
    cryo = shipment(condition="cryo", range_c=[-273.15, -150.0], excursions=0)
    for reading in cryo["readings"]:
        reading["c"] -= 200.0
    svg = temperature_chart(cryo)
    assert "range-band" in ids(svg)
    assert "<= -150 °C" in " ".join(texts(svg))
    assert range_text(cryo) == "<= -150 °C"
    bottom, top = y_limits([-195.0, -191.0], (-273.15, -150.0))
    assert -215 < bottom < -195 and -150 < top < -140
    assert y_limits([4.0, 5.0], (2.0, 8.0))[0] < 2.0
    assert y_limits([], None) == (0.0, 1.0)


def test_a_shipment_without_a_condition_has_no_band() -> None:
    svg = temperature_chart(shipment(condition="", range_c=None, excursions=0))
    assert "readings" in ids(svg) and "range-band" not in ids(svg)
    assert range_text(shipment(range_c=None)) == "no range"


def test_text_from_the_records_is_shown_as_written_never_as_markup() -> None:
    hostile = "<script>alert(1)</script> & $x^2$"
    svg = temperature_chart(shipment(shipment_id=hostile, excursions=0))
    assert "<script" not in svg
    assert any(hostile in text for text in texts(svg))


def test_an_excursion_is_shaded_from_its_start_to_its_end_or_its_duration() -> None:
    whole = excursion_span({"started_at": at(0), "ended_at": at(30)}, None)
    assert whole is not None and whole.end - whole.start == timedelta(minutes=30)
    timed = excursion_span({"started_at": at(0), "ended_at": "", "duration_s": 600}, None)
    assert timed is not None and timed.end - timed.start == timedelta(minutes=10)
    open_ended = excursion_span({"started_at": at(0)}, T0 + timedelta(hours=2))
    assert open_ended is not None and open_ended.end == T0 + timedelta(hours=2)
    instant = excursion_span({"started_at": at(0), "ended_at": at(0)}, None)
    assert instant is not None and instant.end - instant.start == timedelta(minutes=1)
    assert excursion_span({"started_at": ""}, None) is None


# ---------------------------------------------------------------- KPI series


def chain(
    coi: str,
    site: str,
    *,
    vein_to_vein_hours: float | None = None,
    collected: str | None = None,
    collections: int = 1,
    batches: Sequence[tuple[str, str, bool, bool, str | None]] = (),
) -> dict[str, Any]:
    """A chain view with what the KPI charts read. batches: (batch_id, site, released, oos,
    first release time)."""
    return {
        "coi": coi,
        "treating_site_id": site,
        "units": (
            [{"din": f"A-{coi}", "kind": "apheresis", "created_at": collected}] if collected else []
        ),
        "releases": [
            {
                "batch_id": batch_id,
                "decisions": [
                    {"decision": "oos-justified", "at": "2025-01-01T00:00:00+00:00"},
                    {"decision": "final", "at": released_at},
                ]
                if released_at
                else [],
            }
            for batch_id, _, _, _, released_at in batches
        ],
        "kpis": {
            VEIN_TO_VEIN: vein_to_vein_hours,
            "stage_hours": dict.fromkeys(STAGE_SPANS, 48.0),
            "infused": vein_to_vein_hours is not None,
            "collections": collections if collected else 0,
            "second_apheresis": collections > 1,
            "enrolling_site_id": site,
            "batches": [
                {
                    "batch_id": batch_id,
                    "site_id": gmp,
                    "status": "harvested",
                    "released": released,
                    "oos": oos,
                }
                for batch_id, gmp, released, oos, _ in batches
            ],
            "excluded_intervals": [],
        },
    }


def programme() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    chains = [
        chain(
            "C1",
            "HOSP-A",
            vein_to_vein_hours=24 * 14,
            collected="2025-01-05T10:00:00+00:00",
            batches=[("B1", "GMP-B", True, False, "2025-01-20T10:00:00+00:00")],
        ),
        chain(
            "C2",
            "HOSP-A",
            vein_to_vein_hours=24 * 20,
            collected="2025-01-25T10:00:00+00:00",
            collections=2,
            batches=[("B2", "GMP-B", True, True, "2025-03-02T10:00:00+00:00")],
        ),
        chain("C3", "HOSP-C", collected="2025-03-09T10:00:00+00:00"),
    ]
    return summarize(chains), chains


def test_vein_to_vein_days_are_the_infused_chains_hours_over_24() -> None:
    _, chains = programme()
    assert vein_to_vein_days(chains) == [14.0, 20.0]
    assert vein_to_vein_days([]) == []


def test_stage_medians_in_days_for_the_consortium_then_each_site() -> None:
    kpis, _ = programme()
    medians = stage_medians(kpis)
    # GMP-B has batch measures only: no stage times, no bars
    assert list(medians) == ["consortium", "HOSP-A", "HOSP-C"]
    assert medians["consortium"] == dict.fromkeys(STAGE_SPANS, 2.0)
    assert stage_medians({"consortium": {}, "sites": {}}) == {}


def test_success_rates_for_the_sites_with_harvested_or_failed_batches() -> None:
    kpis, _ = programme()
    assert success_rates(kpis) == [("GMP-B", 1.0)]
    assert success_rates({"sites": {"HOSP-A": {"manufacturing_success_rate": None}}}) == []


def test_monthly_rates_by_first_release_and_first_collection_every_month_in_between() -> None:
    _, chains = programme()
    months = monthly_rates(chains)
    assert [m.month for m in months] == ["2025-01", "2025-02", "2025-03"]
    january, february, march = months
    assert (january.released, january.oos, january.collected, january.second_apheresis) == (
        1,
        0,
        2,
        1,
    )
    assert january.oos_rate == 0.0 and january.second_apheresis_rate == 0.5
    assert february == MonthRates("2025-02")
    assert february.oos_rate is None and february.second_apheresis_rate is None
    assert (march.released, march.oos, march.collected) == (1, 1, 1)
    assert march.oos_rate == 1.0 and march.second_apheresis_rate == 0.0
    assert monthly_rates([]) == []


def test_monthly_rates_cross_a_year_end() -> None:
    chains = [
        chain("C1", "HOSP-A", collected="2024-11-30T23:00:00+00:00"),
        chain("C2", "HOSP-A", collected="2025-02-01T00:30:00+01:00"),  # 2025-01-31 UTC
    ]
    assert [m.month for m in monthly_rates(chains)] == ["2024-11", "2024-12", "2025-01"]


def test_a_release_counts_from_its_first_releasing_decision() -> None:
    _, chains = programme()
    assert first_release_at(chains[0], "B1") == "2025-01-20T10:00:00+00:00"
    assert first_release_at(chains[0], "B-unknown") is None
    rejected = chain("C9", "HOSP-A", batches=[("B9", "GMP-B", False, False, None)])
    assert first_release_at(rejected, "B9") is None


# ---------------------------------------------------------------- KPI charts


def test_kpi_charts_have_their_data_artists() -> None:
    charts = kpi_charts(*programme())
    assert tuple(charts) == KPI_CHARTS
    assert {"bars", "median"} <= ids(charts["vein_to_vein"])
    assert len(list(group(charts["vein_to_vein"], "bars"))) >= 2  # a path per bin
    assert {"bars-consortium", "bars-HOSP-A", "bars-HOSP-C"} <= ids(charts["stage_times"])
    assert len(list(group(charts["stage_times"], "bars-consortium"))) == len(STAGE_SPANS)
    assert {"bars", "consortium"} <= ids(charts["manufacturing_success"])
    assert "GMP-B" in texts(charts["manufacturing_success"])
    assert {"line-oos", "line-second-apheresis"} <= ids(charts["rates_over_time"])
    assert {"2025-01", "2025-02", "2025-03"} <= set(texts(charts["rates_over_time"]))
    for svg in charts.values():
        root = parsed(svg)
        assert root.get("viewBox") and root.get("width") is None


def test_kpi_charts_without_data_say_so() -> None:
    charts = kpi_charts(summarize([]), [])
    assert tuple(charts) == KPI_CHARTS
    for name, svg in charts.items():
        assert NO_DATA in texts(svg), name
        assert not {i for i in ids(svg) if i.startswith(("bars", "line-", "median"))}, name


@pytest.mark.parametrize("name", KPI_CHARTS)
def test_each_kpi_chart_is_deterministic(name: str) -> None:
    assert kpi_charts(*programme())[name] == kpi_charts(*programme())[name]


def test_stage_times_draw_a_bar_group_per_site_however_many() -> None:
    chains = [
        chain(f"C{n}", f"HOSP-{n}", vein_to_vein_hours=24.0 * (10 + n), collected=at(n))
        for n in range(7)
    ]
    svg = kpi_charts(summarize(chains), chains)["stage_times"]
    assert {f"bars-HOSP-{n}" for n in range(7)} | {"bars-consortium"} <= ids(svg)
    assert {f"HOSP-{n}" for n in range(7)} <= set(texts(svg))
