"""The data logger's readings: recorded once each, excursions outside the range the site's
protocol rules give for the shipment's condition (I5). An upload holds at most MAX_READINGS
readings, each with a finite temperature, taken no later than now (within the clock skew)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from v2v_logistics.domain.values import Reading
from v2v_logistics.views import ExcursionView, ReadingsView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.errors import InvalidInput

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


class Temperatures:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def upload(
        self, shipment_id: str, readings: Sequence[Reading], by: Attribution
    ) -> ReadingsView:
        """Only a party to the shipment uploads (and learns the excursions): its origin or
        destination site, or its assigned courier's company; to any other site the shipment
        does not exist (nothing is recorded)."""
        if not readings:
            raise InvalidInput("a batch of readings needs at least one reading")
        readings = self.checked(readings)

        def attempt() -> ReadingsView:
            shipment = self.app.related(shipment_id, self.app.site_caller(by))
            before = len(shipment.reading_times)
            found = shipment.record_readings(readings, self.app.rules, self.app.authored(by))
            self.app.save(shipment)
            recorded = len(shipment.reading_times) - before
            return ReadingsView(recorded, [ExcursionView.of(e) for e in found])

        return self.app.retrying(attempt)

    def checked(self, readings: Sequence[Reading]) -> list[Reading]:
        limits.check_items(readings, "readings", limits.MAX_READINGS)
        return [
            replace(
                reading,
                measured_at=self.app.when(reading.measured_at, f"readings[{n}].measured_at"),
                temperature_c=limits.check_finite(
                    reading.temperature_c, f"readings[{n}].temperature_c"
                ),
                device_id=limits.check_id(reading.device_id, f"readings[{n}].device_id"),
            )
            for n, reading in enumerate(readings)
        ]
