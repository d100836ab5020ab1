"""Hand-written envelopes for tests: any payload, on its aggregate's chain, signed by the
authoring site's generated key (the same keys as `generate_history(seed, ...)`; `keys` is the
ring with the sites' roles, `SITE_ROLES`)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from v2v_platform.envelope.keys import KeyRing
from v2v_testkit.synthetic.consortium import key_ring, site_signers
from v2v_testkit.synthetic.sealing import Draft, StreamSealer

TEST_ACTOR = ("u-test", "Tess Tester", "auditor")


class EnvelopeWriter:
    def __init__(self, seed: int = 0) -> None:
        self.signers = site_signers(seed)
        self.keys: KeyRing = key_ring(self.signers)
        self._sealer = StreamSealer(self.signers)

    def write(
        self,
        coi: str,
        aggregate_id: str,
        payload: Message,
        recorded_at: datetime,
        *,
        site: str = "HOSP-A",
        context: str = "intake",
        occurred_at: datetime | None = None,
        actor: tuple[str, str, str] = TEST_ACTOR,
    ) -> bytes:
        """The next version of `aggregate_id`'s chain, serialized."""
        aggregate_type = aggregate_id.split(":", 1)[0]
        draft = Draft(
            context,
            aggregate_type,
            aggregate_id,
            coi,
            recorded_at,
            payload,
            site,
            actor,
            occurred_at,
        )
        return self._sealer.seal(draft)
