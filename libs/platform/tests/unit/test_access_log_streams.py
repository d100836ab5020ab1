"""Server streams (e.g. the projection's alert watch) are in the access log like unary calls:
the caller's site, roles, method and outcome, when the stream is refused and when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.grpc_service import RunningServer, build_server

WATCH = "/v2v.test.Watch/Follow"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    specs = ["AUDIT:auditor", "HOSP-B:collection", "LOG-1:courier"]
    init_pki(directory, [parse_site_spec(spec) for spec in specs])
    return directory


@pytest.fixture
def server(pki: Path) -> Iterator[RunningServer]:
    def follow(request: bytes, context: object) -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    handler = grpc.method_handlers_generic_handler(
        "v2v.test.Watch", {"Follow": grpc.unary_stream_rpc_method_handler(follow)}
    )
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "LOG-1"),
        required_roles={WATCH: frozenset({Role.AUDITOR})},
        register=lambda s: s.add_generic_rpc_handlers((handler,)),
        service_names=["v2v.test.Watch"],
    )
    yield running
    running.stop(0)


def follow_as(pki: Path, server: RunningServer, site: str) -> list[bytes] | grpc.StatusCode:
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    with secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
        try:
            return list(channel.unary_stream(WATCH)(b"", timeout=5))
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]


def test_a_stream_is_logged_when_it_ends_and_when_it_is_refused(
    pki: Path, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="v2v.access")

    assert follow_as(pki, server, "AUDIT") == [b"one", b"two"]
    assert follow_as(pki, server, "HOSP-B") == grpc.StatusCode.PERMISSION_DENIED

    lines = [r.getMessage() for r in caplog.records if r.name == "v2v.access"]
    assert lines == [
        f"grpc site=AUDIT roles=auditor {WATCH} coi=- outcome=OK",
        f"grpc site=HOSP-B roles=- {WATCH} coi=- outcome=PERMISSION_DENIED",
    ]
