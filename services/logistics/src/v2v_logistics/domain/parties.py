"""Who is a party to a shipment, who gives it and to whom (I3; issue 13).

A shipment is created by its origin (the caller) from units verified facts relate to it
(`check_shippable`: it packaged or made them, or received them in a shipment); a unit it is
not related to is refused exactly like a unit nobody knows.

A shipment's parties are its origin and destination sites, its assigned courier and whoever
holds it now. A courier token is the party `courier:<ID>` it names; a site certificate or
site token is `site:<ID>`, and a site acting in its courier role is also a party as the
courier company the assigned courier works for (the sites the courier's tokens were issued
for). Nobody else may scan, hand over, receive, upload readings or read the shipment: to them
it does not exist (`NOT_A_PARTY`, answered as NotFound and never recorded, so a refused call
never relates its caller to the chain).

A department of a site (`site:<SITE_ID>/<department>`: collection, gmp, qc, ward) is a party
of its own for custody: a shipment may go from one department of a site to another (an
in-house hospital's collection -> GMP -> QC -> ward; never to the department it comes from,
and within one site only between two named departments: `route_problem`), with the same
scans, offers and handoffs. Its site is the party for authorization: a site is a party to every
shipment one of its departments is a party to, and it acts for a department only in the role
that department stands for (`acting_problem`). A department may ship what its site holds as a
whole; what a department holds, only that department ships.

Custody passes between parties by two authenticated calls, never by a request field: the
custodian offers the shipment to one receiving party (`check_offer`; creating a shipment with
a courier, or assigning the courier while holding it, offers it to that courier), and that
party, having scanned every unit, accepts it (`giver_of_handoff`). The giver is the custodian
who offered; a `from_party` claim naming anyone else is refused as before (`wrong-custodian`).
"""

from __future__ import annotations

from dataclasses import dataclass

from v2v_logistics.domain.matching import (
    NOT_A_PARTY,
    NOT_OFFERED,
    UNKNOWN_UNIT,
    WRONG_CUSTODIAN,
    WRONG_STATE,
    Mismatch,
)
from v2v_logistics.domain.values import (
    COURIER_PREFIX,
    Department,
    KnownUnit,
    courier_party,
    department_of,
    site_of,
    site_party,
)


@dataclass(frozen=True)
class Caller:
    """Who calls, as an adapter authenticated them (never from request fields)."""

    party: str
    """`courier:<ID>` for a courier token, `site:<ID>` for a site certificate or token
    (`site:<ID>/<department>` when the site acts for one of its departments)."""
    courier_role: bool = False
    """A site acting in its courier role (it may be the assigned courier's company)."""

    @classmethod
    def site(cls, site_id: str, courier_role: bool = False) -> Caller:
        return cls(site_party(site_id), courier_role)

    @classmethod
    def courier(cls, courier_id: str) -> Caller:
        return cls(courier_party(courier_id))


@dataclass(frozen=True)
class Offer:
    """The custodian offered the shipment to `to_party` (pending until accepted)."""

    from_party: str
    to_party: str


@dataclass(frozen=True)
class Parties:
    origin_site_id: str
    destination_site_id: str
    assigned_courier_id: str
    custodian: str
    courier_companies: frozenset[str] = frozenset()
    """The sites the assigned courier works for (from the service's own token records)."""
    origin_department: str = ""
    destination_department: str = ""
    """The departments the shipment goes from and to ("": the site as a whole)."""

    @property
    def origin(self) -> str:
        return site_party(self.origin_site_id, self.origin_department)

    @property
    def destination(self) -> str:
        return site_party(self.destination_site_id, self.destination_department)

    def receivers(self) -> frozenset[str]:
        """Who may take the shipment (the custodian excluded): its origin and destination
        (sites or departments), its courier and that courier's companies."""
        named = {self.origin, self.destination}
        if self.assigned_courier_id:
            named.add(courier_party(self.assigned_courier_id))
            named.update(site_party(site) for site in self.courier_companies)
        return frozenset(named - {self.custodian})


def party_of(parties: Parties, caller: Caller) -> Mismatch | str:
    """The caller's party on this shipment, or `NOT_A_PARTY` (answer as if absent)."""
    if caller.party == parties.custodian:
        return caller.party
    if caller.party.startswith(COURIER_PREFIX):
        if parties.assigned_courier_id and caller.party == courier_party(
            parties.assigned_courier_id
        ):
            return caller.party
        return _not_a_party(caller.party)
    site = site_of(caller.party)
    if site in (parties.origin_site_id, parties.destination_site_id):
        return caller.party
    if caller.courier_role and parties.assigned_courier_id and site in parties.courier_companies:
        return caller.party
    return _not_a_party(caller.party)


def acting_problem(party: str, site_id: str, role: str) -> str | None:
    """Why a caller (its authenticated site, in its acting role) may not act as `party`, or
    None: a site acts for one of its departments only in the role that department stands for
    (a site as a whole, or a courier, is checked where it was authenticated)."""
    department = department_of(party)
    if not department:
        return None
    needed = Department(department).role.value
    if site_of(party) != site_id or role != needed:
        return (
            f"{party} is a department of {site_of(party)} acting in the {needed} role; the caller"
            f" is {site_id} acting as {role}"
        )
    return None


def route_problem(origin: str, destination: str) -> str | None:
    """Why a shipment may not go from party `origin` to party `destination` (sites or
    departments), or None: never to where it comes from, and within one site only from one of
    its departments to another."""
    if origin == destination:
        if department_of(origin):
            return f"the destination is the origin department ({origin})"
        return "the destination is the origin site"
    if site_of(origin) == site_of(destination) and not (
        department_of(origin) and department_of(destination)
    ):
        return (
            f"{origin} and {destination} are one site: within a site, a shipment goes from one"
            " of its departments to another (name both departments)"
        )
    return None


def check_offer(parties: Parties, giver: str, to_party: str) -> Mismatch | Offer:
    """The giver's offer of the shipment to `to_party`, or why it may not make it."""
    if giver != parties.custodian:
        return Mismatch(
            WRONG_CUSTODIAN,
            f"{giver} is not the custodian of this shipment ({parties.custodian}): only the"
            " custodian hands it over",
        )
    if to_party == parties.custodian:
        return Mismatch(WRONG_STATE, f"{to_party} already holds the shipment")
    if to_party not in parties.receivers():
        return Mismatch(
            NOT_A_PARTY,
            f"{to_party} is not a party to this shipment: hand it only to its sites or its"
            " assigned courier (assign the courier first)",
        )
    return Offer(giver, to_party)


def check_claimed_giver(custodian: str, claimed: str) -> Mismatch | None:
    """A `from_party` the caller named (optional) must be the custodian."""
    if claimed and claimed != custodian:
        return Mismatch(
            WRONG_CUSTODIAN, f"{claimed} is not the custodian of this shipment ({custodian})"
        )
    return None


def giver_of_handoff(
    custodian: str, offer: Offer | None, receiving_party: str, claimed: str
) -> Mismatch | str:
    """Who gives the shipment to `receiving_party`: the custodian, when it offered the
    shipment to that party by its own call; or why custody cannot pass."""
    wrong_giver = check_claimed_giver(custodian, claimed)
    if wrong_giver is not None:
        return wrong_giver
    if receiving_party == custodian:
        return Mismatch(WRONG_STATE, f"{receiving_party} already holds the shipment")
    if offer is None or offer.from_party != custodian or offer.to_party != receiving_party:
        return Mismatch(
            NOT_OFFERED,
            f"{custodian} has not handed this shipment to {receiving_party}: the custodian"
            " confirms the handoff first",
        )
    return custodian


def _not_a_party(party: str) -> Mismatch:
    return Mismatch(NOT_A_PARTY, f"{party} is not a party to this shipment")


@dataclass(frozen=True)
class UnitCustody:
    """Who holds a unit now, and every party that held it (first custodian, shipments'
    origins and receivers)."""

    custodian: str
    held_by: frozenset[str]


def check_shippable(
    din: str, unit: KnownUnit | None, custody: UnitCustody | None, origin: str
) -> Mismatch | KnownUnit:
    """The unit, when the `origin` party may ship it: verified facts relate the unit to the
    origin's site (refused as `unknown-unit` otherwise, exactly like a unit nobody knows) and
    the origin holds it now (`wrong-custodian`; a department holds what its site holds as a
    whole)."""
    related = {site_of(party) for party in custody.held_by} if custody else set()
    if unit is None or custody is None or site_of(origin) not in related:
        return Mismatch(UNKNOWN_UNIT, f"no unit with DIN {din} is known here")
    if not holds(origin, custody.custodian):
        shown = origin if department_of(origin) else "this site"
        return Mismatch(
            WRONG_CUSTODIAN, f"unit {din} is in the custody of {custody.custodian}, not {shown}"
        )
    return unit


def holds(party: str, custodian: str) -> bool:
    """`party` holds what `custodian` holds: it is the custodian, or a department of the site
    that holds it as a whole."""
    return party == custodian or (
        bool(department_of(party)) and custodian == site_party(site_of(party))
    )
