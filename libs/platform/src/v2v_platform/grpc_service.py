"""Serving a service's gRPC API: mTLS, role checks, health, reflection, domain errors.

`build_server` is what every service's entry point calls; `translate_errors` wraps each
servicer method so domain refusals become the right status code with the reason, and no
stack trace ever reaches a caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from v2v_platform import telemetry
from v2v_platform.auth.identity import Role
from v2v_platform.auth.interceptor import AuthInterceptor
from v2v_platform.auth.tls import SiteTlsFiles, server_credentials
from v2v_platform.errors import DomainError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class RunningServer:
    server: Any
    port: int
    health: health.HealthServicer

    def stop(self, grace_s: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()


class TracingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """One SERVER span per unary call (outermost, so the handler and the events it records
    run inside it), continuing the caller's trace from the `traceparent` metadata."""

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method)
        metadata = {key: value for key, value in handler_call_details.invocation_metadata or ()}
        behavior = handler.unary_unary

        def traced(request: Any, context: Any) -> Any:
            with telemetry.server_span(f"gRPC {method}", metadata):
                return behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def build_server(
    *,
    tls: SiteTlsFiles,
    required_roles: Mapping[str, frozenset[Role]],
    register: Callable[[Any], None],
    service_names: Iterable[str],
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
) -> RunningServer:
    """Start a gRPC server on `address` (port 0 picks a free one) with mTLS and auth."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[TracingInterceptor(), AuthInterceptor(required_roles)],
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_secure_port(address, server_credentials(tls))
    if port == 0:
        raise OSError(f"could not bind gRPC server to {address}")
    server.start()
    return RunningServer(server, port, health_servicer)


def translate_errors(method: F) -> F:
    """Servicer method decorator: DomainError -> its status code and reason; deadline honoured."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before start")
        try:
            return method(self, request, context)
        except DomainError as error:
            context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error))

    return wrapper  # type: ignore[return-value]
