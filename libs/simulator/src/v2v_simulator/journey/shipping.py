"""A shipment between two sites through the logistics service: the origin site creates it
(once logistics knows the units from Kafka), which offers it to its courier; the courier
scans every bag and takes custody over the courier HTTP API, and at the destination hands it
over (offers it to the destination site); the destination uploads the data logger's
readings, receives the shipment scanning exactly the manifest, and inspects it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from v2v.common.v1.common_pb2 import CONDITION_CRYO, Condition, Operator
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.consortium import COURIERS
from v2v_simulator.journey.context import Journey, Unexpected

NORMAL_C = {"cryo": (-190.0, -185.0, -183.0, -186.0), "fresh": (4.0, 5.0, 5.5, 4.5)}
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


def ship(journey: Journey, leg: Leg) -> None:
    clients = journey.world.clients
    courier_id = COURIERS[(journey.plan.number + len(leg.what)) % len(COURIERS)][0]
    create = pb.CreateShipmentRequest(
        operator=leg.origin_operator,
        manifest_dins=leg.dins,
        condition=leg.condition,
        destination_site_id=leg.destination,
        shipper_id=f"{'DEWAR' if leg.condition == CONDITION_CRYO else 'BOX'}-{journey.plan.number}",
        data_logger_id=logger_id(journey, leg),
        courier_id=courier_id,
    )
    origin = clients.logistics(leg.origin)
    with journey.step(f"create {leg.what} shipment"):
        shipment = journey.once_known(
            lambda: call(origin.CreateShipment, create).shipment,
            f"logistics to know the {leg.what} units",
        )
    hand_to_courier(journey, leg, shipment.shipment_id, courier_id)
    hand_to_destination(journey, leg, shipment.shipment_id, courier_id)
    deliver(journey, leg, shipment.shipment_id, f"courier:{courier_id}")


def logger_id(journey: Journey, leg: Leg) -> str:
    return f"LOGGER-{journey.plan.number}-{leg.what}"


def scan(from_party: str, **fields: str) -> dict[str, Any]:
    return {
        "idempotency_key": str(uuid4()),
        "scanned_at": datetime.now(UTC).isoformat(),
        "from_party": from_party,
        **fields,
    }


def hand_to_courier(journey: Journey, leg: Leg, shipment_id: str, courier_id: str) -> None:
    courier = journey.world.clients.courier(courier_id)
    giver = f"site:{leg.origin}"
    try:
        for din in leg.dins:
            with journey.step(f"courier scans {leg.what} bag"):
                courier.post(f"/shipments/{shipment_id}/scans", scan(giver, label=din))
        with journey.step(f"courier takes the {leg.what} shipment"):
            handed = courier.post(f"/shipments/{shipment_id}/handoff", scan(giver))
            if handed.get("custodian") != courier.party:
                raise Unexpected(f"after the handoff the custodian is {handed.get('custodian')}")
    finally:
        courier.close()


def hand_to_destination(journey: Journey, leg: Leg, shipment_id: str, courier_id: str) -> None:
    """The courier, holding the shipment, offers it to the destination site (who takes it by
    scanning every bag at receipt)."""
    courier = journey.world.clients.courier(courier_id)
    receiver = f"site:{leg.destination}"
    try:
        with journey.step(f"courier hands the {leg.what} shipment over"):
            offer = {
                "idempotency_key": str(uuid4()),
                "scanned_at": datetime.now(UTC).isoformat(),
                "to_party": receiver,
            }
            offered = courier.post(f"/shipments/{shipment_id}/offer", offer)
            if offered.get("offered_to") != receiver:
                raise Unexpected(f"the shipment is offered to {offered.get('offered_to')}")
    finally:
        courier.close()


def deliver(journey: Journey, leg: Leg, shipment_id: str, courier_party: str) -> None:
    destination = journey.world.clients.logistics(leg.destination)
    with journey.step(f"upload {leg.what} logger readings"):
        upload = call(destination.UploadTemperatureReadings, readings(journey, leg, shipment_id))
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
            ),
        ).shipment
        if received.custodian != f"site:{leg.destination}":
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
            ),
        )


def readings(journey: Journey, leg: Leg, shipment_id: str) -> pb.UploadTemperatureReadingsRequest:
    flow = "cryo" if leg.condition == CONDITION_CRYO else "fresh"
    values = (EXCURSION_C if leg.excursion else NORMAL_C)[flow]
    now = datetime.now(UTC)
    return pb.UploadTemperatureReadingsRequest(
        operator=leg.destination_operator,
        shipment_id=shipment_id,
        readings=[
            pb.TemperatureReading(
                measured_at=timestamp(now - timedelta(seconds=5 * (len(values) - n))),
                temperature_c=value,
                device_id=logger_id(journey, leg),
            )
            for n, value in enumerate(values)
        ],
    )
