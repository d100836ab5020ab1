"""The outbox relay spec: `v2v relay --spec v2v_infusion.relay_spec:RELAY_SPEC`."""

from __future__ import annotations

from v2v_infusion.adapters.payloads import TRANSLATOR
from v2v_infusion.application import InfusionApplication
from v2v_platform.relay.process import RelaySpec

RELAY_SPEC = RelaySpec(context="infusion", application=InfusionApplication, translator=TRANSLATOR)
