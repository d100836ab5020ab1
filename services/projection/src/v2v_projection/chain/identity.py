"""One DIN, one patient (I1) across chains: which facts bind a DIN to their chain's COI, and an
index of the DINs bound to more than one COI (or infused under more than one).

A chain's derivation sees its own facts only, so a DIN issued twice under one FIN (two
services numbering from the same sequence) shows on no single chain. The fold feeds the
index as it takes envelopes (`BINDERS`: only the event types that bind a unit are decoded),
and each chain's derivation is handed the conflicts of its COI. `v2v audit verify` uses the
same binders over an export.

The index depends only on the SET of facts: per (DIN, COI) it keeps the earliest binding in
(occurred_at, event_id) order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing

DIN_DATA = 13  # FIN (5) + year (2) + sequence (6): one donation number; flags follow

Binder = Callable[[bytes], Sequence[str]]


def _one(message_class: Any) -> Binder:
    decode = message_class.FromString
    return lambda payload: (decode(payload).din,)


def _products(payload: bytes) -> Sequence[str]:
    made = manufacturing.ProductUnitsCreated.FromString(payload)
    return [*made.product_dins, *made.input_dins]


BINDERS: dict[str, Binder] = {
    intake.UnitLabelled.DESCRIPTOR.full_name: _one(intake.UnitLabelled),
    manufacturing.ProductUnitsCreated.DESCRIPTOR.full_name: _products,
    infusion.InfusionAdministered.DESCRIPTOR.full_name: _one(infusion.InfusionAdministered),
}
"""Event type -> the DINs it binds to its chain's COI: the facts that number a unit for a
patient (a bag labelled at intake; a batch's product units, and the input units they were
made from: outputs inherit their inputs' COI), as `v2v_platform.ids.bindings` defines them,
and an infusion (the unit went into this patient). Every other use of a DIN (receipt,
shipment, batch start, ward receipt) follows from these facts in the services, which refuse
a conflicted DIN; refusals (mismatch events) bind nothing: they name what was scanned. Only
these payloads are decoded on the fold's hot path (about 6 % of the events)."""
INFUSED = infusion.InfusionAdministered.DESCRIPTOR.full_name


class Binding(NamedTuple):
    """The earliest fact binding a DIN to a COI: when, which event, by whom, the DIN as the
    event wrote it, and what the caller needs to point at it (the audit: the record)."""

    at_ns: int
    event_id: str
    site_id: str
    din: str
    ref: Any = None

    def key(self) -> tuple[int, str]:
        return (self.at_ns, self.event_id)


Conflict = dict[str, Binding]  # COI -> its earliest binding of one DIN (two or more COIs)


Single = tuple[str, int, str, str, str, Any]  # COI and a Binding's fields, flat (fast)
_new_binding = tuple.__new__  # a NamedTuple without its Python-level __new__


class DinIndex:
    """DIN -> the COIs it is bound to. One flat tuple per DIN while it has one COI (the common
    case: the fold's hot path pays a dict lookup and a comparison), a map of COIs once it has
    more."""

    def __init__(self) -> None:
        self._single: dict[str, Single] = {}
        self._multi: dict[str, Conflict] = {}
        self._by_coi: dict[str, set[str]] = {}

    def bind(
        self, din: str, coi: str, at_ns: int, event_id: str, site_id: str, ref: Any = None
    ) -> tuple[str, ...]:
        """Note that a fact (at `at_ns`, `event_id`, by `site_id`) binds `din` to `coi`.
        Returns the COIs whose conflicts changed (empty unless the DIN is, or now becomes,
        bound to two COIs)."""
        data = din[:DIN_DATA]
        single = self._single.get(data)
        if single is not None and single[0] == coi:
            if (at_ns, event_id) < (single[1], single[2]):
                self._single[data] = (coi, at_ns, event_id, site_id, din, ref)
            return ()
        multi = self._multi.get(data)
        if multi is None:
            if single is None:
                self._single[data] = (coi, at_ns, event_id, site_id, din, ref)
                return ()
            del self._single[data]
            multi = self._multi[data] = {single[0]: _new_binding(Binding, single[1:])}
        found = multi.get(coi)
        if found is not None and found.key() <= (at_ns, event_id):
            return ()
        multi[coi] = Binding(at_ns, event_id, site_id, din, ref)
        for bound in multi:
            self._by_coi.setdefault(bound, set()).add(data)
        return tuple(multi)

    def conflicts_of(self, coi: str) -> list[tuple[str, Conflict]]:
        """(DIN data, COI -> earliest binding) of every DIN bound to `coi` and another COI."""
        return [(data, self._multi[data]) for data in sorted(self._by_coi.get(coi, ()))]

    def conflicts(self) -> list[tuple[str, Conflict]]:
        return [(data, self._multi[data]) for data in sorted(self._multi)]


def in_binding_order(conflict: Conflict) -> list[tuple[str, Binding]]:
    """The COIs of a conflict, first bound first."""
    return sorted(conflict.items(), key=lambda item: (item[1].key(), item[0]))


def bound_dins(event_type: str, payload: bytes) -> Iterable[str]:
    binder = BINDERS.get(event_type)
    return binder(payload) if binder is not None else ()
