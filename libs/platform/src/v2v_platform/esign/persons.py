"""Proven persons of two-person checks: each person of a check (label verification, bedside
scan, infusion witness) re-authenticates with their own password against the serving site's
signer store, so the second person is proven, not claimed by the site's connection.

A check names the person in a request field (the operator, the witness) and carries their
re-authentication (`SignatureRequest`) with the check's meaning. `prove` refuses a request
whose signer is not the person the field names (InvalidInput naming that field), with another
meaning (InvalidInput), a failed re-authentication (ReauthenticationFailed, counted towards
the signer's lock-out) or a signer without the check's signing role (Forbidden); it returns
the manifestation bound to the checked record. The person recorded is the proven signer:
`as_proven` gives the acting attribution the signer's registered printed name.

Not exported from `v2v_platform.esign`: `v2v_platform.limits` imports that package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from v2v_platform import limits
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.errors import InvalidInput
from v2v_platform.esign.signing import ESigner, SignatureRequest


@dataclass(frozen=True)
class PersonCheck:
    """How one person of a two-person check is proven at a service."""

    meaning: str
    """The meaning of their signature: "verification" (a scan), "witness" (an infusion)."""
    signing_role: str
    """The signer role (in the site's signer store) that may make this check."""
    signature_field: str
    """The request field carrying the re-authentication, named in refusals."""
    person_field: str
    """The request field naming the person (e.g. "operator.user_id"), named in refusals."""


def prove(
    signer: ESigner,
    site_id: str,
    request: SignatureRequest | None,
    check: PersonCheck,
    named_user_id: str,
    record: Mapping[str, Any],
) -> SignatureManifestation:
    """Re-authenticate the person `named_user_id` (who must be the signer of `request`) for
    `check` at `site_id`; the manifestation is bound to `record`. A request that carries no
    re-authentication (None) is refused naming the field: a check is never made on a claimed
    person."""
    if request is None:
        raise InvalidInput(
            f"{check.signature_field} is required: the person re-authenticates with their user"
            " id and password"
        )
    limits.check_signature_request(request, check.signature_field)
    if request.meaning != check.meaning:
        raise InvalidInput(
            f"{check.signature_field}.meaning must be {check.meaning!r}, not {request.meaning!r}"
        )
    if request.user_id != named_user_id:
        raise InvalidInput(
            f"{check.person_field} {named_user_id!r} is not the re-authenticated signer"
            f" {request.user_id!r} of {check.signature_field}: each person of a two-person check"
            " re-authenticates with their own password"
        )
    return signer.sign(site_id, request, check.signing_role, record)


def as_proven(by: Attribution, signature: SignatureManifestation) -> Attribution:
    """`by` as the proven signer: their user id (already the same) and registered name."""
    return replace(by, user_id=signature.user_id, printed_name=signature.printed_name)


def person(signature: SignatureManifestation) -> dict[str, str]:
    """The proven person as events record a person (user id and printed name)."""
    return {"user_id": signature.user_id, "printed_name": signature.printed_name}


def requested(user_id: str, password: str, meaning: str) -> SignatureRequest | None:
    """The re-authentication a request carries, None when it carries none (no user id or no
    password): `prove` refuses it naming its field, after the command's own site check."""
    if not user_id.strip() or not password:
        return None
    return SignatureRequest(user_id, password, meaning)
