"""What a browser test needs from a running logistics service: a courier and a shipment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CourierScenario:
    url: str
    token: str
    courier_id: str
    courier_name: str
    shipment_id: str
    origin_site_id: str
    manifest: list[str]
    other_coi_din: str
    destination_site_id: str
    password: str
    coi: str
    """The shipment's COI (what its bags' labels print)."""

    @property
    def origin_party(self) -> str:
        return f"site:{self.origin_site_id}"

    @property
    def courier_party(self) -> str:
        return f"courier:{self.courier_id}"
