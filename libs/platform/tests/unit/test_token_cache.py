"""Credentials are verified once and remembered (issue 18 item 4): a site token's ES256
signature and claims (HTTP), a peer certificate's site, roles and serial (gRPC), each until it
expires, in a bounded LRU (`V2V_TOKEN_CACHE_SIZE`, 0: off). Revocation is not cached: a token
or certificate revoked after it was remembered is refused as soon as the service reloads the
list, as without the cache.
(No `from __future__ import annotations`: FastAPI resolves the route's dependency below.)"""

import datetime
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Annotated, Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import jwt
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from v2v_platform.auth import (
    AuthInterceptor,
    CallerIdentity,
    Role,
    SiteTlsFiles,
    channel_credentials,
    current_caller,
    pki_cli,
    secure_channel,
    server_credentials,
)
from v2v_platform.auth.pki import init_pki, load_ca, parse_site_spec
from v2v_platform.auth.revocation_watch import Revocations
from v2v_platform.auth.tokens import TOKEN_AUDIENCE, issue_site_token, serial_text
from v2v_platform.auth.verification_cache import (
    CACHE_SIZE_ENV,
    DEFAULT_CACHE_SIZE,
    VerificationCache,
    cache_size_from_env,
)
from v2v_platform.http_api import SiteTokenVerifier, create_app, require_roles
from v2v_platform.testing.producing import eventually

SITES = ["HOSP-A:collection,infusion", "HOSP-B:collection", "GMP-1:manufacturing"]
SAY = "/v2v.test.Echo/Say"
TIMEOUT = 5
RELOADED_WITHIN_S = 15.0
runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(pki_cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(site) for site in SITES])
    return directory


def api(verifier: SiteTokenVerifier) -> TestClient:
    app = create_app("test", "1")
    collection = require_roles(lambda: verifier, Role.COLLECTION)

    @app.get("/whoami")
    def whoami(caller: Annotated[CallerIdentity, Depends(collection)]) -> dict[str, str]:
        return {"site": caller.site_id}

    return TestClient(app, raise_server_exceptions=False)


def call(client: TestClient, token: str) -> Any:
    return client.get("/whoami", headers={"Authorization": f"Bearer {token}"})


def refused(client: TestClient, token: str, status: int = 401) -> Any:
    response = call(client, token)
    return response if response.status_code == status else None


# --- site tokens (HTTP) ----------------------------------------------------------------------


def test_a_token_is_verified_once_and_a_revocation_after_that_still_refuses_it(
    pki: Path, tmp_path: Path
) -> None:
    verifier = SiteTokenVerifier(pki / "ca.crt", Revocations(pki / "ca.crt"))
    client = api(verifier)
    token, other = issue_site_token(pki, "HOSP-A"), issue_site_token(pki, "HOSP-A")

    assert [call(client, token).json() for _ in range(3)] == [{"site": "HOSP-A"}] * 3
    assert (len(verifier.cache), verifier.cache.misses, verifier.cache.hits) == (1, 1, 2)

    token_file = tmp_path / "token"
    token_file.write_text(token)
    assert cli("revoke-token", "--out", str(pki), str(token_file)).exit_code == 0

    response = eventually(lambda: refused(client, token), "revoked while cached", RELOADED_WITHIN_S)
    assert response.json()["detail"].startswith("token revoked:")
    assert call(client, other).json() == {"site": "HOSP-A"}


def test_a_cached_token_of_a_revoked_certificate_is_refused(pki: Path) -> None:
    verifier = SiteTokenVerifier(pki / "ca.crt", Revocations(pki / "ca.crt"))
    client = api(verifier)
    token, other_site = issue_site_token(pki, "HOSP-A"), issue_site_token(pki, "HOSP-B")
    assert call(client, token).status_code == call(client, token).status_code == 200
    assert verifier.cache.hits == 1

    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0

    response = eventually(lambda: refused(client, token), "certificate revoked", RELOADED_WITHIN_S)
    assert "revoked certificate" in response.json()["detail"]
    assert call(client, other_site).status_code == 200


def short_lived_token(pki: Path, site: str, seconds: float) -> str:
    """A site token like `issue_site_token`'s, expiring `seconds` from now."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((pki / "sites" / site / "tls.crt").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "sub": site,
        "roles": ["collection"],
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + datetime.timedelta(seconds=seconds),
        "jti": uuid.uuid4().hex,
        "cert_serial": serial_text(cert.serial_number),
    }
    return jwt.encode(claims, load_ca(pki).key, algorithm="ES256")


def test_a_cached_token_is_refused_once_it_expires(pki: Path) -> None:
    verifier = SiteTokenVerifier(pki / "ca.crt", Revocations(pki / "ca.crt"))
    client = api(verifier)
    token = short_lived_token(pki, "HOSP-A", 2.0)
    assert call(client, token).status_code == call(client, token).status_code == 200
    assert verifier.cache.hits == 1

    response = eventually(lambda: refused(client, token), "expired while cached", 15.0)

    assert "expired" in response.json()["detail"].lower()
    assert len(verifier.cache) == 0


def test_a_refused_token_is_never_remembered(pki: Path, tmp_path: Path) -> None:
    verifier = SiteTokenVerifier(pki / "ca.crt", Revocations(pki / "ca.crt"))
    client = api(verifier)
    foreign = tmp_path / "foreign"
    init_pki(foreign, [parse_site_spec("HOSP-A:collection")])
    forged = issue_site_token(foreign, "HOSP-A")
    expired = short_lived_token(pki, "HOSP-A", -60.0)

    for token in (forged, forged, expired, expired, "not-a-token"):
        assert call(client, token).status_code == 401

    assert (len(verifier.cache), verifier.cache.hits) == (0, 0)


def test_size_zero_turns_the_cache_off_and_the_size_is_checked(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_SIZE_ENV, raising=False)
    assert cache_size_from_env() == DEFAULT_CACHE_SIZE
    assert SiteTokenVerifier(pki / "ca.crt").cache.size == DEFAULT_CACHE_SIZE

    monkeypatch.setenv(CACHE_SIZE_ENV, "0")
    verifier = SiteTokenVerifier(pki / "ca.crt")
    client = api(verifier)
    token = issue_site_token(pki, "HOSP-A")
    assert [call(client, token).status_code for _ in range(3)] == [200] * 3
    assert (verifier.cache.size, len(verifier.cache), verifier.cache.hits) == (0, 0, 0)

    for wrong in ("-1", "many"):
        monkeypatch.setenv(CACHE_SIZE_ENV, wrong)
        with pytest.raises(ValueError, match=CACHE_SIZE_ENV):
            SiteTokenVerifier(pki / "ca.crt")


def test_the_cache_keeps_the_most_recently_used_entries_until_they_expire() -> None:
    now = [1000.0]
    cache: VerificationCache[str, int] = VerificationCache(2, clock=lambda: now[0])
    cache.put("a", 1, expires_at=1010)
    cache.put("b", 2, expires_at=1010)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, expires_at=1005)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.put("d", 4, expires_at=999)  # expired already: not kept
    assert cache.get("d") is None

    now[0] = 1005.0
    assert (cache.get("c"), cache.get("a"), len(cache)) == (None, 1, 1)
    now[0] = 1010.0
    assert (cache.get("a"), len(cache)) == (None, 0)


# --- peer certificates (gRPC) ------------------------------------------------------------------


def _say(request: bytes, context: Any) -> bytes:
    return current_caller().site_id.encode()


def grpc_server(pki: Path, interceptor: AuthInterceptor) -> tuple[Any, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[interceptor])
    handler = grpc.method_handlers_generic_handler(
        "v2v.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_say)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(SiteTlsFiles.for_site(pki, "GMP-1"))
    )
    server.start()
    return server, port


@pytest.fixture
def say_as(pki: Path) -> Iterator[Any]:
    channels: list[grpc.Channel] = []

    def open_say(port: int, site: str) -> Any:
        files = SiteTlsFiles.for_site(pki, site)
        channel = secure_channel(f"127.0.0.1:{port}", channel_credentials(files))
        channels.append(channel)
        return channel.unary_unary(SAY)

    yield open_say
    for channel in channels:
        channel.close()


def outcome(say: Any) -> Any:
    try:
        return say(b"hi", timeout=TIMEOUT)
    except grpc.RpcError as error:
        return error.code()


@pytest.mark.parametrize("size", [DEFAULT_CACHE_SIZE, 0])
def test_a_peer_certificate_is_read_once_and_its_revocation_still_refuses_it(
    pki: Path, say_as: Any, size: int
) -> None:
    roles = {SAY: frozenset({Role.COLLECTION})}
    interceptor = AuthInterceptor(roles, revocations=Revocations(pki / "ca.crt"), cache_size=size)
    server, port = grpc_server(pki, interceptor)
    try:
        say_a, say_b, say_gmp = (
            say_as(port, "HOSP-A"),
            say_as(port, "HOSP-B"),
            say_as(port, "GMP-1"),
        )
        assert [outcome(say_a) for _ in range(3)] == [b"HOSP-A"] * 3
        assert outcome(say_b) == b"HOSP-B"
        assert outcome(say_gmp) == grpc.StatusCode.PERMISSION_DENIED
        assert outcome(say_gmp) == grpc.StatusCode.PERMISSION_DENIED  # roles from the cache too
        if size:
            assert (len(interceptor.peers), interceptor.peers.hits) == (3, 3)
        else:
            assert (len(interceptor.peers), interceptor.peers.hits) == (0, 0)

        assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0

        eventually(
            lambda: outcome(say_a) == grpc.StatusCode.UNAUTHENTICATED,
            "HOSP-A refused while its certificate is cached",
            RELOADED_WITHIN_S,
        )
        assert outcome(say_b) == b"HOSP-B"
    finally:
        server.stop(0)
