"""The catalogue of every alert kind the projection raises: its severity and what triggers it.

docs/alerts.md publishes this catalogue (a test keeps both equal) and the bedside refusal
mapping below. Every `ChainBuilder.alert` call names one of these constants.

Severities:
- critical: the record shows harm done or trust broken (a product infused without a valid
  release or twice, one unit bound to two patients, a record nobody vouches for);
- high: a near miss stopped by a safety rule, or a breach that needs action now (a refused
  scan, a missed window, a temperature excursion, two holders of one unit);
- medium: the record is incomplete and someone must find out why (a custody gap, a shipment
  delayed, damaged or lost).
"""

from __future__ import annotations

from typing import NamedTuple

CRITICAL, HIGH, MEDIUM = "critical", "high", "medium"
SEVERITIES = (CRITICAL, HIGH, MEDIUM)

IDENTITY_MISMATCH = "identity-mismatch"
IDENTITY_CONFLICT = "identity-conflict"
DOUBLE_INFUSION = "double-infusion"
DOUBLE_CUSTODY = "double-custody"
CUSTODY_GAP = "custody-gap"
SHIPMENT_EXCEPTION = "shipment-exception"
TEMPERATURE_EXCURSION = "temperature-excursion"
STABILITY_WINDOW_BREACH = "stability-window-breach"
RECEIPT_WITHOUT_RELEASE = "receipt-without-release"
INFUSION_WITHOUT_RELEASE = "infusion-without-release"
UNRELEASED_PRODUCT_AT_BEDSIDE = "unreleased-product-at-bedside"
UNACKNOWLEDGED_POST_RELEASE_FAILURE = "unacknowledged-post-release-failure"
TWO_PERSON_CHECK = "two-person-check"
INTEGRITY_BREAK = "integrity-break"
UNTRUSTED_RECORD = "untrusted-record"
UNRELATED_AUTHOR = "unrelated-author"


class AlertKind(NamedTuple):
    severity: str
    trigger: str


CATALOGUE: dict[str, AlertKind] = {
    IDENTITY_MISMATCH: AlertKind(
        HIGH,
        "A scan was refused and recorded because the labels do not identify this chain's"
        " unit (I2): a label at intake, a receipt at the GMP site, a custody handoff, a"
        " bedside scan with the wrong wristband, an unknown unit or an unreadable label; or"
        " a batch start offered input units of two COIs (refused, recorded on both chains).",
    ),
    IDENTITY_CONFLICT: AlertKind(
        CRITICAL,
        "One DIN is bound to this chain and to another COI (I1): facts of two chains number"
        " the same unit as their own (a bag labelled at intake, a batch's product or input"
        " units, an infusion). Raised on every chain the DIN is bound to, one alert per other"
        " COI, at the time the second binding happened; and for every act a service"
        " refused and recorded because the unit's DIN is bound to two COIs (reason"
        " identity-conflict, whatever the scan).",
    ),
    DOUBLE_INFUSION: AlertKind(
        CRITICAL,
        "The product was infused more than once: a bag administered again (anywhere), bags of"
        " the COI's product infused at two sites, or one DIN infused under two COIs (raised on"
        " both chains); or a bedside scan refused because the unit was already infused.",
    ),
    DOUBLE_CUSTODY: AlertKind(
        HIGH, "A unit was claimed by a second holder while another still held it (I3)."
    ),
    CUSTODY_GAP: AlertKind(
        MEDIUM,
        "Nobody held a unit between a handoff and the next claim, or nobody has held it since"
        " (I3); or a bedside scan refused because the unit was never received at that ward.",
    ),
    SHIPMENT_EXCEPTION: AlertKind(
        MEDIUM, "A shipment was recorded lost, damaged or delayed, or arrived damaged."
    ),
    TEMPERATURE_EXCURSION: AlertKind(
        HIGH, "A shipment's logger read temperatures outside its condition's range (I5)."
    ),
    STABILITY_WINDOW_BREACH: AlertKind(
        HIGH,
        "A window the applying site recorded was missed (I5): a shipment's, a batch start past"
        " the fresh apheresis window (overridden or not), an infusion after its thaw deadline"
        " or the deadline verified at the bedside; or a bedside scan refused because the"
        " unit's window had expired.",
    ),
    RECEIPT_WITHOUT_RELEASE: AlertKind(
        HIGH, "A unit was received at the treating site before any valid release (I4)."
    ),
    INFUSION_WITHOUT_RELEASE: AlertKind(
        CRITICAL, "A unit was infused without a release in force at that time (I4)."
    ),
    UNRELEASED_PRODUCT_AT_BEDSIDE: AlertKind(
        HIGH,
        "A bedside scan was refused because the unit's batch was rejected or has no valid"
        " release (I4): the product reached the patient's side, the infusion was stopped.",
    ),
    UNACKNOWLEDGED_POST_RELEASE_FAILURE: AlertKind(
        HIGH,
        "A QC test failed after release and no treating physician has acknowledged it; or a"
        " bedside scan refused for that reason.",
    ),
    TWO_PERSON_CHECK: AlertKind(
        HIGH,
        "A bedside scan was refused because the same person tried to make both scans of the"
        " two-person check.",
    ),
    INTEGRITY_BREAK: AlertKind(
        CRITICAL,
        "A stream of the chain has a broken hash link or a missing version (I6).",
    ),
    UNTRUSTED_RECORD: AlertKind(
        CRITICAL,
        "A record naming this COI failed verification (not an envelope, hash, signature,"
        " signer, event type of its topic, authorship, one author per stream) and was"
        " quarantined, never folded.",
    ),
    UNRELATED_AUTHOR: AlertKind(
        CRITICAL,
        "A site recorded a fact about the COI without being related to it, or an infusion"
        " event came from another site than the chain's treating site (a bag at the wrong"
        " ward); or a bedside scan refused because the ward does not treat the patient.",
    ),
}

IDENTITY_CONFLICT_REASON = "identity-conflict"
"""The reason code every service records when it refuses to act on a unit whose DIN it knows
is bound to two COIs (`v2v_platform.ids.bindings`)."""

BEDSIDE_REFUSALS: dict[str, str] = {
    IDENTITY_CONFLICT_REASON: IDENTITY_CONFLICT,
    "coi-mismatch": IDENTITY_MISMATCH,
    "malformed-label": IDENTITY_MISMATCH,
    "unknown-unit": IDENTITY_MISMATCH,
    "not-received": CUSTODY_GAP,
    "rejected": UNRELEASED_PRODUCT_AT_BEDSIDE,
    "not-released": UNRELEASED_PRODUCT_AT_BEDSIDE,
    "unacknowledged-failure": UNACKNOWLEDGED_POST_RELEASE_FAILURE,
    "window-expired": STABILITY_WINDOW_BREACH,
    "already-infused": DOUBLE_INFUSION,
    "same-user": TWO_PERSON_CHECK,
    "not-treating-site": UNRELATED_AUTHOR,
}
"""Infusion's bedside reason codes (`v2v_infusion.domain.values`) -> the alert kind that
names the problem the scan stopped. A code not listed (a newer infusion) is an
`identity-mismatch`: a refused scan is at least that."""


def severity(kind: str) -> str:
    return CATALOGUE[kind].severity


def bedside_refusal(reason_code: str) -> str:
    return BEDSIDE_REFUSALS.get(reason_code, IDENTITY_MISMATCH)


def scan_refusal(reason_code: str) -> str:
    """The alert of a refused scan other than at the bedside (label, receipt, handoff, batch
    inputs): an identity mismatch, or an identity conflict when that was the reason."""
    return IDENTITY_CONFLICT if reason_code == IDENTITY_CONFLICT_REASON else IDENTITY_MISMATCH
