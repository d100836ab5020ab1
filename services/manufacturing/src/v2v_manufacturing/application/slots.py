"""Slot calendars (capacity, in the unpublished records) and slot bookings (on the COI's chain).

Who may do what (issue 13): a slot is booked only by the site that enrolled the COI's patient,
as intake's verified `PatientEnrolled` told this service (`ManufacturingFacts.enrolment`);
any other site, and a COI not (yet) known here, is told NotFound, as if the COI did not exist,
before anything is reserved. A slot is released by its booking site or this site (NotFound to
any other). The calendar shows every caller the day's capacity and number booked, but the
bookings themselves only to the site that made them (all of them to this site and auditors).

Booking a slot takes two saves: the capacity is reserved in the calendar (unpublished
records), then the `SlotBooking` is recorded on the COI's chain (published). A retry of a
booking interrupted between the two (same COI, same requesting site, same day) completes the
reservation it left instead of reserving another: the slot id is the calendar's, and recording
it twice collides on the `SlotBooking`'s id derived from it. Releasing records the release on
the chain first, then frees the capacity; a retry finishes it. Until then the calendar view
shows the slot as not recorded (`BookedSlotView.recorded`).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError

from v2v_manufacturing.domain.calendar import (
    Reservation,
    SlotCalendar,
    check_may_release,
    parse_slot_id,
)
from v2v_manufacturing.domain.slot_booking import SlotBooking, slot_booking_id
from v2v_manufacturing.domain.values import parse_slot_date
from v2v_manufacturing.views import BookedSlotView, BookingView, CalendarView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Conflict, NotFound
from v2v_platform.scope import Scope
from v2v_platform.service_application import parse_coi

if TYPE_CHECKING:
    from v2v_manufacturing.application import ManufacturingApplication

log = logging.getLogger("v2v.manufacturing")


class SlotBookings:
    def __init__(self, app: ManufacturingApplication) -> None:
        self.app = app

    def set_capacity(
        self, manufacturing_site_id: str, slot_date: str, capacity: int, by: Attribution
    ) -> CalendarView:
        by = self.app.check_local(by)
        self._check_served(manufacturing_site_id)
        day = parse_slot_date(slot_date)
        calendar = self.app.unpublished.set_capacity(self.app.site_id, day, capacity, by)
        return self._calendar_view(calendar)

    def book(
        self, coi: str, manufacturing_site_id: str, slot_date: str, by: Attribution
    ) -> BookingView:
        limits.check_attribution(by)  # a booking site's command: recorded before `authored`
        booked_coi = parse_coi(coi).value
        day = parse_slot_date(slot_date)
        self._check_served(manufacturing_site_id)
        self._check_enrolled_by(booked_coi, by.site_id)
        reservation = self._unrecorded_reservation(manufacturing_site_id, day, booked_coi, by)
        if reservation is None:
            reservation = self.app.unpublished.reserve_slot(
                manufacturing_site_id, day, booked_coi, by.site_id, by
            )
        else:
            log.warning(
                "slot %s: completing the booking of COI %s for %s, interrupted after its"
                " capacity was reserved",
                reservation.slot_id,
                booked_coi,
                by.site_id,
            )
        self._record_booking(reservation, manufacturing_site_id, day, by)
        if not self._still_reserved(reservation, manufacturing_site_id, day):
            self._release_on_chain(
                reservation.slot_id, by.because("the slot was released while being booked")
            )
            raise Conflict(f"slot {reservation.slot_id} was released while it was being booked")
        return BookingView(reservation.slot_id, manufacturing_site_id, day.isoformat())

    def release(self, slot_id: str, by: Attribution) -> None:
        limits.check_attribution(by)  # a booking site's command: recorded before `authored`
        site_id, day = parse_slot_id(slot_id)
        self._check_served(site_id)
        calendar = self.app.unpublished.calendar(site_id, day)
        if calendar is None:
            raise NotFound(f"slot {slot_id} is not booked")
        check_may_release(calendar.reservation(slot_id), site_id, by.site_id, by.reason)
        self._release_on_chain(slot_id, by)  # first: the capacity is never freed early
        self.app.unpublished.free_slot(site_id, day, slot_id, by)
        # a booking of this slot recorded meanwhile (its reservation was in flight) goes too;
        # `book` checks the other way round, so one of the two always sees the other
        self._release_on_chain(slot_id, by)

    def calendar(self, manufacturing_site_id: str, slot_date: str, scope: Scope) -> CalendarView:
        """The day's calendar of this site, to any caller the adapters let in: its capacity
        and number booked, with the caller's own bookings only (every booking to this site
        and to auditors)."""
        self._check_served(manufacturing_site_id)
        day = parse_slot_date(slot_date)
        calendar = self.app.unpublished.calendar(manufacturing_site_id, day)
        if calendar is None:
            return CalendarView(manufacturing_site_id, day.isoformat(), 0)
        view = self._calendar_view(calendar)
        if scope.sees_everything or scope.acts_for(self.app.site_id):
            return view
        return view.booked_by(scope.site_id)

    def _check_served(self, manufacturing_site_id: str) -> None:
        limits.check_id(manufacturing_site_id, "manufacturing_site_id")
        if manufacturing_site_id != self.app.site_id:
            raise NotFound(
                f"this service keeps the slot calendar of {self.app.site_id},"
                f" not {manufacturing_site_id}"
            )

    def _check_enrolled_by(self, coi: str, site_id: str) -> None:
        """NotFound, as if the COI did not exist, unless `site_id` enrolled its patient."""
        enrolment = self.app.facts.enrolment(coi)
        enrolling_site = enrolment.enrolling_site_id if enrolment is not None else None
        Scope(site_id).require_related([enrolling_site], f"COI {coi}")

    def _calendar_view(self, calendar: SlotCalendar) -> CalendarView:
        return CalendarView(
            calendar.manufacturing_site_id,
            calendar.slot_date.isoformat(),
            calendar.capacity,
            calendar.booked,
            [
                BookedSlotView(r.slot_id, r.coi, r.booking_site_id, self._is_recorded(r))
                for r in calendar.reservations.values()
            ],
        )

    def _is_recorded(self, reservation: Reservation) -> bool:
        booking = self.app.find(SlotBooking, slot_booking_id(reservation.slot_id))
        return booking is not None and booking.is_booked

    def _unrecorded_reservation(
        self, site_id: str, day: date, coi: str, by: Attribution
    ) -> Reservation | None:
        """A reservation of this COI by this site whose booking was never recorded."""
        calendar = self.app.unpublished.calendar(site_id, day)
        if calendar is None:
            return None
        for reservation in calendar.reservations_for(coi, by.site_id):
            if self.app.find(SlotBooking, slot_booking_id(reservation.slot_id)) is None:
                return reservation
        return None

    def _still_reserved(self, reservation: Reservation, site_id: str, day: date) -> bool:
        calendar = self.app.unpublished.calendar(site_id, day)
        return calendar is not None and reservation.slot_id in calendar.reservations

    def _release_on_chain(self, slot_id: str, by: Attribution) -> None:
        """Record the release of the slot's booking on its COI's chain, if it is booked."""

        def attempt() -> None:
            booking = self.app.find(SlotBooking, slot_booking_id(slot_id))
            if booking is not None and booking.is_booked:
                booking.release(self.app.authored(by))
                self.app.save(booking)

        self.app.retrying(attempt)

    def _record_booking(
        self, reservation: Reservation, site_id: str, day: date, by: Attribution
    ) -> None:
        booking = SlotBooking.book(reservation, site_id, day.isoformat(), self.app.authored(by))
        try:
            self.app.save(booking)
        except IntegrityError:
            # recorded meanwhile by a concurrent retry of the same booking: the same fact
            recorded = self.app.find(SlotBooking, booking.id)
            if recorded is None or not recorded.is_booked or recorded.coi != reservation.coi:
                raise Conflict(f"slot {reservation.slot_id} changed meanwhile; try again") from None
