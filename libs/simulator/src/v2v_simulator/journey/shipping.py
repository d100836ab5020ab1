"""A shipment between two sites through the logistics service: the origin site creates it
(once logistics knows the units from Kafka), which offers it to its courier; the courier
scans every bag and takes custody over the courier HTTP API, and at the destination hands it
over (offers it to the destination site); the destination uploads the data logger's
readings, receives the shipment scanning exactly the manifest, and inspects it. A relay
(volunteer couriers taking turns) passes custody courier to courier the same way: the origin
assigns the next courier, the holder offers, the next scans every bag and takes it. Every
step is entered with its clinical time from the patient's calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from v2v.common.v1.common_pb2 import CONDITION_CRYO, Condition, Operator
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.consortium import COURIERS
from v2v_simulator.journey.calendar import Transport
from v2v_simulator.journey.context import Journey, Unexpected

NORMAL_C = {"cryo": (-190.0, -185.0, -183.0, -186.0), "fresh": (4.0, 5.0, 5.5, 4.5)}
MINUTE = timedelta(minutes=1)
EXCURSION_C = {"cryo": (-188.0, -140.0, -135.0, -184.0), "fresh": (5.0, 9.5, 10.5, 6.0)}


@dataclass(frozen=True)
class Leg:
    what: str  # "apheresis" or "product"
    origin: str
    origin_operator: Operator
    destination: str
    destination_operator: Operator
    condition: Condition.ValueType
    dins: list[str]
    excursion: bool = False
    origin_department: str = ""  # in-house: from one department of the site to another
    destination_department: str = ""

    @property
    def giver(self) -> str:
        return party(self.origin, self.origin_department)

    @property
    def receiver(self) -> str:
        return party(self.destination, self.destination_department)


def party(site_id: str, department: str) -> str:
    """A custody party: the site, or one of its departments."""
    return f"site:{site_id}/{department}" if department else f"site:{site_id}"


def ship(journey: Journey, leg: Leg, times: Transport) -> None:
    clients = journey.world.clients
    couriers = relay_couriers(journey, leg, len(times.relays) + 1)
    create = pb.CreateShipmentRequest(
        operator=leg.origin_operator,
        manifest_dins=leg.dins,
        condition=leg.condition,
        destination_site_id=leg.destination,
        shipper_id=f"{'DEWAR' if leg.condition == CONDITION_CRYO else 'BOX'}-{journey.plan.number}",
        data_logger_id=logger_id(journey, leg),
        courier_id=couriers[0],
        created_at=timestamp(times.created),
        department=leg.origin_department,
        destination_department=leg.destination_department,
    )
    origin = clients.logistics(leg.origin)
    with journey.step(f"create {leg.what} shipment"):
        shipment = journey.once_known(
            lambda: call(origin.CreateShipment, create).shipment,
            f"logistics to know the {leg.what} units",
        )
    shipment_id = shipment.shipment_id
    hand_to_courier(journey, leg, shipment_id, couriers[0], leg.giver, times.picked_up)
    for previous, courier_id, at in zip(couriers[:-1], couriers[1:], times.relays, strict=True):
        relay(journey, leg, shipment_id, (previous, courier_id), at)
    hand_to_destination(journey, leg, shipment_id, couriers[-1], times.arrived)
    deliver(journey, leg, shipment_id, f"courier:{couriers[-1]}", times)


def relay_couriers(journey: Journey, leg: Leg, count: int) -> list[str]:
    """The couriers who carry the shipment in turn (one, or the volunteers of a relay)."""
    first = (journey.plan.number + len(leg.what)) % len(COURIERS)
    return [COURIERS[(first + n) % len(COURIERS)][0] for n in range(count)]


def logger_id(journey: Journey, leg: Leg) -> str:
    return f"LOGGER-{journey.plan.number}-{leg.what}"


def scan(from_party: str, at: datetime, **fields: str) -> dict[str, Any]:
    return {
        "idempotency_key": str(uuid4()),
        "scanned_at": at.isoformat(),
        "from_party": from_party,
        **fields,
    }


def hand_to_courier(
    journey: Journey, leg: Leg, shipment_id: str, courier_id: str, giver: str, at: datetime
) -> None:
    """The courier scans every bag (a minute apart, before `at`) and takes custody at `at`
    from `giver`, who offered the shipment to them."""
    courier = journey.world.clients.courier(courier_id)
    try:
        for n, din in enumerate(leg.dins):
            scanned = at - (len(leg.dins) - n) * MINUTE
            with journey.step(f"courier scans {leg.what} bag"):
                courier.post(f"/shipments/{shipment_id}/scans", scan(giver, scanned, label=din))
        with journey.step(f"courier takes the {leg.what} shipment"):
            handed = courier.post(f"/shipments/{shipment_id}/handoff", scan(giver, at))
            if handed.get("custodian") != courier.party:
                raise Unexpected(f"after the handoff the custodian is {handed.get('custodian')}")
    finally:
        courier.close()


def relay(
    journey: Journey, leg: Leg, shipment_id: str, couriers: tuple[str, str], at: datetime
) -> None:
    """A relay point: the origin site assigns the next courier, the courier holding the
    shipment offers it to them, and they scan every bag and take it."""
    holder, next_courier = couriers
    with journey.step(f"assign the next {leg.what} courier"):
        assign = pb.AssignCourierRequest(
            operator=leg.origin_operator,
            shipment_id=shipment_id,
            courier_id=next_courier,
            department=leg.origin_department,
        )
        call(journey.world.clients.logistics(leg.origin).AssignCourier, assign)
    offer(journey, leg, shipment_id, holder, f"courier:{next_courier}", at - 10 * MINUTE)
    hand_to_courier(journey, leg, shipment_id, next_courier, f"courier:{holder}", at)


def hand_to_destination(
    journey: Journey, leg: Leg, shipment_id: str, courier_id: str, at: datetime
) -> None:
    """The courier, holding the shipment, offers it to the destination site (who takes it by
    scanning every bag at receipt)."""
    offer(journey, leg, shipment_id, courier_id, leg.receiver, at)


def offer(
    journey: Journey, leg: Leg, shipment_id: str, courier_id: str, receiver: str, at: datetime
) -> None:
    courier = journey.world.clients.courier(courier_id)
    try:
        with journey.step(f"courier hands the {leg.what} shipment over"):
            body = {
                "idempotency_key": str(uuid4()),
                "scanned_at": at.isoformat(),
                "to_party": receiver,
            }
            offered = courier.post(f"/shipments/{shipment_id}/offer", body)
            if offered.get("offered_to") != receiver:
                raise Unexpected(f"the shipment is offered to {offered.get('offered_to')}")
    finally:
        courier.close()


def deliver(
    journey: Journey, leg: Leg, shipment_id: str, courier_party: str, times: Transport
) -> None:
    destination = journey.world.clients.logistics(leg.destination)
    with journey.step(f"upload {leg.what} logger readings"):
        request = readings(journey, leg, shipment_id, times.readings)
        upload = call(destination.UploadTemperatureReadings, request)
        if bool(upload.excursions) != leg.excursion:
            raise Unexpected(f"{len(upload.excursions)} excursion(s); expected {leg.excursion}")
    with journey.step(f"receive {leg.what} shipment"):
        received = call(
            destination.ReceiveShipment,
            pb.ReceiveShipmentRequest(
                operator=leg.destination_operator,
                shipment_id=shipment_id,
                scanned_labels=leg.dins,
                from_party=courier_party,
                received_at=timestamp(times.received),
                department=leg.destination_department,
            ),
        ).shipment
        if received.custodian != leg.receiver:
            raise Unexpected(f"after receipt the custodian is {received.custodian}")
    with journey.step(f"inspect {leg.what} receipt"):
        call(
            destination.InspectReceipt,
            pb.InspectReceiptRequest(
                operator=leg.destination_operator,
                shipment_id=shipment_id,
                intact=True,
                temperature_log_reviewed=True,
                notes="excursion reviewed with QA" if leg.excursion else "",
                inspected_at=timestamp(times.inspected),
            ),
        )


def readings(
    journey: Journey, leg: Leg, shipment_id: str, times: tuple[datetime, ...]
) -> pb.UploadTemperatureReadingsRequest:
    flow = "cryo" if leg.condition == CONDITION_CRYO else "fresh"
    values = (EXCURSION_C if leg.excursion else NORMAL_C)[flow]
    return pb.UploadTemperatureReadingsRequest(
        operator=leg.destination_operator,
        shipment_id=shipment_id,
        readings=[
            pb.TemperatureReading(
                measured_at=timestamp(at),
                temperature_c=value,
                device_id=logger_id(journey, leg),
            )
            for at, value in zip(times, values, strict=True)
        ],
    )
