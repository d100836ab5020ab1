"""Slot capacity calendar: set, book, release, refusals, and no overbooking under threads."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.calendar import SlotCalendar
from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.testing import COI, DAY, GMP, HOSPITAL, OTHER_GMP, operator
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, Refused

COLLECTOR = operator(HOSPITAL, "collection", "u-nurse")


def test_set_capacity_then_book_and_release(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 2, operator())
    booking = app.book_slot(COI, GMP, DAY, COLLECTOR)
    assert booking.slot_id == f"{GMP}/{DAY}/1"
    view = app.slot_calendar(GMP, DAY)
    assert (view.capacity, view.booked, view.bookings[0].coi) == (2, 1, COI)
    assert view.bookings[0].booking_site_id == HOSPITAL
    app.release_slot(booking.slot_id, COLLECTOR.because("patient unwell"))
    assert app.slot_calendar(GMP, DAY).booked == 0


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
    assert app.slot_calendar(GMP, DAY).capacity == 4


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
        app.slot_calendar(OTHER_GMP, DAY)


def test_booking_is_authored_by_this_site_for_the_requesting_site(
    app: ManufacturingApplication,
) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    app.book_slot(COI, GMP, DAY, COLLECTOR)
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 10)]
    booked = next(e for e in events if isinstance(e, SlotCalendar.SlotBooked))
    assert (booked.site_id, booked.booking_site_id, booked.booked_coi) == (GMP, HOSPITAL, COI)
    assert booked.actor == {
        "user_id": "u-nurse",
        "printed_name": "Operator u-nurse",
        "role": "collection",
    }
    assert booked.coi == ""  # a site-level fact: the calendar stream stays on one partition


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
    with pytest.raises(Refused, match="only that site"):
        app.release_slot(slot_id, operator("HOSP-Z", "collection").because("mine"))
    with pytest.raises(NotFound):
        app.release_slot(f"{GMP}/{DAY}/9", COLLECTOR.because("x"))
    app.release_slot(slot_id, operator().because("device down"))  # the GMP site itself may
    with pytest.raises(NotFound):
        app.release_slot(slot_id, COLLECTOR.because("twice"))


def test_concurrent_bookings_never_overbook(app: ManufacturingApplication) -> None:
    app.set_slot_capacity(GMP, DAY, 5, operator())
    start = threading.Barrier(20)
    booked: list[str] = []
    exhausted: list[SlotsExhausted] = []
    lock = threading.Lock()

    def book() -> None:
        start.wait()
        try:
            slot_id = app.book_slot(COI, GMP, DAY, COLLECTOR).slot_id
        except SlotsExhausted as error:
            with lock:
                exhausted.append(error)
        else:
            with lock:
                booked.append(slot_id)

    threads = [threading.Thread(target=book) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(booked) == 5 and len(set(booked)) == 5
    assert len(exhausted) == 15
    assert app.slot_calendar(GMP, DAY).booked == 5


def test_stale_calendar_cannot_be_saved(app: ManufacturingApplication) -> None:
    """The optimistic concurrency the no-overbooking rule relies on."""
    app.set_slot_capacity(GMP, DAY, 1, operator())
    calendar_id = SlotCalendar.create_id(GMP, date.fromisoformat(DAY))
    first: SlotCalendar = app.repository.get(calendar_id)
    second: SlotCalendar = app.repository.get(calendar_id)
    first.book(COI, HOSPITAL, operator())
    second.book(COI, HOSPITAL, operator())
    app.save(first)
    with pytest.raises(IntegrityError):
        app.save(second)
