"""The public APIs as the consortium's own systems use them: gRPC over mTLS with each site's
certificate (one channel per target and calling site, shared by every journey), and the
couriers' HTTP API with their bearer tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
import httpx

from v2v.infusion.v1 import infusion_service_pb2_grpc as infusion_grpc
from v2v.intake.v1 import intake_service_pb2_grpc as intake_grpc
from v2v.logistics.v1 import logistics_service_pb2_grpc as logistics_grpc
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as manufacturing_grpc
from v2v.projection.v1 import projection_service_pb2_grpc as projection_grpc
from v2v.release.v1 import release_service_pb2_grpc as release_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_simulator.consortium import Consortium

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0
ABORTED_RETRIES = 6  # optimistic-concurrency conflicts ("try again") between journeys


class Targets(Protocol):
    """Where each service listens (a running `System`, or any other deployment)."""

    def grpc_target(self, context: str, site_id: str) -> str: ...

    def http_base(self, context: str, site_id: str) -> str: ...


def call(method: Callable[..., T], request: Any, timeout_s: float = CALL_TIMEOUT_S) -> T:
    """One RPC; waits for the channel to be ready (a restarting service), and tries again
    when the service answers ABORTED (a concurrent change: its documented retry)."""
    for attempt in range(ABORTED_RETRIES):
        try:
            return method(request, timeout=timeout_s, wait_for_ready=True)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ABORTED or attempt == ABORTED_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))  # back off before the documented retry
    raise AssertionError("unreachable")


def describe(error: grpc.RpcError) -> str:
    return f"{error.code().name}: {error.details()}"


class Courier:
    """A courier's phone: the courier HTTP API of the logistics service."""

    def __init__(self, courier_id: str, base_url: str, token: str) -> None:
        self.courier_id = courier_id
        self.party = f"courier:{courier_id}"
        self._http = httpx.Client(
            base_url=f"{base_url}/v1/courier",
            headers={"Authorization": f"Bearer {token}"},
            timeout=CALL_TIMEOUT_S,
        )

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._http.post(path, json=body)
        if reply.status_code != 200:
            raise CourierRefused(f"POST /v1/courier{path}: {reply.status_code} {reply.text}")
        result: dict[str, Any] = reply.json()
        return result

    def close(self) -> None:
        self._http.close()


class CourierRefused(RuntimeError):
    """The courier API answered with an error status."""


class Clients:
    def __init__(
        self,
        pki: Path,
        targets: Targets,
        consortium: Consortium,
        courier_tokens: dict[str, str],
    ) -> None:
        self.pki = pki
        self.targets = targets
        self.consortium = consortium
        self.courier_tokens = courier_tokens
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._lock = threading.Lock()

    def _channel(self, context: str, target_site: str, as_site: str) -> grpc.Channel:
        target = self.targets.grpc_target(context, target_site)
        with self._lock:
            channel = self._channels.get((target, as_site))
            if channel is None:
                credentials = channel_credentials(SiteTlsFiles.for_site(self.pki, as_site))
                channel = secure_channel(target, credentials)
                self._channels[(target, as_site)] = channel
            return channel

    def intake(self, hospital: str) -> Any:
        return intake_grpc.IntakeServiceStub(self._channel("intake", hospital, hospital))

    def manufacturing(self, gmp: str) -> Any:
        return manufacturing_grpc.ManufacturingServiceStub(self._channel("manufacturing", gmp, gmp))

    def release(self, gmp: str, as_site: str | None = None) -> Any:
        channel = self._channel("release", gmp, as_site or gmp)
        return release_grpc.ReleaseServiceStub(channel)

    def logistics(self, as_site: str) -> Any:
        channel = self._channel("logistics", self.consortium.logistics_site, as_site)
        return logistics_grpc.LogisticsServiceStub(channel)

    def infusion(self, hospital: str) -> Any:
        return infusion_grpc.InfusionServiceStub(self._channel("infusion", hospital, hospital))

    def projection(self) -> Any:
        auditor = self.consortium.auditor_site
        return projection_grpc.ChainQueryServiceStub(self._channel("projection", auditor, auditor))

    def courier(self, courier_id: str) -> Courier:
        """A new HTTP client for the courier (close it when the leg is done)."""
        base = self.targets.http_base("logistics", self.consortium.logistics_site)
        return Courier(courier_id, base, self.courier_tokens[courier_id])

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
