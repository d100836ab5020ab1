"""`python -m v2v_platform.healthcheck HOST:PORT [--live] [--pki DIR --site SITE]`: one gRPC
health check.

Asks the standard gRPC health service (``grpc.health.v1.Health/Check``) of a v2v service over
mTLS, presenting the certificate of ``--site`` from the PKI directory ``--pki`` (defaults:
``V2V_PKI_DIR`` and ``V2V_SITE_ID``, so inside a service's container no option is needed).
Exit status 0 when the answer is SERVING, 1 otherwise (not serving, unreachable, TLS refused,
timeout, missing files, bad arguments), with the reason on stderr: for NOT_SERVING, the
service's own reasons (e.g. "relay stopped: ..."). It never exits 2, which Docker reserves in
health checks.

By default it asks about the server as a whole: SERVING while the service is *ready* (its relay
and every consumer alive and progressing, see `v2v_platform.health`). ``--live`` asks about
liveness instead (service ``v2v.liveness``: SERVING unless a part died, which only a restart
mends; an outage waited out stays live).

Used by the compose health checks (readiness) and the Kubernetes exec probes (readiness, and
``--live`` for the startup and liveness probes; the native ``grpc:`` probe cannot present a
client certificate).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v_platform.auth.identity import InvalidSiteId
from v2v_platform.auth.tls import (
    SiteTlsFiles,
    TlsFilesMissing,
    channel_credentials,
    secure_channel,
)
from v2v_platform.health import DETAIL_METADATA_KEY, LIVENESS_SERVICE

HEALTHY = 0
UNHEALTHY = 1
DEFAULT_TIMEOUT_S = 3.0


class _Parser(argparse.ArgumentParser):
    """argparse that exits 1 (not 2) on a usage error."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(UNHEALTHY, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m v2v_platform.healthcheck",
        description="gRPC health check of a v2v service over mTLS (exit 0 SERVING, 1 otherwise).",
    )
    parser.add_argument("target", metavar="HOST:PORT", help="the service's gRPC address")
    parser.add_argument(
        "--pki",
        type=Path,
        default=os.environ.get("V2V_PKI_DIR") or None,
        help="PKI directory made by `v2v pki init` (default: $V2V_PKI_DIR)",
    )
    parser.add_argument(
        "--site",
        default=os.environ.get("V2V_SITE_ID") or None,
        help="site whose certificate is presented (default: $V2V_SITE_ID)",
    )
    asked = parser.add_mutually_exclusive_group()
    asked.add_argument(
        "--service",
        default="",
        help="health service name to ask about (default: the server as a whole: readiness)",
    )
    asked.add_argument(
        "--live",
        action="store_const",
        const=LIVENESS_SERVICE,
        dest="service",
        help=f"ask about liveness (service {LIVENESS_SERVICE}) instead of readiness",
    )
    parser.add_argument(
        "--server-name",
        default=None,
        help="name checked against the server certificate when HOST is not in it",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds before giving up (default: {DEFAULT_TIMEOUT_S:g})",
    )
    return parser


def check(
    target: str,
    tls: SiteTlsFiles,
    *,
    service: str = "",
    server_name: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[bool, str]:
    """Ask ``target``'s health service once; (True, "SERVING") or (False, the reason)."""
    try:
        credentials = channel_credentials(tls)
    except TlsFilesMissing as error:
        return False, str(error)
    label = f"{target} ({service})" if service else target
    with secure_channel(target, credentials, server_name=server_name) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply, call = stub.Check.with_call(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError as error:
            code = error.code()
            name = code.name if code is not None else "UNKNOWN"
            return False, f"{label}: {name}: {error.details() or 'no details'}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        detail = _detail(call.trailing_metadata())
        return False, f"{label}: {status}: {detail}" if detail else f"{label}: {status}"
    return True, status


def _detail(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The service's reasons for not serving, from the Check's trailing metadata."""
    for key, value in metadata or ():
        if key == DETAIL_METADATA_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.pki is None or options.site is None:
        print(
            "healthcheck: give --pki DIR and --site SITE (or set V2V_PKI_DIR and V2V_SITE_ID); "
            "v2v services only speak mTLS",
            file=sys.stderr,
        )
        return UNHEALTHY
    if options.timeout <= 0:
        print("healthcheck: --timeout must be positive", file=sys.stderr)
        return UNHEALTHY
    try:
        tls = SiteTlsFiles.for_site(options.pki, options.site)
    except InvalidSiteId as error:
        print(f"healthcheck: --site: {error}", file=sys.stderr)
        return UNHEALTHY
    healthy, message = check(
        options.target,
        tls,
        service=options.service,
        server_name=options.server_name,
        timeout_s=options.timeout,
    )
    if not healthy:
        print(f"healthcheck: not healthy: {message}", file=sys.stderr)
        return UNHEALTHY
    return HEALTHY


if __name__ == "__main__":
    sys.exit(main())
