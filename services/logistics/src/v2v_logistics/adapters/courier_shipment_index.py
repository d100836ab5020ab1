"""Which shipments concern which courier (`ports.CourierShipmentIndex`): a small read model
that follows the logistics event store.

It reads the application's own notification log from where it last stopped, so it is always
re-derivable from the events (nothing else to keep durable) and sees shipments recorded by
other processes sharing the store. Candidates are re-checked against the shipment itself.
"""

from __future__ import annotations

import threading
from typing import Any

from v2v_logistics.domain.values import COURIER_PREFIX

PAGE = 500
TOPIC_PREFIX = "v2v_logistics.domain.shipment:Shipment."
WATCHED = ("Created", "CourierAssigned", "CustodyHandedOver")


class EventStoreCourierShipmentIndex:
    def __init__(self, recorder: Any, mapper: Any) -> None:
        self._recorder = recorder
        self._mapper = mapper
        self._position = 0
        self._by_courier: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def shipments_of_courier(self, courier_id: str) -> list[str]:
        with self._lock:
            self._catch_up()
            return sorted(self._by_courier.get(courier_id, set()))

    def _catch_up(self) -> None:
        topics = [TOPIC_PREFIX + name for name in WATCHED]
        while True:
            page = self._recorder.select_notifications(
                self._position, PAGE, topics=topics, inclusive_of_start=False
            )
            for notification in page:
                self._fold(self._mapper.to_domain_event(notification))
                self._position = notification.id
            if len(page) < PAGE:
                return

    def _fold(self, event: Any) -> None:
        shipment_id = str(event.originator_id)
        for courier_id in _couriers_named(event):
            self._by_courier.setdefault(courier_id, set()).add(shipment_id)


def _couriers_named(event: Any) -> list[str]:
    named = [
        getattr(event, "assigned_courier_id", ""),
        getattr(event, "courier_id", ""),
        getattr(event, "to_party", "").removeprefix(COURIER_PREFIX)
        if getattr(event, "to_party", "").startswith(COURIER_PREFIX)
        else "",
    ]
    return [courier_id for courier_id in named if courier_id]
