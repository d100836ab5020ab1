"""The intake outbox for `v2v relay --spec v2v_intake.relay_spec:RELAY_SPEC`."""

from __future__ import annotations

from v2v_intake.adapters.payloads import TRANSLATOR
from v2v_intake.application import IntakeApplication
from v2v_platform.relay.process import RelaySpec

RELAY_SPEC = RelaySpec(context="intake", application=IntakeApplication, translator=TRANSLATOR)
