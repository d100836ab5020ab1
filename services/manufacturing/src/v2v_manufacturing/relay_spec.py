"""The outbox relay spec: `v2v relay --spec v2v_manufacturing.relay_spec:RELAY_SPEC`."""

from __future__ import annotations

from v2v_manufacturing.adapters.payloads import TRANSLATOR
from v2v_manufacturing.application import ManufacturingApplication
from v2v_platform.relay.process import RelaySpec

RELAY_SPEC = RelaySpec(
    context="manufacturing", application=ManufacturingApplication, translator=TRANSLATOR
)
