"""Slot capacity calendar (unpublished records) and slot bookings (published, per COI): set,
book, release, refusals, interrupted bookings and releases, and no overbooking under threads."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.calendar import Reservation, SlotCalendar
from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.domain.slot_booking import SlotBooking, slot_booking_id
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused
from v2v_testkit.manufacturing import (
    AT_GMP,
    COI,
    DAY,
    GMP,
    HOSPITAL,
    OTHER_COI,
    OTHER_GMP,
    InMemoryManufacturingFacts,
    apheresis_din,
    check_concurrent_bookings_never_overbook,
    operator,
)

COLLECTOR = operator(HOSPITAL, "collection", "u-nurse")
SLOT_DAY = date.fromisoformat(DAY)


def published(app: ManufacturingApplication) -> list[Any]:
    return [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]


def internal(app: ManufacturingApplication) -> list[Any]:
    notifications = app.unpublished.recorder.select_notifications(1, 1000)
    return [app.unpublished.mapper.to_domain_event(n) for n in notifications]


def test_set_capacity_then_book_and_release(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    booking = app.book_slot(COI, GMP, DAY, COLLECTOR)
    assert booking.slot_id == f"{GMP}/{DAY}/1"
    view = app.slot_calendar(GMP, DAY, AT_GMP)
    assert (view.capacity, view.booked, view.bookings[0].coi) == (2, 1, COI)
    assert view.bookings[0].booking_site_id == HOSPITAL
    app.release_slot(booking.slot_id, COLLECTOR.because("patient unwell"))
    assert app.slot_calendar(GMP, DAY, AT_GMP).booked == 0


def test_slot_ids_never_repeat_after_release(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    first = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
    app.release_slot(first, COLLECTOR.because("rescheduled"))
    second = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
    assert first != second


def test_full_day_is_refused_as_exhausted(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    app.book_slot(COI, GMP, DAY, COLLECTOR)
    with pytest.raises(SlotsExhausted) as refused:
        app.book_slot(COI, GMP, DAY, COLLECTOR)
    assert refused.value.grpc_code == "RESOURCE_EXHAUSTED"


def test_day_without_capacity_is_exhausted(app: ManufacturingApplication) -> None:
    with pytest.raises(SlotsExhausted):
        app.book_slot(COI, GMP, DAY, COLLECTOR)


def test_capacity_cannot_drop_below_bookings(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    app.book_slot(COI, GMP, DAY, COLLECTOR)
    app.book_slot(COI, GMP, DAY, COLLECTOR)
    with pytest.raises(Refused, match="below"):
        app.set_slot_capacity(GMP, DAY, 1, operator())
    app.set_slot_capacity(GMP, DAY, 4, operator())
    assert app.slot_calendar(GMP, DAY, AT_GMP).capacity == 4


def test_only_the_site_itself_sets_its_capacity(app: ManufacturingApplication) -> None:
    with pytest.raises(Forbidden):
        app.set_slot_capacity(GMP, DAY, 3, operator(OTHER_GMP))
    with pytest.raises(NotFound):
        app.set_slot_capacity(OTHER_GMP, DAY, 3, operator())


def test_calendars_of_other_sites_are_not_kept_here(app: ManufacturingApplication) -> None:
    with pytest.raises(NotFound):
        app.book_slot(COI, OTHER_GMP, DAY, COLLECTOR)
    with pytest.raises(NotFound):
        app.release_slot(f"{OTHER_GMP}/{DAY}/1", COLLECTOR.because("x"))
    with pytest.raises(NotFound):
        app.slot_calendar(OTHER_GMP, DAY, AT_GMP)


def test_booking_is_authored_by_this_site_for_the_requesting_site(
    app: ManufacturingApplication,
) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    slot_id = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
    [booked] = published(app)  # the calendar's capacity is not published
    assert isinstance(booked, SlotBooking.Booked)
    assert booked.originator_id == slot_booking_id(slot_id)
    assert (booked.site_id, booked.booking_site_id, booked.slot_id) == (GMP, HOSPITAL, slot_id)
    assert booked.actor == {
        "user_id": "u-nurse",
        "printed_name": "Operator u-nurse",
        "role": "collection",
    }
    assert booked.coi == COI  # on the booked COI's chain: its Kafka key


def test_calendar_is_internal(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    app.set_slot_capacity(GMP, DAY, 3, operator())
    slot_id = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
    app.release_slot(slot_id, COLLECTOR.because("patient unwell"))
    kinds = [type(e) for e in internal(app)]
    assert kinds == [
        SlotCalendar.Opened,
        SlotCalendar.CapacitySet,
        SlotCalendar.SlotReserved,
        SlotCalendar.SlotFreed,
    ]
    assert [type(e) for e in published(app)] == [SlotBooking.Booked, SlotBooking.Released]
    released = published(app)[1]
    assert (released.coi, released.reason, released.site_id) == (COI, "patient unwell", GMP)


@pytest.mark.parametrize("capacity", [-1, 1001])
def test_capacity_out_of_range_is_invalid(app: ManufacturingApplication, capacity: int) -> None:
    with pytest.raises(InvalidInput):
        app.set_slot_capacity(GMP, DAY, capacity, operator())


def test_malformed_inputs_are_invalid(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    with pytest.raises(InvalidInput):
        app.book_slot("NOT-A-COI", GMP, DAY, COLLECTOR)
    with pytest.raises(InvalidInput):
        app.book_slot(COI, GMP, "02/06/2025", COLLECTOR)
    with pytest.raises(InvalidInput):
        app.release_slot("nonsense", COLLECTOR.because("x"))


def test_release_refusals(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    slot_id = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
    with pytest.raises(InvalidInput, match="reason"):
        app.release_slot(slot_id, COLLECTOR)
    with pytest.raises(NotFound, match=f"slot {slot_id} is not booked"):  # as if free
        app.release_slot(slot_id, operator("HOSP-Z", "collection").because("mine"))
    with pytest.raises(NotFound):
        app.release_slot(f"{GMP}/{DAY}/9", COLLECTOR.because("x"))
    app.release_slot(slot_id, operator().because("device down"))  # the GMP site itself may
    with pytest.raises(NotFound):
        app.release_slot(slot_id, COLLECTOR.because("twice"))


def test_concurrent_bookings_never_overbook(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    check_concurrent_bookings_never_overbook(app, facts)


def test_stale_calendar_cannot_be_saved(app: ManufacturingApplication) -> None:
    """The optimistic concurrency the no-overbooking rule relies on."""
    app.set_slot_capacity(GMP, DAY, 1, operator())
    unpublished = app.unpublished
    calendar_id = SlotCalendar.create_id(GMP, SLOT_DAY)
    first: SlotCalendar = unpublished.repository.get(calendar_id)
    second: SlotCalendar = unpublished.repository.get(calendar_id)
    first.reserve(COI, HOSPITAL, operator())
    second.reserve(OTHER_COI, HOSPITAL, operator())
    unpublished.save(first)
    with pytest.raises(IntegrityError):
        unpublished.save(second)


# a crash between the two saves of a booking (capacity reserved, booking not recorded)


def interrupted_booking(app: ManufacturingApplication, coi: str = COI) -> str:
    """The first save of a booking, as if the process died right after it."""
    return app.unpublished.reserve_slot(GMP, SLOT_DAY, coi, HOSPITAL, COLLECTOR).slot_id


def reservation_of(app: ManufacturingApplication, slot_id: str) -> Reservation:
    calendar = app.unpublished.calendar(GMP, SLOT_DAY)
    assert calendar is not None
    return calendar.reservation(slot_id)


def test_interrupted_booking_is_visible_as_unrecorded(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    slot_id = interrupted_booking(app)
    view = app.slot_calendar(GMP, DAY, AT_GMP)
    assert view.booked == 1  # the capacity stays held: never overbooked
    assert [(b.slot_id, b.coi, b.recorded) for b in view.unrecorded] == [(slot_id, COI, False)]
    assert not published(app)


def test_retried_booking_completes_the_interrupted_one(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    slot_id = interrupted_booking(app)
    assert app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id == slot_id  # the same slot
    view = app.slot_calendar(GMP, DAY, AT_GMP)
    assert view.booked == 1 and not view.unrecorded
    [booked] = published(app)
    assert (booked.coi, booked.slot_id) == (COI, slot_id)
    second = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id  # a new booking, not a retry
    assert second != slot_id and app.slot_calendar(GMP, DAY, AT_GMP).booked == 2


def test_retry_of_a_recorded_booking_cannot_record_it_twice(
    app: ManufacturingApplication,
) -> None:
    """The second step is idempotent: the booking's id is derived from the slot id."""
    app.set_slot_capacity(GMP, DAY, 2, operator())
    slot_id = interrupted_booking(app)
    reservation = reservation_of(app, slot_id)
    app.save(SlotBooking.book(reservation, GMP, DAY, operator(GMP, "collection", "u-nurse")))
    with pytest.raises(IntegrityError):
        app.save(SlotBooking.book(reservation, GMP, DAY, operator(GMP, "collection", "u-2")))
    assert len(published(app)) == 1


def test_interrupted_booking_of_another_coi_or_site_is_not_taken_over(
    app: ManufacturingApplication,
) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    mine = interrupted_booking(app)
    other_coi = app.book_slot(OTHER_COI, GMP, DAY, COLLECTOR).slot_id
    with pytest.raises(NotFound):  # another site books no slot of this COI at all (issue 13)
        app.book_slot(COI, GMP, DAY, operator("HOSP-Z", "collection"))
    assert mine != other_coi
    with pytest.raises(SlotsExhausted):  # the interrupted one still holds its capacity
        app.book_slot(OTHER_COI, GMP, DAY, COLLECTOR)
    assert [b.slot_id for b in app.slot_calendar(GMP, DAY, AT_GMP).unrecorded] == [mine]


def test_releasing_an_unrecorded_slot_frees_its_capacity(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    slot_id = interrupted_booking(app)
    app.release_slot(slot_id, operator().because("booking never completed"))
    assert app.slot_calendar(GMP, DAY, AT_GMP).booked == 0
    assert not published(app)  # nothing was on any chain, nothing to release there
    assert app.book_slot(OTHER_COI, GMP, DAY, COLLECTOR).slot_id != slot_id


def test_interrupted_release_is_finished_by_a_retry(app: ManufacturingApplication) -> None:
    """Released on the chain first, then freed: a crash in between holds the capacity."""
    app.set_slot_capacity(GMP, DAY, 1, operator())
    slot_id = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
    booking: SlotBooking = app.repository.get(slot_booking_id(slot_id))
    booking.release(operator().because("device down"))
    app.save(booking)  # "crashed" before the capacity was freed
    view = app.slot_calendar(GMP, DAY, AT_GMP)
    assert view.booked == 1 and [b.slot_id for b in view.unrecorded] == [slot_id]
    with pytest.raises(SlotsExhausted):
        app.book_slot(OTHER_COI, GMP, DAY, COLLECTOR)
    app.release_slot(slot_id, operator().because("device down"))
    assert app.slot_calendar(GMP, DAY, AT_GMP).booked == 0
    assert [type(e) for e in published(app)] == [SlotBooking.Booked, SlotBooking.Released]


def test_slot_freed_while_its_booking_was_recorded_is_withdrawn(
    app: ManufacturingApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release of a slot whose booking is in flight: the booking notices and withdraws."""
    app.set_slot_capacity(GMP, DAY, 1, operator())
    record = app.slots._record_booking

    def release_meanwhile(*args: Any) -> None:
        reservation = args[0]
        app.unpublished.free_slot(GMP, SLOT_DAY, reservation.slot_id, operator())
        record(*args)

    monkeypatch.setattr(app.slots, "_record_booking", release_meanwhile)
    with pytest.raises(Conflict, match="released while"):
        app.book_slot(COI, GMP, DAY, COLLECTOR)
    kinds = [type(e) for e in published(app)]
    assert kinds == [SlotBooking.Booked, SlotBooking.Released]  # withdrawn on the chain
    assert app.slot_calendar(GMP, DAY, AT_GMP).booked == 0


def test_booking_recorded_while_its_slot_was_released_is_released_too(
    app: ManufacturingApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the release frees the capacity, then sees the booking and releases it."""
    app.set_slot_capacity(GMP, DAY, 1, operator())
    slot_id = interrupted_booking(app)
    reservation = reservation_of(app, slot_id)
    free = app.unpublished.free_slot

    def booking_recorded_meanwhile(*args: Any) -> None:
        free(*args)
        app.save(SlotBooking.book(reservation, GMP, DAY, operator(GMP, "collection")))

    monkeypatch.setattr(app.unpublished, "free_slot", booking_recorded_meanwhile)
    app.release_slot(slot_id, operator().because("booking never completed"))
    kinds = [type(e) for e in published(app)]
    assert kinds == [SlotBooking.Booked, SlotBooking.Released]
    assert not app.repository.get(slot_booking_id(slot_id)).is_booked


def test_receipt_needs_the_booking_on_the_chain(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    """A reserved-but-unrecorded slot does not let a unit in."""
    app.set_slot_capacity(GMP, DAY, 1, operator())
    slot_id = interrupted_booking(app)
    facts.slot_booked(COI, GMP, slot_id)
    din = apheresis_din(1)
    facts.package(din)
    with pytest.raises(Refused, match="no-slot"):
        app.receive_unit(din, COI, operator())
    assert app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id == slot_id  # the retry
    assert app.receive_unit(din, COI, operator()).slot_id == slot_id
