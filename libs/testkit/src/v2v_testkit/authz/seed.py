"""The records one seeded patient journey left in the running consortium, by identifier.

The request builders name these records (so a NOT_FOUND answer can only mean "refused");
the judge looks for these identifiers in the answers unrelated callers get.
"""

from __future__ import annotations

from dataclasses import dataclass

DIN_CORE_CHARS = 13
"""A DIN without its flags and check character: FIN (5) + year (2) + sequence (6)."""


@dataclass(frozen=True)
class Person:
    """Someone who acts at a site: the operator of a command, or an e-signer."""

    user_id: str
    printed_name: str
    password: str = ""


@dataclass(frozen=True)
class SeededShipment:
    shipment_id: str
    origin: str
    destination: str
    courier_id: str
    dins: tuple[str, ...]


@dataclass(frozen=True)
class People:
    """Who acts in the builders' requests: the hospital's collection staff, two nurses and
    physician, the GMP site's operator, analyst and qualified person (a person who
    re-authenticates or e-signs has their password)."""

    collector: Person
    nurse: Person
    second_nurse: Person
    physician: Person
    gmp_operator: Person
    analyst: Person
    qp: Person


@dataclass(frozen=True)
class Seed:
    """One patient's complete journey: enrolled and treated at `hospital`, manufactured and
    released at `gmp`, shipped through `logistics`; `auditor` reads everything."""

    coi: str
    hospital: str
    gmp: str
    logistics: str
    auditor: str
    slot_id: str
    slot_date: str
    spare_slot_ids: tuple[str, str]
    """Two more slots booked for the COI, one for each twin of "release a slot" (the gRPC
    method and the HTTP route), so the second still names a booked slot."""
    collection_id: str
    apheresis_dins: tuple[str, ...]
    batch_id: str
    product_dins: tuple[str, ...]
    apheresis_shipment: SeededShipment
    product_shipment: SeededShipment
    failure_ids: tuple[str, ...]
    free_courier: str
    """A courier with a token and no part in any seeded shipment (the unrelated courier)."""
    people: People
    courier_password: str = ""
    """What the couriers sign in with (with their token) on the courier page."""

    @property
    def apheresis_din(self) -> str:
        return self.apheresis_dins[0]

    @property
    def product_din(self) -> str:
        return self.product_dins[0]

    @property
    def failure_id(self) -> str:
        return self.failure_ids[0] if self.failure_ids else ""

    def identifiers(self) -> tuple[str, ...]:
        """What no answer to an unrelated caller may contain: the COI, every DIN (its core,
        whatever flags or check character an answer prints), the batch, shipments, slots,
        the collection and the post-release failures."""
        dins = (*self.apheresis_dins, *self.product_dins)
        found = (
            self.coi,
            *(din[:DIN_CORE_CHARS] for din in dins),
            self.batch_id,
            self.apheresis_shipment.shipment_id,
            self.product_shipment.shipment_id,
            self.slot_id,
            *self.spare_slot_ids,
            self.collection_id,
            *self.failure_ids,
        )
        return tuple(dict.fromkeys(value for value in found if value))

    def leaked(self, answer: str) -> list[str]:
        """The seeded identifiers that appear in `answer`."""
        return [value for value in self.identifiers() if value in answer]
