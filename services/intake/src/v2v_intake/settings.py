"""Intake settings from V2V_* environment variables.

V2V_FIN is the site's facility identification number; intake numbers COIs under it, and DINs
from the block the consortium declared for this site's intake under it (`din-allocations.json`
in the PKI directory, `v2v_platform.din_allocation`): without a block of its own, or with one
that overlaps another issuer's under the same FIN, the settings are refused and the service
does not start.

Intake applies no protocol rule of `ProtocolRules`: packaging records when a unit's stability
window starts (collection end, or freeze time), and the services downstream apply the
window's length; temperatures at packaging are checked against the conditions' definitions.

V2V_NUMBER_RESERVATION_SIZE (default 50): how many COI (and DIN) numbers one write of their
register reserves for this process to hand out from memory (`unpublished_records`); 1 writes
the register for every number. A restart leaves the unused rest of a run as a gap.

V2V_PRODUCT_CODES_FILE (optional): the site's licensed ISBT 128 product description codes,
for the bag labels it prints (`v2v_platform.labels.product_codes`); unset, labels carry none.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from v2v_intake.unpublished_records import DEFAULT_RESERVATION_SIZE
from v2v_platform.config import PublishingServiceSettings
from v2v_platform.din_allocation import DinBlock, declared_block
from v2v_platform.ids.coi import CoiIssuer
from v2v_platform.labels.product_codes import ProductCodesSettings

CONTEXT = "intake"


class IntakeSettings(PublishingServiceSettings, ProductCodesSettings):
    fin: str
    manufacturing_target: str
    manufacturing_timeout_s: float = 5.0
    manufacturing_retry_s: float = Field(default=30.0, ge=0)
    """How long a slot booking retries manufacturing's NOT_FOUND (it has not learnt the COI's
    enrolment from Kafka yet), with exponential backoff, before failing naming the COI."""
    number_reservation_size: int = Field(default=DEFAULT_RESERVATION_SIZE, ge=1)
    """How many numbers one register write reserves (V2V_NUMBER_RESERVATION_SIZE)."""
    grpc_address: str = "127.0.0.1:50061"
    http_port: int = 8061

    @field_validator("fin")
    @classmethod
    def _fin(cls, value: str, info: ValidationInfo) -> str:
        CoiIssuer(value, 0)
        if "pki_dir" in info.data and "site_id" in info.data:  # else their own error names them
            declared_block(info.data["pki_dir"], value, info.data["site_id"], CONTEXT)
        return value

    def din_block(self) -> DinBlock:
        """This site's intake's declared DIN block under V2V_FIN (checked when loaded)."""
        return declared_block(self.pki_dir, self.fin, self.site_id, CONTEXT)
