"""The manufacturing slot port over gRPC (v2v.manufacturing.v1.ManufacturingService/BookSlot).

Manufacturing books a slot only for a COI it knows the calling site enrolled, and it learns
enrolments from intake's `PatientEnrolled` on Kafka: right after enrolment it may not know the
COI yet and answers NOT_FOUND. The client retries NOT_FOUND with exponential backoff for a
bounded time (`retry_s`, the setting `V2V_MANUFACTURING_RETRY_S`), then fails naming the COI;
any other refusal is not retried. Retrying is safe: a NOT_FOUND booking reserved nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from v2v.common.v1.common_pb2 import Operator
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_intake.domain.values import BookedSlot
from v2v_intake.ports import UpstreamUnavailable
from v2v_platform.attribution import Attribution
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.errors import Refused

UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
NOT_KNOWN_YET = grpc.StatusCode.NOT_FOUND
RETRY_S = 30.0
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0


class GrpcManufacturingSlots:
    """Books slots with the caller site's mTLS identity; every call has a deadline."""

    def __init__(
        self,
        channel: Any,
        timeout_s: float = 5.0,
        retry_s: float = RETRY_S,
        *,
        first_backoff_s: float = FIRST_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._channel = channel
        self._stub = pb_grpc.ManufacturingServiceStub(channel)
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._first_backoff_s = first_backoff_s
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def connect(
        cls, target: str, tls: SiteTlsFiles, timeout_s: float = 5.0, retry_s: float = RETRY_S
    ) -> GrpcManufacturingSlots:
        return cls(secure_channel(target, channel_credentials(tls)), timeout_s, retry_s)

    def book(
        self, coi: str, manufacturing_site_id: str, slot_date: date, by: Attribution
    ) -> BookedSlot:
        request = pb.BookSlotRequest(
            operator=Operator(user_id=by.user_id, printed_name=by.printed_name),
            coi=coi,
            manufacturing_site_id=manufacturing_site_id,
            slot_date=slot_date.isoformat(),
        )
        deadline = self._clock() + self._retry_s
        backoff = self._first_backoff_s
        while True:
            try:
                response = self._stub.BookSlot(request, timeout=self._timeout_s)
                break
            except grpc.RpcError as error:
                if error.code() != NOT_KNOWN_YET:
                    raise _domain_error(error) from None
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise self._not_known(coi, manufacturing_site_id, error) from None
            self._sleep(min(backoff, remaining))
            backoff = min(2 * backoff, MAX_BACKOFF_S)
        return BookedSlot(
            response.slot_id,
            response.manufacturing_site_id,
            date.fromisoformat(response.slot_date),
        )

    def _not_known(self, coi: str, site: str, error: Any) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"manufacturing site {site} does not know COI {coi} after {self._retry_s:g} s:"
            f" its enrolment has not reached it yet (is {site} consuming intake's events?);"
            f" book again later ({error.details()})"
        )

    def close(self) -> None:
        self._channel.close()


def _domain_error(error: Any) -> Exception:
    code, details = error.code(), error.details()
    if code in UNAVAILABLE:
        return UpstreamUnavailable(f"manufacturing service unavailable: {details}")
    return Refused(f"manufacturing refused the slot ({code.name}): {details}")
