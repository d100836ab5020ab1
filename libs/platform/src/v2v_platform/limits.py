"""Input limits of every command, in ONE place, and the checks that apply them.

Every value a client sends is bounded, so that no accepted command can produce an event the
broker refuses (Kafka's default limit is 1 MiB per record): with the limits below the largest
accepted command of each service seals into envelopes far below `MAX_EVENT_BYTES` (each
service's unit tests build those commands and measure them with `sealed_size`). Refusals name
the field and the limit (InvalidInput: gRPC INVALID_ARGUMENT, HTTP 422); the HTTP layer states
the same limits in its request models (`v2v_platform.http_api`), so both refuse alike.

    limit                    default    applies to
    identifiers              64         ids, user ids, pseudonyms, MRNs, serials, lots, keys
    names                    200        printed names, patient names, device types, locations
    free text                2,000      reasons, notes, justifications, decisions
    scanned labels           256        a scanned label is read (and echoed) up to this many
                                        characters, cut and marked beyond (`echo`)
    list items               20         manifest, input units, scanned labels, product units,
                                        reagent lots
    process step parameters  50
    temperature readings     1,000      per upload
    passwords                1,024
    HTTP request body        256 KiB    refused (413) before the body is read
    gRPC received message    512 KiB    refused (RESOURCE_EXHAUSTED) by the server
    clock skew               5 min      V2V_CLOCK_SKEW_SECONDS (0-3600): how far a client's
                                        time may be ahead of the service's clock

Numbers a client gives (temperatures, volumes, doses, cell counts, results) must be finite.
Limits count characters (`len` of the text): UTF-8 takes at most 4 bytes per character.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sized
from datetime import datetime, timedelta
from typing import Any, TypeVar

from v2v_platform.attribution import Attribution, SignatureManifestation, WindowOverride
from v2v_platform.config import CLOCK_SKEW as CLOCK_SKEW  # re-exported: the default skew
from v2v_platform.envelope.codec import EnvelopeContent, build_envelope, encode
from v2v_platform.envelope.from_domain import OutboundEvent
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.errors import InvalidInput
from v2v_platform.esign.signing import SignatureRequest

MAX_ID_CHARS = 64
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 2_000
MAX_LABEL_CHARS = 256
MAX_LIST_ITEMS = 20
MAX_PARAMETERS = 50
MAX_READINGS = 1_000
MAX_PASSWORD_CHARS = 1_024
MAX_HTTP_BODY_BYTES = 256 * 1024
MAX_GRPC_MESSAGE_BYTES = 512 * 1024
MAX_EVENT_BYTES = 256 * 1024
"""What every sealed envelope must stay below (a quarter of the broker's 1 MiB)."""
"""How far a client's clock may run ahead of the server's before a time counts as future."""

SizedT = TypeVar("SizedT", bound=Sized)


def check_text(value: str, field: str, limit: int) -> str:
    """`value` when it has at most `limit` characters; InvalidInput naming both otherwise."""
    if len(value) > limit:
        raise InvalidInput(f"{field} has {len(value)} characters; the limit is {limit}")
    return value


def check_id(value: str, field: str) -> str:
    return check_text(value, field, MAX_ID_CHARS)


def check_name(value: str, field: str) -> str:
    return check_text(value, field, MAX_NAME_CHARS)


def check_free_text(value: str, field: str) -> str:
    return check_text(value, field, MAX_TEXT_CHARS)


def check_items(values: SizedT, field: str, limit: int = MAX_LIST_ITEMS) -> SizedT:
    """`values` when there are at most `limit` of them; InvalidInput naming both otherwise."""
    if len(values) > limit:
        raise InvalidInput(f"{field} has {len(values)} items; the limit is {limit}")
    return values


def check_finite(value: float, field: str) -> float:
    """`value` when it is a finite number; InvalidInput naming the field for NaN or infinity."""
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number, not {value}")
    return value


def echo(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """`text` as a refusal may repeat it: at most `limit` characters, the cut marked.

    A scanned label enters the domain as its echo: one longer than any valid DIN or COI
    label stays refused (its echo is no DIN or COI either), and what is recorded and answered
    about it stays bounded."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[cut: {len(text)} characters in all]"


def check_not_before(moment: datetime, field: str, earliest: datetime | None, what: str) -> None:
    """Causality within a chain: InvalidInput naming `field` when `moment` precedes
    `earliest`, the clinical time of `what` (nothing to check when it is not known)."""
    if earliest is not None and moment < earliest:
        raise InvalidInput(
            f"{field} {moment.isoformat()} is before {what} at {earliest.isoformat()}:"
            " a step cannot precede what it follows"
        )


def check_not_future(given: datetime, now: datetime, skew: timedelta, field: str) -> datetime:
    """`given` (with its zone) unless it is more than `skew` ahead of `now`."""
    if given.tzinfo is None:
        raise InvalidInput(f"{field} must carry a time zone (UTC)")
    if given > now + skew:
        allowed = int(skew.total_seconds())
        raise InvalidInput(
            f"{field} {given.isoformat()} is in the future (more than {allowed} s ahead of"
            f" {now.isoformat()})"
        )
    return given


def check_attribution(by: Attribution) -> Attribution:
    """Who acts, as the calling site asserted it, within the limits."""
    check_id(by.user_id, "operator.user_id")
    check_name(by.printed_name, "operator.printed_name")
    check_id(by.role, "role")
    check_id(by.site_id, "site_id")
    check_free_text(by.reason, "reason")
    return by


def check_signature(signature: SignatureManifestation, field: str = "signature") -> None:
    check_id(signature.user_id, f"{field}.user_id")
    check_name(signature.printed_name, f"{field}.printed_name")
    check_id(signature.record_hash, f"{field}.record_hash")


def check_override(override: WindowOverride | None, field: str = "window_override") -> None:
    """A window override's reason and signature within the limits (its time: `when`)."""
    if override is None:
        return
    check_free_text(override.reason, f"{field}.reason")
    check_signature(override.signature, f"{field}.signature")


def check_signature_request(request: SignatureRequest, field: str = "signature") -> None:
    """What a signer gives to sign (user id, password, meaning) within the limits, before the
    password is ever hashed."""
    check_id(request.user_id, f"{field}.user_id")
    check_text(request.password, f"{field}.password", MAX_PASSWORD_CHARS)
    check_id(request.meaning, f"{field}.meaning")


def sealed_size(content: EnvelopeContent) -> int:
    """How many bytes `content` takes on Kafka once sealed (hashes and signature included)."""
    signer = SiteSigningKey.from_seed(content.site_id, bytes(32))
    return len(encode(build_envelope(content, bytes(32), signer)))


def sealed_sizes(
    translate: Callable[[Any], OutboundEvent | None], events: Iterable[Any]
) -> dict[str, int]:
    """The largest sealed size of each kind of stored event among `events`, as the outbox
    translates them (`TRANSLATOR.translate` of a service's payloads)."""
    sizes: dict[str, int] = {}
    for event in events:
        outbound = translate(event)
        if outbound is None:
            raise ValueError(f"{type(event).__qualname__} has no published form")
        name = type(event).__qualname__
        sizes[name] = max(sizes.get(name, 0), sealed_size(outbound.content))
    return sizes
