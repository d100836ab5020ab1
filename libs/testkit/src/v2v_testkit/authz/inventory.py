"""Every gRPC method and HTTP route the services expose, with the access each declares.

The gRPC methods come from the generated service descriptors (every `*_service_pb2` module
of the contracts package, `DESCRIPTOR.services_by_name`), never from a hand list; each
method's declared `Access` from its service's `ACCESS` table (`v2v_<context>.adapters.
grpc_api.ACCESS`, method name -> Access). The HTTP routes come from each service's OpenAPI
document; each route's declared access from its operation's `x-v2v-access` extension.
A method or route without a declared access is listed in `Inventory.undeclared`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf.descriptor import MethodDescriptor

import v2v
from v2v_platform.access_policy import Access

HTTP_METHODS = ("get", "put", "post", "patch", "delete")
COURIER_SCHEME = "CourierToken"
"""The OpenAPI security scheme of routes a courier token (not a site token) opens."""


@dataclass(frozen=True)
class GrpcMethod:
    context: str
    descriptor: MethodDescriptor
    access: Access | None

    @property
    def full_name(self) -> str:
        """`/package.Service/Method`: the name the interceptor and the builders use."""
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def name(self) -> str:
        return str(self.descriptor.name)

    @property
    def streams(self) -> bool:
        return bool(self.descriptor.server_streaming)

    @property
    def key(self) -> str:
        return self.full_name


@dataclass(frozen=True)
class HttpRoute:
    context: str
    method: str  # upper case
    path: str  # the OpenAPI template, e.g. /v1/therapies/{coi}
    access: Access | None
    courier: bool  # opened by a courier token rather than a site token

    @property
    def key(self) -> str:
        """`<context>: METHOD path` (two services may serve the same path)."""
        return f"{self.context}: {self.method} {self.path}"


@dataclass
class Inventory:
    methods: list[GrpcMethod] = field(default_factory=list)
    routes: list[HttpRoute] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """ACCESS entries that name no method of the service (a typo leaves a method bare)."""

    @property
    def undeclared(self) -> list[str]:
        bare = [m.key for m in self.methods if m.access is None]
        return bare + [r.key for r in self.routes if r.access is None]

    @property
    def contexts(self) -> list[str]:
        return sorted({m.context for m in self.methods})


def service_modules() -> list[ModuleType]:
    """Every generated `*_service_pb2` module of the contracts package."""
    root = Path(v2v.__file__).parent
    names = sorted(
        ".".join(("v2v", *path.relative_to(root).with_suffix("").parts))
        for path in root.rglob("*_service_pb2.py")
    )
    return [importlib.import_module(name) for name in names]


def context_of(service_full_name: str) -> str:
    """`v2v.intake.v1.IntakeService` -> `intake`."""
    return service_full_name.split(".")[1]


def access_table(context: str) -> Mapping[str, Access] | None:
    """The service's `ACCESS` table (None when its adapter declares none)."""
    module = importlib.import_module(f"v2v_{context}.adapters.grpc_api")
    table = getattr(module, "ACCESS", None)
    return table if isinstance(table, Mapping) else None


def grpc_methods() -> tuple[list[GrpcMethod], list[str]]:
    """Every method of every service, with its declared access; and the stale entries."""
    methods: list[GrpcMethod] = []
    stale: list[str] = []
    for module in service_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            context = context_of(service.full_name)
            table = access_table(context) or {}
            names = {method.name for method in service.methods}
            stale += [f"{service.full_name}: ACCESS[{n!r}]" for n in table if n not in names]
            methods += [
                GrpcMethod(context, method, table.get(method.name)) for method in service.methods
            ]
    return methods, stale


def http_routes(context: str, openapi: Mapping[str, Any]) -> list[HttpRoute]:
    """Every operation of one service's OpenAPI document, with its declared access."""
    routes = []
    for path, operations in sorted(openapi.get("paths", {}).items()):
        for method in HTTP_METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            schemes = {name for entry in operation.get("security", []) for name in entry}
            routes.append(
                HttpRoute(
                    context,
                    method.upper(),
                    path,
                    Access.from_openapi(operation),
                    COURIER_SCHEME in schemes,
                )
            )
    return routes


def inventory(openapi_by_context: Mapping[str, Mapping[str, Any]]) -> Inventory:
    methods, stale = grpc_methods()
    routes = [
        route
        for context, document in sorted(openapi_by_context.items())
        for route in http_routes(context, document)
    ]
    return Inventory(methods, routes, stale)


def missing(keys: Iterable[str], builders: Mapping[str, Any]) -> list[str]:
    """The keys without a request builder."""
    return [key for key in keys if key not in builders]
