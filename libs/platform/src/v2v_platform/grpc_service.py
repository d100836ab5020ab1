"""Serving a service's gRPC API: mTLS, role checks, health, reflection, domain errors.

`build_server` is what every service's entry point calls; `translate_errors` wraps each
servicer method so domain refusals become the right status code with the reason, and no
stack trace ever reaches a caller.

Health is the standard `grpc.health.v1` service. Given the service's health report
(`v2v_platform.health`), its statuses tell the truth: the server ("") and each API service
SERVING while the service is ready, NOT_SERVING otherwise; `v2v.liveness` SERVING while no part
stopped. The report is evaluated on every Check (a probe never sees a stale answer) and by the
runtime's watcher every second (so Watch streams and the log follow a change nobody asked
about); each change is logged once, with its reasons. A Check answered NOT_SERVING carries the
reasons in the trailing metadata `v2v-health-detail`.

Revocation: the server follows the CRL beside the consortium CA certificate it trusts
(`<pki>/ca.crl`, `v2v_platform.auth.revocation_watch`): a revoked client certificate is refused
(UNAUTHENTICATED); while the CRL or the revoked-token list of that directory cannot be trusted
the server refuses every call but health, and health is NOT_SERVING with the reason (part
`revocation`), so the fault is neither ignored nor silent.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from v2v_platform import limits, telemetry
from v2v_platform.auth.identity import Role
from v2v_platform.auth.interceptor import AuthInterceptor
from v2v_platform.auth.revocation_watch import Revocations, revocations_for
from v2v_platform.auth.tls import SiteTlsFiles, server_credentials
from v2v_platform.errors import DomainError
from v2v_platform.health import DETAIL_METADATA_KEY, LIVENESS_SERVICE, HealthReport, Problem

log = logging.getLogger(__name__)
health_log = logging.getLogger("v2v.health")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_DETAIL_CHARS = 2000
F = TypeVar("F", bound=Callable[..., Any])
REVOCATION_PART = "revocation"
REFUSING = "refusing"
"""The kind of health problem of a service refusing calls on purpose (fail closed): not ready,
still live (a restart would not fix the file)."""


class TruthfulHealthServicer(health.HealthServicer):  # type: ignore[misc, unused-ignore]
    """The standard health servicer, its statuses following a health report (see above)."""

    def __init__(self, service_names: Iterable[str], report: Callable[[], HealthReport]) -> None:
        super().__init__()
        self._names = ["", *service_names]
        self._report = report
        self._shown: tuple[tuple[str, str, str], ...] = ()
        self._shown_lock = threading.Lock()  # the base class has its own _lock
        for name in [*self._names, LIVENESS_SERVICE]:
            self.set(name, SERVING)

    def refresh(self) -> HealthReport:
        """Evaluate the report; on a change, set the statuses and log the change once."""
        report = self._report()
        with self._shown_lock:
            if report.key != self._shown:
                self._shown = report.key
                ready = SERVING if report.ready else NOT_SERVING
                for name in self._names:
                    self.set(name, ready)
                self.set(LIVENESS_SERVICE, SERVING if report.live else NOT_SERVING)
                _log_change(report)
        return report

    def Check(self, request: Any, context: Any) -> Any:
        report = self.refresh()
        reply = super().Check(request, context)
        if reply.status == NOT_SERVING and report.problems:
            context.set_trailing_metadata(((DETAIL_METADATA_KEY, _metadata_text(report)),))
        return reply


def _log_change(report: HealthReport) -> None:
    if report.ready:
        health_log.info("health: SERVING again: every part alive and progressing")
        return
    kinds = {problem.kind for problem in report.problems}
    level = logging.ERROR if kinds & {"stopped", REFUSING} else logging.WARNING
    if kinds == {"stopping"}:
        level = logging.INFO
    health_log.log(level, "health: NOT_SERVING: %s", report.describe())


def _metadata_text(report: HealthReport) -> str:
    """Metadata values are printable ASCII: anything else becomes '?'; bounded."""
    text = "".join(c if " " <= c <= "~" else "?" for c in report.describe())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def revocation_problems(revocations: Revocations) -> tuple[Problem, ...]:
    """A `revocation` health problem for each revocation list that cannot be used now."""
    return tuple(
        Problem(REVOCATION_PART, REFUSING, reason, f"{REVOCATION_PART}: {reason}")
        for reason in revocations.problems()
    )


def with_revocation(
    report: Callable[[], HealthReport], revocations: Revocations
) -> Callable[[], HealthReport]:
    """`report` plus the revocation problems it does not already hold."""

    def combined() -> HealthReport:
        base = report()
        new = tuple(p for p in revocation_problems(revocations) if p not in base.problems)
        return HealthReport((*base.problems, *new)) if new else base

    return combined


@dataclass
class RunningServer:
    server: Any
    port: int
    health: health.HealthServicer

    def refresh_health(self) -> None:
        """Re-evaluate the health report now (a server built without one has nothing to do)."""
        if isinstance(self.health, TruthfulHealthServicer):
            self.health.refresh()

    def stop(self, grace_s: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()


TRACE_METADATA = frozenset({"traceparent", "tracestate"})


class TracingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """One SERVER span per unary call (outermost, so the handler and the events it records
    run inside it), continuing the caller's trace from the `traceparent` metadata.

    The traced handler is built once per method; each call reads only its trace metadata."""

    def __init__(self) -> None:
        self._tracer = telemetry.tracer()  # a proxy until the process sets up tracing
        self._traced: dict[str, tuple[Any, Any]] = {}

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method)
        known = self._traced.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        traced = self._trace(handler, method)
        self._traced[method] = (handler, traced)
        return traced

    def _trace(self, handler: Any, method: str) -> Any:
        behavior, tracer, name = handler.unary_unary, self._tracer, f"gRPC {method}"

        def traced(request: Any, context: Any) -> Any:
            carrier = {
                key: value
                for key, value in context.invocation_metadata() or ()
                if key in TRACE_METADATA
            }
            parent = _TRACE_CONTEXT.extract(carrier) if carrier else _NO_PARENT
            with tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER):
                return behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


_TRACE_CONTEXT = TraceContextTextMapPropagator()
_NO_PARENT = otel_context.Context()  # a call without trace metadata starts a new trace


def build_server(
    *,
    tls: SiteTlsFiles,
    required_roles: Mapping[str, frozenset[Role]],
    register: Callable[[Any], None],
    service_names: Iterable[str],
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
    health_report: Callable[[], HealthReport] | None = None,
    revocations: Revocations | None = None,
) -> RunningServer:
    """Start a gRPC server on `address` (port 0 picks a free one) with mTLS and auth; its
    health follows `health_report` (SERVING without one) and the revocation lists beside the
    CA certificate of `tls` (or `revocations`)."""
    credentials = server_credentials(tls)  # missing files named before anything else
    revocations = revocations or revocations_for(tls.ca)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[
            TracingInterceptor(),
            AuthInterceptor(required_roles, revocations=revocations),
        ],
        # a larger request is refused (RESOURCE_EXHAUSTED) before any handler runs
        options=[("grpc.max_receive_message_length", limits.MAX_GRPC_MESSAGE_BYTES)],
    )
    register(server)
    names = list(service_names)
    report = with_revocation(health_report or HealthReport, revocations)
    health_servicer = TruthfulHealthServicer(names, report)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_secure_port(address, credentials)
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
