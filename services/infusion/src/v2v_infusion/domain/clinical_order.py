"""The order of clinical times at the ward (issue 14): a step cannot precede what it follows.

The unit's own steps (storage after receipt, thaw after receipt and storage, the bedside
scans after the thaw or the receipt, the second scan after the first, the infusion after the
verification) are checked by `ProductAtSite`; the receipt here, against facts learned from
other contexts: not before the product's release (the earliest releasing decision known from
release's events) nor before its delivery to this site, when known. A time out of sequence is
invalid input naming its field (INVALID_ARGUMENT / 422), like a time in the future; nothing is
recorded (it is not a scan that does not match: I2 does not apply).
"""

from __future__ import annotations

from datetime import datetime

from v2v_platform.limits import check_not_before


def check_receipt(
    received_at: datetime, released_at: datetime | None, delivered_at: datetime | None
) -> None:
    """A ward receipt follows the product's release and its delivery here (each when known)."""
    check_not_before(received_at, "received_at", released_at, "the product's release")
    check_not_before(received_at, "received_at", delivered_at, "its delivery to this site")
