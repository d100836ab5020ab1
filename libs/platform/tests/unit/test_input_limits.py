"""Bounded input (v2v_platform.limits): field limits, finite numbers, no future times, the HTTP
body limit checked before the body is read, the gRPC message limit."""

import asyncio
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from v2v_platform import limits
from v2v_platform.attribution import Attribution, SignatureManifestation, WindowOverride
from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import ConfigurationError, SiteServiceSettings, load_settings
from v2v_platform.errors import InvalidInput
from v2v_platform.grpc_service import build_server
from v2v_platform.http_api import FreeText, IdText, Items, NameText, create_app
from v2v_platform.service_application import (
    ServiceApplication,
    UnpublishedRecords,
    din_or_problem,
    parse_din,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
MB = 1024 * 1024


def app(**overrides: Any) -> ServiceApplication[UnpublishedRecords]:
    return ServiceApplication(env=POPO, site_id="HOSP-A", clock=lambda: NOW, **overrides)


def person(**fields: str) -> Attribution:
    given = {"user_id": "u-1", "printed_name": "Ada", "role": "collection", "site_id": "HOSP-A"}
    return Attribution(**{**given, **fields})


def test_a_text_over_its_limit_is_refused_naming_the_field_and_the_limit() -> None:
    assert limits.check_text("x" * 64, "patient_pseudonym", 64) == "x" * 64
    with pytest.raises(InvalidInput, match="patient_pseudonym has 2097152 characters; the limit"):
        limits.check_id("x" * (2 * MB), "patient_pseudonym")
    with pytest.raises(InvalidInput, match="notes has 2001 characters; the limit is 2000"):
        limits.check_free_text("n" * 2001, "notes")


def test_a_list_over_its_limit_is_refused_naming_the_field_and_the_limit() -> None:
    with pytest.raises(InvalidInput, match="readings has 60000 items; the limit is 1000"):
        limits.check_items([0] * 60_000, "readings", limits.MAX_READINGS)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(value: float) -> None:
    with pytest.raises(InvalidInput, match="temperature_c must be a finite number"):
        limits.check_finite(value, "temperature_c")
    assert limits.check_finite(-196.0, "temperature_c") == -196.0


def test_an_echo_is_cut_at_the_label_limit_and_marked() -> None:
    assert limits.echo("A1234 25 000001") == "A1234 25 000001"
    cut = limits.echo("L" * 300)
    assert cut.startswith("L" * 256) and not cut.startswith("L" * 257)
    assert cut.endswith("…[cut: 300 characters in all]")
    assert len(limits.echo("L" * (10 * MB))) < 300


def test_an_over_long_label_is_no_din_and_its_refusal_is_bounded() -> None:
    din, problem = din_or_problem("9" * (10 * MB))
    assert din is None and len(problem) < 1000 and "cut: 10485760 characters" in problem
    with pytest.raises(InvalidInput) as refused:
        parse_din("9" * (10 * MB))
    assert len(str(refused.value)) < 1000


def test_a_time_in_2999_is_refused_naming_the_field() -> None:
    with pytest.raises(
        InvalidInput, match=r"result_at 2999-01-01T00:00:00\+00:00 is in the future"
    ):
        app().when(datetime(2999, 1, 1, tzinfo=UTC), "result_at")


def test_the_clock_skew_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ahead = NOW + timedelta(minutes=8)
    with pytest.raises(InvalidInput, match=r"scanned_at .* is in the future"):
        app().when(ahead, "scanned_at")
    monkeypatch.setenv("V2V_CLOCK_SKEW_SECONDS", "600")
    settings = load_settings(SkewSettings, site_id="HOSP-A", pki_dir=tmp_path)
    assert app(clock_skew=settings.clock_skew).when(ahead, "scanned_at") == ahead
    assert app(clock_skew=timedelta(0)).clock_skew == timedelta(0)
    monkeypatch.setenv("V2V_CLOCK_SKEW_SECONDS", "86400")
    with pytest.raises(ConfigurationError) as bad:
        load_settings(SkewSettings, site_id="HOSP-A", pki_dir=tmp_path)
    assert "V2V_CLOCK_SKEW_SECONDS" in str(bad.value)


class SkewSettings(SiteServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"printed_name": "N" * (3 * MB // 2)}, "operator.printed_name has 1572864 characters"),
        ({"user_id": "u" * 65}, "operator.user_id has 65 characters; the limit is 64"),
        ({"reason": "r" * 2001}, "reason has 2001 characters; the limit is 2000"),
    ],
)
def test_who_acts_is_bounded_for_local_and_authored_commands(
    fields: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidInput, match=named):
        app().check_local(person(**fields))
    with pytest.raises(InvalidInput, match=named):
        app().authored(person(site_id="HOSP-B", **fields))


def test_a_window_override_is_bounded_and_not_signed_in_the_future() -> None:
    signed = SignatureManifestation("u-qp", "Dr. Q", "approval", NOW)
    app().check_override(WindowOverride("urgent", signed), "window_override")
    late = SignatureManifestation("u-qp", "Dr. Q", "approval", datetime(2999, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match=r"window_override\.signature\.signed_at .* future"):
        app().check_override(WindowOverride("urgent", late), "window_override")
    with pytest.raises(InvalidInput, match=r"window_override\.reason has 2001 characters"):
        app().check_override(WindowOverride("r" * 2001, signed), "window_override")


class Body(BaseModel):
    user_id: IdText
    printed_name: NameText
    notes: FreeText = ""
    labels: Items[str] = []


@pytest.fixture(scope="module")
def client() -> TestClient:
    api = create_app("test", "1")

    @api.post("/things")
    def record(body: Body) -> dict[str, int]:
        return {"labels": len(body.labels)}

    return TestClient(api, raise_server_exceptions=False)


def test_http_fields_over_their_limits_are_422_naming_field_and_limit(client: TestClient) -> None:
    body = {"user_id": "u" * 65, "printed_name": "N" * 201, "labels": ["x"] * 21}
    response = client.post("/things", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "body.user_id: String should have at most 64 characters" in detail
    assert "body.printed_name: String should have at most 200 characters" in detail
    assert "body.labels: List should have at most 20 items" in detail


def test_an_http_body_over_the_limit_is_413_naming_the_limit(client: TestClient) -> None:
    body = {"user_id": "u", "printed_name": "N" * (10 * MB)}
    response = client.post("/things", json=body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["limit_bytes"] == limits.MAX_HTTP_BODY_BYTES == 262144
    assert "exceeds the limit of 262144 bytes (256 KiB)" in problem["detail"]


def test_a_chunked_http_body_is_cut_off_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": "u", "printed_name": "'
        for _ in range(64):
            yield b"N" * 65536
        yield b'"}'

    response = client.post("/things", content=chunks())
    assert response.status_code == 413
    assert response.json()["type"] == "urn:v2v:problem:body-too-large"


def asgi_post(headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """POST /things straight to the ASGI app: (status answered, chunks of 64 KiB read)."""
    api = create_app("test", "1")

    @api.post("/things")
    def record(body: Body) -> dict[str, int]:
        return {"labels": len(body.labels)}

    read: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        read.append(1)
        more = len(read) < chunks
        return {"type": "http.request", "body": b"N" * 65536, "more_body": more}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/things",
        "raw_path": b"/things",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "server": ("test", 80),
        "client": ("test", 1),
    }
    asyncio.run(api(scope, receive, send))
    return sent[0]["status"], len(read)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read() -> None:
    assert asgi_post([(b"content-length", str(10 * MB).encode())], 160) == (413, 0)


def test_a_body_without_length_is_read_only_up_to_the_limit() -> None:
    status, read = asgi_post([(b"transfer-encoding", b"chunked")], 160)
    assert status == 413
    assert read == limits.MAX_HTTP_BODY_BYTES // 65536 + 1


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in ["HOSP-A:collection", "GMP-B:qc"]])
    return directory


def test_a_grpc_message_over_the_limit_is_refused(pki: Path) -> None:
    handler = grpc.method_handlers_generic_handler(
        "v2v.test.Sink", {"Put": grpc.unary_unary_rpc_method_handler(lambda r, c: b"ok")}
    )
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-B"),
        required_roles={"/v2v.test.Sink/Put": frozenset({Role.COLLECTION})},
        register=lambda s: s.add_generic_rpc_handlers((handler,)),
        service_names=["v2v.test.Sink"],
    )
    try:
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
        with secure_channel(f"127.0.0.1:{running.port}", credentials) as channel:
            put = channel.unary_unary("/v2v.test.Sink/Put")
            assert put(b"x" * (limits.MAX_GRPC_MESSAGE_BYTES - 1024), timeout=5) == b"ok"
            with pytest.raises(grpc.RpcError) as refused:
                put(b"x" * (limits.MAX_GRPC_MESSAGE_BYTES + 1), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        running.stop(0)
