"""The authorization matrix: every declared method and route x every kind of caller.

`endpoints()` pairs each method and route that declares an access with its request
builder; `AuthorizationMatrix.run()` calls each as every caller kind, in `callers.ORDER`
(refused callers first; the related callers' reads before their writes, so the seeded
records are read as the journey left them) and judges each outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from v2v_platform.access_policy import Access
from v2v_testkit.authz.callers import (
    ORDER,
    UNRELATED_SITE,
    Caller,
    CallerKind,
    Credentials,
    other_roles,
    unrelated_roles,
)
from v2v_testkit.authz.calls import GrpcCaller, HttpCaller
from v2v_testkit.authz.expectations import Outcome, Verdict, judge
from v2v_testkit.authz.inventory import GrpcMethod, HttpRoute, Inventory
from v2v_testkit.authz.requests import Builder, Request
from v2v_testkit.authz.seed import Seed


class Targets(Protocol):
    """Where each service instance listens (a running `v2v_simulator.system.System`)."""

    def grpc_target(self, context: str, site_id: str) -> str: ...

    def http_base(self, context: str, site_id: str) -> str: ...


@dataclass(frozen=True)
class Endpoint:
    """A method or a route with its declared access and its request builder."""

    key: str
    access: Access
    builder: Builder
    method: GrpcMethod | None = None
    route: HttpRoute | None = None

    @property
    def context(self) -> str:
        found = self.method or self.route
        assert found is not None
        return found.context

    @property
    def courier(self) -> bool:
        return self.route is not None and self.route.courier


@dataclass(frozen=True)
class Result:
    endpoint: str
    context: str
    kind: CallerKind
    who: str
    outcome: Outcome
    verdict: Verdict
    leaked: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"{self.endpoint} as {self.kind} ({self.who}): {self.outcome.status}"
        if self.outcome.detail:
            text += f" {self.outcome.detail!r}"
        if self.leaked:
            text += f"; answer names {', '.join(self.leaked)}"
        return text


def endpoints(
    inventory: Inventory, grpc_builders: Mapping[str, Builder], http_builders: Mapping[str, Builder]
) -> list[Endpoint]:
    """The declared methods and routes that have a builder (the others are reported by the
    inventory and `inventory.missing`)."""
    found = [
        Endpoint(m.key, m.access, grpc_builders[m.key], method=m)
        for m in inventory.methods
        if m.access is not None and m.key in grpc_builders
    ]
    found += [
        Endpoint(r.key, r.access, http_builders[r.key], route=r)
        for r in inventory.routes
        if r.access is not None and r.key in http_builders
    ]
    return found


def unasked(seed: Seed, request: Request, answer: str) -> list[str]:
    """The seeded identifiers `answer` names that the request did not (an error repeating
    the id it was asked about tells the caller nothing new)."""
    asked = json.dumps([request.body, dict(request.path), dict(request.query)])
    return [value for value in seed.leaked(answer) if value not in asked]


class AuthorizationMatrix:
    def __init__(self, targets: Targets, credentials: Credentials, seed: Seed) -> None:
        self.targets = targets
        self.credentials = credentials
        self.seed = seed
        self.grpc = GrpcCaller(credentials.ca)
        self.http = HttpCaller()

    def run(self, found: list[Endpoint]) -> list[Result]:
        results: list[Result] = []
        try:
            for kind in ORDER:
                ordered = found
                if kind is CallerKind.RELATED:
                    ordered = sorted(found, key=lambda e: e.access.writes)  # reads first
                for endpoint in ordered:
                    result = self.try_call(endpoint, kind)
                    if result is not None:
                        results.append(result)
        finally:
            self.grpc.close()
            self.http.close()
        return results

    def try_call(self, endpoint: Endpoint, kind: CallerKind) -> Result | None:
        """`endpoint` called as `kind` (None when no such caller exists for it: a method
        every role may call has no wrong-role caller)."""
        request = endpoint.builder(self.seed)
        caller = self.caller(endpoint, kind, request)
        if caller is None:
            return None
        context = endpoint.context
        if endpoint.method is not None:
            target = self.targets.grpc_target(context, request.service_site)
            outcome = self.grpc.call(target, caller.tls, endpoint.method, request)
        else:
            assert endpoint.route is not None
            base = self.targets.http_base(context, request.service_site)
            outcome = self.http.call(base, caller.token, endpoint.route, request)
        leaked = tuple(unasked(self.seed, request, outcome.text))
        verdict = judge(kind, endpoint.access, outcome, list(leaked), endpoint.courier)
        return Result(endpoint.key, context, kind, caller.who, outcome, verdict, leaked)

    def caller(self, endpoint: Endpoint, kind: CallerKind, request: Request) -> Caller | None:
        if kind is CallerKind.NO_CREDENTIALS:
            return Caller(kind, "no credentials")
        if endpoint.courier:
            return self._courier_route_caller(endpoint, kind, request)
        roles = endpoint.access.roles
        site = {
            CallerKind.WRONG_ROLE: request.related,
            CallerKind.UNRELATED: UNRELATED_SITE,
            CallerKind.AUDITOR: self.seed.auditor,
            CallerKind.RELATED: request.related,
        }[kind]
        minted = {
            CallerKind.WRONG_ROLE: other_roles(roles),
            CallerKind.UNRELATED: unrelated_roles(roles),
        }.get(kind)
        if minted is not None and not minted:
            return None
        grpc = endpoint.method is not None
        who = f"{site} [{', '.join(sorted(r.value for r in minted))}]" if minted else site
        if minted is None:
            if grpc:
                return Caller(kind, who, tls=self.credentials.site_files(site))
            return Caller(kind, who, token=self.credentials.site_token(site))
        if grpc:
            return Caller(kind, who, tls=self.credentials.minted_files(site, minted))
        return Caller(kind, who, token=self.credentials.minted_token(site, minted))

    def _courier_route_caller(
        self, endpoint: Endpoint, kind: CallerKind, request: Request
    ) -> Caller | None:
        """Courier routes take courier tokens: the unrelated caller is a courier on none of
        the seeded shipments; the wrong-role caller, a site token of the couriers' site."""
        if kind is CallerKind.WRONG_ROLE:
            roles = other_roles(endpoint.access.roles)
            if not roles:
                return None
            site = self.seed.logistics
            who = f"{site} site token [{', '.join(sorted(r.value for r in roles))}]"
            return Caller(kind, who, token=self.credentials.minted_token(site, roles))
        if kind is CallerKind.AUDITOR:
            site = self.seed.auditor
            return Caller(kind, f"{site} site token", token=self.credentials.site_token(site))
        courier = self.seed.free_courier if kind is CallerKind.UNRELATED else request.related
        token = self.credentials.courier_token(courier)
        return Caller(kind, f"courier {courier}", token=token)
