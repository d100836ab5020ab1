"""Intake domain: a patient therapy (COI) from enrolment to packaged, verified units."""
