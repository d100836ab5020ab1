"""The manufacturing slot port over gRPC (v2v.manufacturing.v1.ManufacturingService/BookSlot)."""

from __future__ import annotations

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


class GrpcManufacturingSlots:
    """Books slots with the caller site's mTLS identity; every call has a deadline."""

    def __init__(self, channel: Any, timeout_s: float = 5.0) -> None:
        self._channel = channel
        self._stub = pb_grpc.ManufacturingServiceStub(channel)
        self._timeout_s = timeout_s

    @classmethod
    def connect(
        cls, target: str, tls: SiteTlsFiles, timeout_s: float = 5.0
    ) -> GrpcManufacturingSlots:
        return cls(secure_channel(target, channel_credentials(tls)), timeout_s)

    def book(
        self, coi: str, manufacturing_site_id: str, slot_date: date, by: Attribution
    ) -> BookedSlot:
        request = pb.BookSlotRequest(
            operator=Operator(user_id=by.user_id, printed_name=by.printed_name),
            coi=coi,
            manufacturing_site_id=manufacturing_site_id,
            slot_date=slot_date.isoformat(),
        )
        try:
            response = self._stub.BookSlot(request, timeout=self._timeout_s)
        except grpc.RpcError as error:
            raise _domain_error(error) from None
        return BookedSlot(
            response.slot_id,
            response.manufacturing_site_id,
            date.fromisoformat(response.slot_date),
        )

    def close(self) -> None:
        self._channel.close()


def _domain_error(error: Any) -> Exception:
    code, details = error.code(), error.details()
    if code in UNAVAILABLE:
        return UpstreamUnavailable(f"manufacturing service unavailable: {details}")
    return Refused(f"manufacturing refused the slot ({code.name}): {details}")
