"""v2v intake service: enrolment, COI, slots, apheresis collections, labels and packaging."""
