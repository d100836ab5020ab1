"""The manufacturing service's settings (environment variables V2V_*).

V2V_FIN is the site's facility identification number: product DINs are numbered from the block
the consortium declared for this site's manufacturing under it (`din-allocations.json` in the
PKI directory, `v2v_platform.din_allocation`); without a block of its own, or with one that
overlaps another issuer's under the same FIN (an in-house site's intake), the settings are
refused and the service does not start.

The protocol rules it applies (the fresh apheresis window, V2V_FRESH_APHERESIS_WINDOW_HOURS)
come from `ProtocolRulesSettings`: `protocol_rules()` is what the application gets.

V2V_PRODUCT_CODES_FILE (optional): the site's licensed ISBT 128 product description codes,
for the product labels it prints (`v2v_platform.labels.product_codes`); unset, none.
"""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from v2v_platform.config import PublishingServiceSettings
from v2v_platform.din_allocation import DinBlock, declared_block
from v2v_platform.ids import issue_din
from v2v_platform.labels.product_codes import ProductCodesSettings
from v2v_platform.protocol_rules import ProtocolRulesSettings

CONTEXT = "manufacturing"


class ManufacturingSettings(PublishingServiceSettings, ProtocolRulesSettings, ProductCodesSettings):
    fin: str
    grpc_address: str = "127.0.0.1:50062"
    http_port: int = 8062

    @field_validator("fin")
    @classmethod
    def _fin(cls, value: str, info: ValidationInfo) -> str:
        issue_din(value, 25, 1)  # raises a ValueError naming the problem
        if "pki_dir" in info.data and "site_id" in info.data:  # else their own error names them
            declared_block(info.data["pki_dir"], value, info.data["site_id"], CONTEXT)
        return value

    def din_block(self) -> DinBlock:
        """This site's manufacturing's declared DIN block under V2V_FIN (checked when loaded)."""
        return declared_block(self.pki_dir, self.fin, self.site_id, CONTEXT)
