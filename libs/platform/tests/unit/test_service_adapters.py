"""Shared service adapters: problem+json over HTTP, site tokens, gRPC server with error mapping."""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import BaseModel

from v2v_platform.auth import (
    CallerIdentity,
    Role,
    SiteTlsFiles,
    channel_credentials,
    secure_channel,
)
from v2v_platform.auth.identity import current_caller
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.errors import NotFound, Refused
from v2v_platform.grpc_service import build_server, translate_errors
from v2v_platform.http_api import SiteTokenVerifier, create_app, require_roles

SITES = ["HOSP-A:collection,infusion", "GMP-B:manufacturing,qc"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    return directory


class Body(BaseModel):
    volume_ml: float


@pytest.fixture(scope="module")
def client(pki: Path) -> TestClient:
    app = create_app("test", "1")
    verifier = SiteTokenVerifier(pki / "ca.crt")
    collection = require_roles(lambda: verifier, Role.COLLECTION)

    @app.post("/collections/{name}")
    def record(
        name: str, body: Body, caller: Annotated[CallerIdentity, Depends(collection)]
    ) -> dict[str, Any]:
        if name == "missing":
            raise NotFound("no collection 'missing'")
        if body.volume_ml > 500:
            raise Refused("volume above 500 mL is not plausible")
        if name == "boom":
            raise RuntimeError("secret internals")
        return {"site": caller.site_id}

    return TestClient(app, raise_server_exceptions=False)


def _auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def test_site_comes_from_the_token(client: TestClient, pki: Path) -> None:
    response = client.post("/collections/c1", json={"volume_ml": 200}, headers=_auth(pki, "HOSP-A"))
    assert response.status_code == 200
    assert response.json() == {"site": "HOSP-A"}


@pytest.mark.parametrize(
    ("name", "body", "status", "detail"),
    [
        ("c1", {"volume_ml": 900}, 409, "volume above 500 mL is not plausible"),
        ("missing", {"volume_ml": 1}, 404, "no collection 'missing'"),
        ("c1", {"volume_ml": "lots"}, 422, "body.volume_ml"),
        ("boom", {"volume_ml": 1}, 500, "the request could not be completed"),
    ],
)
def test_errors_are_problem_documents(
    client: TestClient, pki: Path, name: str, body: dict[str, Any], status: int, detail: str
) -> None:
    response = client.post(f"/collections/{name}", json=body, headers=_auth(pki, "HOSP-A"))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_missing_bad_and_foreign_tokens_are_refused(
    client: TestClient, pki: Path, tmp_path: Path
) -> None:
    assert client.post("/collections/c1", json={"volume_ml": 1}).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.post("/collections/c1", json={"volume_ml": 1}, headers=bad).status_code == 401
    init_pki(tmp_path, [parse_site_spec("HOSP-A:collection")])
    foreign = _auth(tmp_path, "HOSP-A")
    response = client.post("/collections/c1", json={"volume_ml": 1}, headers=foreign)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_a_site_without_the_role_is_forbidden(client: TestClient, pki: Path) -> None:
    response = client.post("/collections/c1", json={"volume_ml": 1}, headers=_auth(pki, "GMP-B"))
    assert response.status_code == 403
    assert "GMP-B lacks a role among: collection" in response.json()["detail"]


class Echo:
    @translate_errors
    def say(self, request: bytes, context: Any) -> bytes:
        if request == b"refuse":
            raise Refused("mixed COIs in one batch")
        return current_caller().site_id.encode()


@pytest.fixture(scope="module")
def server(pki: Path) -> Iterator[int]:
    echo = Echo()
    handler = grpc.method_handlers_generic_handler(
        "v2v.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(echo.say)}
    )
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-B"),
        required_roles={"/v2v.test.Echo/Say": frozenset({Role.COLLECTION})},
        register=lambda s: s.add_generic_rpc_handlers((handler,)),
        service_names=["v2v.test.Echo"],
    )
    yield running.port
    running.stop(0)


def test_grpc_domain_errors_become_status_codes(pki: Path, server: int) -> None:
    with secure_channel(
        f"127.0.0.1:{server}", channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
    ) as channel:
        say = channel.unary_unary("/v2v.test.Echo/Say")
        assert say(b"hi", timeout=5) == b"HOSP-A"
        with pytest.raises(grpc.RpcError) as raised:
            say(b"refuse", timeout=5)
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.details() == "mixed COIs in one batch"
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="v2v.test.Echo"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
