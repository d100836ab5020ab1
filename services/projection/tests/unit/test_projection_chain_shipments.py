"""The chain of condition: each shipment of a chain with its logger readings, its condition's
temperature range and its excursions (`shipments` of the chain view), whatever order the
uploads arrive and are derived in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.conditions import ABSOLUTE_ZERO_C, Condition
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.http_api import SiteTokenVerifier
from v2v_projection.adapters import proto_views
from v2v_projection.adapters.http_api import create_http_app
from v2v_projection.chain_projection import ChainProjection
from v2v_projection.fold import ChainFold
from v2v_projection.queries import ChainQueries
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

COI = "CHA123425000017"
BAG = "A12342500004200"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
LOGGER, SPARE = "LOGGER-7", "LOGGER-9"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def shown(hours: float) -> str:
    return at(hours).isoformat()


def stamp(hours: float) -> Timestamp:
    moment = at(hours)
    return Timestamp(seconds=int(moment.timestamp()), nanos=moment.microsecond * 1000)


class History:
    def __init__(self) -> None:
        self.writer = EnvelopeWriter()
        self.records: list[bytes] = []

    def add(self, shipment_id: str, payload: Message, hours: float) -> bytes:
        record = self.writer.write(
            COI, f"Shipment:{shipment_id}", payload, at(hours), site="LOGI-1", context="logistics"
        )
        self.records.append(record)
        return record

    def created(
        self,
        shipment_id: str,
        hours: float,
        condition: common_pb2.Condition.ValueType = common_pb2.CONDITION_FRESH_COLD,
    ) -> None:
        event = logistics.ShipmentCreated(
            coi=COI,
            shipment_id=shipment_id,
            manifest_dins=[BAG],
            condition=condition,
            origin_site_id="HOSP-A",
            destination_site_id="GMP-B",
            custodian="site:HOSP-A",
            created_at=stamp(hours),
        )
        self.add(shipment_id, event, hours)

    def readings(
        self, shipment_id: str, hours: float, device: str, *readings: tuple[float, float]
    ) -> bytes:
        """One upload: (hours, °C) pairs, recorded at `hours`."""
        event = logistics.TemperatureReadingsRecorded(
            coi=COI,
            shipment_id=shipment_id,
            device_id=device,
            readings=[
                logistics.TemperatureReading(measured_at=stamp(when), temperature_c=c)
                for when, c in readings
            ],
        )
        return self.add(shipment_id, event, hours)

    def excursion(
        self, shipment_id: str, started: float, ended: float, low: float, high: float
    ) -> None:
        event = logistics.TemperatureExcursionRecorded(
            coi=COI,
            shipment_id=shipment_id,
            device_id=LOGGER,
            started_at=stamp(started),
            ended_at=stamp(ended),
            duration_seconds=round((ended - started) * 3600),
            min_c=low,
            max_c=high,
            condition=common_pb2.CONDITION_FRESH_COLD,
        )
        self.add(shipment_id, event, ended + 0.01)

    def delivered(self, shipment_id: str, hours: float) -> None:
        event = logistics.ShipmentDelivered(
            coi=COI,
            shipment_id=shipment_id,
            from_party="courier:C-1",
            destination_site_id="GMP-B",
            received_at=stamp(hours),
        )
        self.add(shipment_id, event, hours + 0.01)

    def shipments(self, records: list[bytes] | None = None) -> list[dict[str, Any]]:
        fold = ChainFold()
        for record in self.records if records is None else records:
            fold.apply_bytes(record)
        view = fold.chain(COI)
        assert view is not None
        shipments: list[dict[str, Any]] = view["shipments"]
        return shipments


def reading(hours: float, c: float, device: str = LOGGER) -> dict[str, Any]:
    return {"at": shown(hours), "c": c, "device_id": device}


def test_a_shipment_shows_its_readings_range_and_delivery() -> None:
    history = History()
    history.created("S-1", 1)
    history.readings("S-1", 3, LOGGER, (2, 5.0), (2.5, 5.5))
    history.delivered("S-1", 6)

    assert history.shipments() == [
        {
            "shipment_id": "S-1",
            "origin_site_id": "HOSP-A",
            "destination_site_id": "GMP-B",
            "condition": "fresh-cold",
            "range_c": [2.0, 8.0],
            "created_at": shown(1),
            "delivered_at": shown(6),
            "readings": [reading(2, 5.0), reading(2.5, 5.5)],
            "excursions": [],
        }
    ]


def test_readings_from_two_uploads_give_the_same_view_in_either_order() -> None:
    history = History()
    history.created("S-1", 1)
    # the later upload carries the earlier readings: derivation order is not reading order
    history.readings("S-1", 5, LOGGER, (2, 5.0), (2.5, 5.25))
    history.readings("S-1", 3, LOGGER, (3, 6.0), (1.5, 4.5))
    forward = history.shipments()
    records = list(history.records)
    rng = random.Random(16)

    orders = [list(reversed(records))] + [rng.sample(records, len(records)) for _ in range(5)]

    assert [r["at"] for r in forward[0]["readings"]] == [shown(h) for h in (1.5, 2, 2.5, 3)]
    for order in orders:
        assert history.shipments(order) == forward


def test_a_reading_uploaded_twice_is_shown_once() -> None:
    history = History()
    history.created("S-1", 1)
    history.readings("S-1", 3, LOGGER, (2, 5.0), (2.5, 5.5))
    history.readings("S-1", 4, LOGGER, (2.5, 5.5), (3, 6.0), (3, 6.0))
    history.readings("S-1", 4.5, SPARE, (2.5, 5.5))  # another logger: its own reading
    history.readings("S-1", 4.6, LOGGER, (2.5, 5.75))  # same logger and time, another value

    assert history.shipments()[0]["readings"] == [
        reading(2, 5.0),
        reading(2.5, 5.5),
        reading(2.5, 5.75),
        reading(2.5, 5.5, SPARE),
        reading(3, 6.0),
    ]


def test_an_excursion_shows_its_span_extremes_and_logger() -> None:
    history = History()
    history.created("S-1", 1)
    history.excursion("S-1", 4, 4.5, 8.4, 11.5)
    history.excursion("S-1", 2, 2.25, 8.1, 9.0)

    [shipment] = history.shipments()

    assert shipment["excursions"] == [
        {
            "started_at": shown(2),
            "ended_at": shown(2.25),
            "duration_s": 900,
            "min_c": 8.1,
            "max_c": 9.0,
            "device_id": LOGGER,
        },
        {
            "started_at": shown(4),
            "ended_at": shown(4.5),
            "duration_s": 1800,
            "min_c": 8.4,
            "max_c": 11.5,
            "device_id": LOGGER,
        },
    ]
    assert type(shipment["excursions"][0]["duration_s"]) is int


def test_a_cryo_shipment_ranges_from_absolute_zero() -> None:
    history = History()
    history.created("S-1", 1, common_pb2.CONDITION_CRYO)
    history.created("S-2", 2, common_pb2.CONDITION_FRESH_AMBIENT)

    cryo, ambient = history.shipments()

    assert (cryo["condition"], cryo["range_c"]) == ("cryo", [ABSOLUTE_ZERO_C, -150.0])
    assert cryo["range_c"] == list(Condition.CRYO.temperature_range_c)
    assert (ambient["condition"], ambient["range_c"]) == ("fresh-ambient", [15.0, 25.0])


def test_a_shipment_without_its_creation_still_shows_its_readings_and_excursions() -> None:
    history = History()
    history.readings("S-9", 3, LOGGER, (2, 9.5))
    history.excursion("S-9", 2, 2.5, 9.5, 10.0)

    assert history.shipments() == [
        {
            "shipment_id": "S-9",
            "origin_site_id": "",
            "destination_site_id": "",
            "condition": "",
            "range_c": None,
            "created_at": "",
            "delivered_at": "",
            "readings": [reading(2, 9.5)],
            "excursions": [
                {
                    "started_at": shown(2),
                    "ended_at": shown(2.5),
                    "duration_s": 1800,
                    "min_c": 9.5,
                    "max_c": 10.0,
                    "device_id": LOGGER,
                }
            ],
        }
    ]


def test_shipments_are_ordered_by_creation_then_id() -> None:
    history = History()
    history.created("S-3", 5)
    history.created("S-2", 1)
    history.created("S-1", 5)

    assert [s["shipment_id"] for s in history.shipments()] == ["S-2", "S-1", "S-3"]


@lru_cache(maxsize=1)
def generated() -> GeneratedHistory:
    return generate_history(3, 3)


def test_every_generated_shipment_has_readings_and_its_excursions_are_alerted() -> None:
    fold = ChainFold()
    fold.apply_all(value for values in generated().by_topic.values() for value in values)

    for view in fold.chains():
        shipments = view["shipments"]
        excursion_alerts = [a for a in view["alerts"] if a["kind"] == "temperature-excursion"]
        assert shipments, view["coi"]
        assert all(s["readings"] and s["range_c"] and s["delivered_at"] for s in shipments)
        assert sum(len(s["excursions"]) for s in shipments) == len(excursion_alerts)
        for shipment in shipments:
            low, high = shipment["range_c"]
            for excursion in shipment["excursions"]:
                assert not low <= excursion["max_c"] <= high


def test_the_http_chain_read_shows_the_shipments_and_grpc_still_maps_the_view(
    tmp_path: Path,
) -> None:
    history = History()
    history.created("S-1", 1)
    history.readings("S-1", 3, LOGGER, (2, 5.0))
    history.excursion("S-1", 2, 2.5, 8.5, 9.0)
    gate = EnvelopeGate(history.writer.keys)
    projection = ChainProjection(
        SqliteProjectionStore(tmp_path / "p.sqlite"), verifier=InlineVerifier(gate)
    )
    projection.ingest([("v2v.logistics.events.v1", 0, n, r) for n, r in enumerate(history.records)])
    init_pki(tmp_path / "pki", [parse_site_spec("AUDIT-1:auditor")])
    app = create_http_app(ChainQueries(projection), SiteTokenVerifier(tmp_path / "pki/ca.crt"))
    token = issue_site_token(tmp_path / "pki", "AUDIT-1")

    with TestClient(app) as http:
        view = http.get(f"/v1/chains/{COI}", headers={"Authorization": f"Bearer {token}"}).json()

    assert view["shipments"] == history.shipments()
    assert [r["c"] for r in view["shipments"][0]["readings"]] == [5.0]
    assert proto_views.chain(view).coi == COI
