"""What each kind of caller must get from a method or route, given its declared `Access`,
and the verdict on what it got.

- no credentials: refused (gRPC: the TLS handshake fails, UNAVAILABLE, or UNAUTHENTICATED;
  HTTP 401);
- wrong role: refused (PERMISSION_DENIED / 403; 401 on a courier route, where a site token
  is no courier token);
- unrelated site with the right role: writes and PATIENT / SHIPMENT / OWN_SITE reads refused
  (NOT_FOUND / 404 or PERMISSION_DENIED / 403); FILTERED reads and NO_PATIENT_DATA calls
  (a courier signing in: there is no record to be related to) may succeed, but an answer
  naming a seeded identifier the request did not name is an unauthorized success;
- related: never refused for authorization (no UNAUTHENTICATED / PERMISSION_DENIED /
  NOT_FOUND, 401 / 403 / 404: the requests name records that exist); a domain refusal
  (FAILED_PRECONDITION, ALREADY_EXISTS, INVALID_ARGUMENT, 409, 422...) is fine;
- auditor: reads it holds a role for allowed as for the related site; writes refused.

A caller that must be refused but reaches a domain rule (answered FAILED_PRECONDITION, 409...)
passed authorization: an unauthorized pass, reported like an unauthorized success.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from v2v_platform.access_policy import Access, Relation
from v2v_platform.auth.identity import Role
from v2v_testkit.authz.callers import CallerKind


class Answer(StrEnum):
    """What a call's status says, whatever the transport."""

    OK = "ok"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    UNREACHABLE = "unreachable"  # no TLS session (no client certificate)
    DOMAIN = "domain"  # a domain rule or request validation refused the call
    ERROR = "error"  # a server error, a timeout, or an unexpected status


GRPC_ANSWERS = {
    "OK": Answer.OK,
    "UNAUTHENTICATED": Answer.UNAUTHENTICATED,
    "PERMISSION_DENIED": Answer.FORBIDDEN,
    "NOT_FOUND": Answer.NOT_FOUND,
    "UNAVAILABLE": Answer.UNREACHABLE,
    "FAILED_PRECONDITION": Answer.DOMAIN,
    "ALREADY_EXISTS": Answer.DOMAIN,
    "INVALID_ARGUMENT": Answer.DOMAIN,
    "OUT_OF_RANGE": Answer.DOMAIN,
    "RESOURCE_EXHAUSTED": Answer.DOMAIN,
    "ABORTED": Answer.DOMAIN,
}
HTTP_ANSWERS = {401: Answer.UNAUTHENTICATED, 403: Answer.FORBIDDEN, 404: Answer.NOT_FOUND}
HTTP_DOMAIN = frozenset({400, 409, 412, 413, 422, 429})
AUTHORIZATION_REFUSALS = frozenset({Answer.UNAUTHENTICATED, Answer.FORBIDDEN, Answer.NOT_FOUND})


def grpc_answer(code_name: str) -> Answer:
    return GRPC_ANSWERS.get(code_name, Answer.ERROR)


def http_answer(status: int) -> Answer:
    if 200 <= status < 300:
        return Answer.OK
    if status in HTTP_DOMAIN:
        return Answer.DOMAIN
    return HTTP_ANSWERS.get(status, Answer.ERROR)


@dataclass(frozen=True)
class Outcome:
    """One call's result: its status as the transport gives it (`OK`, `PERMISSION_DENIED`,
    `403`...), the error's detail, and the answer's text (for the identifier check)."""

    status: str
    answer: Answer
    detail: str = ""
    text: str = ""


class Expect(StrEnum):
    REFUSED = "refused"
    ALLOWED = "allowed"
    UNLEAKED = "allowed-without-seeded-ids"  # may succeed, must not name the seeded records


class Verdict(StrEnum):
    REFUSED = "refused"  # refused, as expected
    ALLOWED = "allowed"  # passed authorization (answered, or refused by a domain rule)
    UNAUTHORIZED_SUCCESS = "unauthorized-success"
    UNAUTHORIZED_PASS = "unauthorized-pass"  # reached a domain rule it should never reach
    WRONGLY_REFUSED = "wrongly-refused"
    ERROR = "error"

    @property
    def fails(self) -> bool:
        return self not in (Verdict.REFUSED, Verdict.ALLOWED)


def expected(kind: CallerKind, access: Access) -> Expect:
    unscoped = access.relation is Relation.NO_PATIENT_DATA or (
        access.relation is Relation.FILTERED and not access.writes
    )
    if kind is CallerKind.RELATED:
        return Expect.ALLOWED
    if kind is CallerKind.AUDITOR:
        audits = not access.writes and Role.AUDITOR in access.roles
        return Expect.ALLOWED if audits else Expect.REFUSED
    if kind is CallerKind.UNRELATED and unscoped:
        return Expect.UNLEAKED
    return Expect.REFUSED


def refusals(kind: CallerKind, courier_route: bool) -> frozenset[Answer]:
    """The answers that count as this caller being refused for authorization."""
    if kind is CallerKind.NO_CREDENTIALS:
        return frozenset({Answer.UNAUTHENTICATED, Answer.UNREACHABLE})
    if kind is CallerKind.UNRELATED:
        return frozenset({Answer.FORBIDDEN, Answer.NOT_FOUND})
    if courier_route:  # a site token on a courier route: not a courier token at all
        return frozenset({Answer.FORBIDDEN, Answer.UNAUTHENTICATED})
    return frozenset({Answer.FORBIDDEN})


def judge(
    kind: CallerKind, access: Access, outcome: Outcome, leaked: list[str], courier_route: bool
) -> Verdict:
    """The verdict on `outcome`; `leaked`: the seeded identifiers its answer names that the
    request did not."""
    want = expected(kind, access)
    answer = outcome.answer
    if answer is Answer.ERROR or (
        answer is Answer.UNREACHABLE and kind is not CallerKind.NO_CREDENTIALS
    ):
        return Verdict.ERROR
    if want is Expect.ALLOWED:
        return Verdict.WRONGLY_REFUSED if answer in AUTHORIZATION_REFUSALS else Verdict.ALLOWED
    if want is Expect.UNLEAKED:
        if answer in AUTHORIZATION_REFUSALS:
            return Verdict.REFUSED
        return Verdict.UNAUTHORIZED_SUCCESS if leaked else Verdict.ALLOWED
    if answer in refusals(kind, courier_route):
        return Verdict.REFUSED
    return Verdict.UNAUTHORIZED_SUCCESS if answer is Answer.OK else Verdict.UNAUTHORIZED_PASS
