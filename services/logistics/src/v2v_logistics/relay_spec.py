"""The outbox relay spec: `v2v relay --spec v2v_logistics.relay_spec:RELAY_SPEC`."""

from __future__ import annotations

from v2v_logistics.adapters.payloads import TRANSLATOR
from v2v_logistics.application import LogisticsApplication
from v2v_platform.relay.process import RelaySpec

RELAY_SPEC = RelaySpec(context="logistics", application=LogisticsApplication, translator=TRANSLATOR)
