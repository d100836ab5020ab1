"""The outbox relay spec: `v2v relay --spec v2v_release.relay_spec:RELAY_SPEC`."""

from __future__ import annotations

from v2v_platform.relay.process import RelaySpec
from v2v_release.adapters.payloads import TRANSLATOR
from v2v_release.application import ReleaseApplication

RELAY_SPEC = RelaySpec(context="release", application=ReleaseApplication, translator=TRANSLATOR)
