"""Making one call, gRPC or HTTP, as one caller, and reading its outcome.

gRPC calls are made generically from the method's descriptor (request and response classes
from `message_factory`, the request from proto JSON), so no stub is needed; a server stream
is read for `STREAM_S` seconds: a stream still open then was let through (what it sent is
the answer's text). HTTP calls fill the route's path template and send the JSON body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc  # type: ignore[import-untyped, unused-ignore]
import httpx
from google.protobuf import json_format, message_factory, text_format

from v2v_platform.auth.tls import SiteTlsFiles, channel_credentials, secure_channel
from v2v_testkit.authz.expectations import Answer, Outcome, grpc_answer, http_answer
from v2v_testkit.authz.inventory import GrpcMethod, HttpRoute
from v2v_testkit.authz.requests import Request

CALL_TIMEOUT_S = 20.0
STREAM_S = 2.0
DETAIL_CHARS = 160


class GrpcCaller:
    """One channel per (target, client certificate), kept for the whole matrix."""

    def __init__(self, ca: Path) -> None:
        self._ca = ca.read_bytes()
        self._channels: dict[tuple[str, str], grpc.Channel] = {}

    def channel(self, target: str, tls: SiteTlsFiles | None) -> grpc.Channel:
        key = (target, str(tls.cert) if tls else "")
        if key not in self._channels:
            credentials = (
                channel_credentials(tls)
                if tls is not None
                else grpc.ssl_channel_credentials(root_certificates=self._ca)
            )
            self._channels[key] = secure_channel(target, credentials)
        return self._channels[key]

    def call(
        self, target: str, tls: SiteTlsFiles | None, method: GrpcMethod, request: Request
    ) -> Outcome:
        channel = self.channel(target, tls)
        descriptor = method.descriptor
        request_class: Any = message_factory.GetMessageClass(descriptor.input_type)
        response_class: Any = message_factory.GetMessageClass(descriptor.output_type)
        try:
            message = json_format.ParseDict(request.body or {}, request_class())
        except json_format.ParseError as error:  # the builder is behind the .proto
            return Outcome("UNBUILDABLE", Answer.ERROR, str(error)[:DETAIL_CHARS])
        kwargs = {
            "request_serializer": request_class.SerializeToString,
            "response_deserializer": response_class.FromString,
        }
        if method.streams:
            return _read_stream(channel.unary_stream(method.full_name, **kwargs), message)
        try:
            reply = channel.unary_unary(method.full_name, **kwargs)(message, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            return _failed(error)
        return Outcome("OK", Answer.OK, "", text_format.MessageToString(reply))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def _read_stream(stream: Any, message: Any) -> Outcome:
    texts: list[str] = []
    try:
        for reply in stream(message, timeout=STREAM_S):
            texts.append(text_format.MessageToString(reply))
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Outcome("OK (stream open)", Answer.OK, "", "\n".join(texts))
        return _failed(error, texts)
    return Outcome("OK", Answer.OK, "", "\n".join(texts))


def _failed(error: grpc.RpcError, texts: list[str] | None = None) -> Outcome:
    name = error.code().name
    detail = (error.details() or "")[:DETAIL_CHARS]
    return Outcome(name, grpc_answer(name), detail, "\n".join(texts or []))


class HttpCaller:
    def __init__(self) -> None:
        self._client = httpx.Client(timeout=CALL_TIMEOUT_S, trust_env=False)

    def call(self, base: str, token: str | None, route: HttpRoute, request: Request) -> Outcome:
        path = route.path.format(**{k: quote(v, safe="") for k, v in request.path.items()})
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        reply = self._client.request(
            route.method,
            f"{base}{path}",
            headers=headers,
            params=dict(request.query),
            json=request.body,
        )
        return Outcome(
            str(reply.status_code), http_answer(reply.status_code), _detail(reply), reply.text
        )

    def close(self) -> None:
        self._client.close()


def _detail(reply: httpx.Response) -> str:
    if reply.is_success:
        return ""
    try:
        problem = reply.json()
    except ValueError:
        return reply.text[:DETAIL_CHARS]
    if isinstance(problem, dict):
        return str(problem.get("detail") or problem.get("title") or "")[:DETAIL_CHARS]
    return str(problem)[:DETAIL_CHARS]
