"""Site identity from mTLS certificates, role authorization, and the `v2v pki` commands."""

from __future__ import annotations

import datetime
import json
import re
import stat
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from v2v_platform.auth import (
    AuthInterceptor,
    AuthorizationConfigError,
    CallerIdentity,
    CallerIdentityError,
    NoCurrentCaller,
    Role,
    SiteTlsFiles,
    TlsFilesMissing,
    caller_context,
    channel_credentials,
    current_caller,
    identity_from_certificate,
    pki,
    pki_cli,
    secure_channel,
    server_credentials,
)
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey

TIMEOUT = 5
SITES = ["HOSP-A:collection,infusion", "GMP-B:manufacturing,qc", "AUDIT:auditor"]
SERVER_SITE = "GMP-B"

SAY = "/v2v.test.Echo/Say"
SAY_MANY = "/v2v.test.Echo/SayMany"
COLLECT = "/v2v.test.Echo/Collect"
CHAT = "/v2v.test.Echo/Chat"
UNMAPPED = "/v2v.test.Echo/Unmapped"

REQUIRED_ROLES = {
    SAY: frozenset({Role.COLLECTION}),
    SAY_MANY: frozenset({Role.COLLECTION, Role.INFUSION}),
    COLLECT: frozenset({Role.QC}),
    CHAT: frozenset({Role.MANUFACTURING}),
}

runner = CliRunner()


def flat(text: str) -> str:
    """CLI output without rich box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def invoke(*args: str) -> Any:
    return runner.invoke(pki_cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    site_args = [arg for site in SITES for arg in ("--site", site)]
    result = invoke("init", "--out", str(out), *site_args, "--days", "30")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def foreign_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA issuing a certificate for the same site id."""
    out = tmp_path_factory.mktemp("foreign-pki")
    pki.init_pki(out, [pki.parse_site_spec("HOSP-A:collection,infusion")])
    return out


def _say(request: bytes, context: grpc.ServicerContext) -> bytes:
    return current_caller().site_id.encode()


def _say_many(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in range(3):
        yield current_caller().site_id.encode()


def _collect(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    count = sum(1 for _ in requests)
    return f"{current_caller().site_id}:{count}".encode()


def _chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield current_caller().site_id.encode() + b":" + request


def _echo_service() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "v2v.test.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(_say),
            "SayMany": grpc.unary_stream_rpc_method_handler(_say_many),
            "Collect": grpc.stream_unary_rpc_method_handler(_collect),
            "Chat": grpc.stream_stream_rpc_method_handler(_chat),
            "Unmapped": grpc.unary_unary_rpc_method_handler(_say),
        },
    )


def _start_server(credentials: grpc.ServerCredentials) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[AuthInterceptor(REQUIRED_ROLES)],
    )
    server.add_generic_rpc_handlers((_echo_service(),))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@pytest.fixture(scope="module")
def server_port(pki_dir: Path) -> Iterator[int]:
    server, port = _start_server(server_credentials(SiteTlsFiles.for_site(pki_dir, SERVER_SITE)))
    yield port
    server.stop(grace=None)


@pytest.fixture
def channel_for(pki_dir: Path, server_port: int) -> Iterator[Any]:
    channels: list[grpc.Channel] = []

    def open_channel(site_id: str, directory: Path | None = None) -> grpc.Channel:
        files = SiteTlsFiles.for_site(directory or pki_dir, site_id)
        channel = secure_channel(f"127.0.0.1:{server_port}", channel_credentials(files))
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        channel.close()


def _rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


# --- gRPC: identity and authorization --------------------------------------------------


def test_allowed_site_gets_its_own_site_id_from_the_certificate(channel_for: Any) -> None:
    say = channel_for("HOSP-A").unary_unary(SAY)
    assert say(b"hello", timeout=TIMEOUT) == b"HOSP-A"


def test_wrong_role_is_permission_denied(channel_for: Any) -> None:
    say = channel_for("GMP-B").unary_unary(SAY)
    error = _rpc_error(lambda: say(b"hello", timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert SAY in error.details()
    assert "GMP-B" in error.details()
    assert "collection" in error.details()


def test_unmapped_method_is_denied(channel_for: Any) -> None:
    unmapped = channel_for("HOSP-A").unary_unary(UNMAPPED)
    error = _rpc_error(lambda: unmapped(b"hello", timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert UNMAPPED in error.details()


def test_unknown_method_is_unimplemented(channel_for: Any) -> None:
    missing = channel_for("HOSP-A").unary_unary("/v2v.test.Echo/Nope")
    error = _rpc_error(lambda: missing(b"hello", timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_metadata_cannot_change_the_identity(channel_for: Any) -> None:
    say = channel_for("HOSP-A").unary_unary(SAY)
    metadata = (("site", "GMP-B"), ("x-v2v-site", "GMP-B"), ("role", "admin"))
    assert say(b"GMP-B", timeout=TIMEOUT, metadata=metadata) == b"HOSP-A"


def test_metadata_cannot_grant_a_role(channel_for: Any) -> None:
    say = channel_for("AUDIT").unary_unary(SAY)
    error = _rpc_error(
        lambda: say(b"x", timeout=TIMEOUT, metadata=(("site", "HOSP-A"), ("role", "collection")))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_certificate_from_another_ca_fails_the_handshake(
    channel_for: Any, foreign_pki_dir: Path
) -> None:
    say = channel_for("HOSP-A", foreign_pki_dir).unary_unary(SAY)
    error = _rpc_error(lambda: say(b"hello", timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_client_cert_from_another_ca_with_our_ca_trusted_is_refused(
    pki_dir: Path, foreign_pki_dir: Path, server_port: int
) -> None:
    """Even trusting the right server, a client presenting a foreign cert is rejected."""
    foreign = SiteTlsFiles.for_site(foreign_pki_dir, "HOSP-A")
    files = SiteTlsFiles(pki_dir / "ca.crt", foreign.cert, foreign.key)
    with secure_channel(f"127.0.0.1:{server_port}", channel_credentials(files)) as channel:
        say = channel.unary_unary(SAY)
        error = _rpc_error(lambda: say(b"hello", timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_unary_stream_sees_the_caller(channel_for: Any) -> None:
    say_many = channel_for("HOSP-A").unary_stream(SAY_MANY)
    assert list(say_many(b"x", timeout=TIMEOUT)) == [b"HOSP-A"] * 3


def test_any_of_the_required_roles_is_enough(pki_dir: Path, channel_for: Any) -> None:
    pki.add_sites(pki_dir, [pki.parse_site_spec("CLINIC-C:infusion")])
    say_many = channel_for("CLINIC-C").unary_stream(SAY_MANY)
    assert list(say_many(b"x", timeout=TIMEOUT)) == [b"CLINIC-C"] * 3


def test_stream_unary_sees_the_caller(channel_for: Any) -> None:
    collect = channel_for("GMP-B").stream_unary(COLLECT)
    assert collect(iter([b"a", b"b"]), timeout=TIMEOUT) == b"GMP-B:2"


def test_stream_stream_sees_the_caller(channel_for: Any) -> None:
    chat = channel_for("GMP-B").stream_stream(CHAT)
    assert list(chat(iter([b"1", b"2"]), timeout=TIMEOUT)) == [b"GMP-B:1", b"GMP-B:2"]


def test_streaming_wrong_role_is_denied(channel_for: Any) -> None:
    chat = channel_for("AUDIT").stream_stream(CHAT)
    error = _rpc_error(lambda: list(chat(iter([b"1"]), timeout=TIMEOUT)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_health_check_is_open_to_any_authenticated_site(channel_for: Any) -> None:
    stub = health_pb2_grpc.HealthStub(channel_for("AUDIT"))
    response = stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_no_client_certificate_is_unauthenticated(pki_dir: Path) -> None:
    """If a server is ever configured without require_client_auth, the interceptor still
    refuses callers that present no certificate."""
    files = SiteTlsFiles.for_site(pki_dir, SERVER_SITE)
    material = files.read()
    credentials = grpc.ssl_server_credentials(
        [(material.key, material.cert)], root_certificates=material.ca, require_client_auth=False
    )
    server, port = _start_server(credentials)
    try:
        client = grpc.ssl_channel_credentials(root_certificates=material.ca)
        with secure_channel(f"127.0.0.1:{port}", client) as channel:
            say = channel.unary_unary(SAY)
            error = _rpc_error(lambda: say(b"x", timeout=TIMEOUT))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            health_stub = health_pb2_grpc.HealthStub(channel)
            error = _rpc_error(
                lambda: health_stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
            )
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(grace=None)


# --- interceptor configuration, identity, context --------------------------------------


def test_interceptor_rejects_empty_role_sets() -> None:
    with pytest.raises(AuthorizationConfigError, match="maps to no roles"):
        AuthInterceptor({SAY: frozenset()})


def test_interceptor_rejects_bad_method_names() -> None:
    with pytest.raises(AuthorizationConfigError, match="full gRPC method name"):
        AuthInterceptor({"v2v.test.Echo.Say": frozenset({Role.QC})})


def test_interceptor_rejects_method_both_open_and_restricted() -> None:
    with pytest.raises(AuthorizationConfigError, match="both open and role-restricted"):
        AuthInterceptor({SAY: frozenset({Role.QC})}, open_methods={SAY})


def _self_signed(uris: list[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256())


def test_identity_from_site_certificate(pki_dir: Path) -> None:
    cert = x509.load_pem_x509_certificate((pki_dir / "sites/HOSP-A/tls.crt").read_bytes())
    assert identity_from_certificate(cert) == CallerIdentity(
        "HOSP-A", frozenset({Role.COLLECTION, Role.INFUSION})
    )


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        ([], "has no 'urn:v2v:site:<SITE_ID>' SAN URIs"),
        (["urn:v2v:role:qc"], "has no 'urn:v2v:site:<SITE_ID>' SAN URIs"),
        (["urn:v2v:site:A1", "urn:v2v:site:B2"], "has 2 (A1, B2)"),
        (["urn:v2v:site:bad site"], "site id 'bad site' is invalid"),
        (["urn:v2v:site:A1", "urn:v2v:role:superuser"], "unknown role 'superuser'"),
    ],
)
def test_identity_errors(uris: list[str], message: str) -> None:
    with pytest.raises(CallerIdentityError, match=re.escape(message)):
        identity_from_certificate(_self_signed(uris))


def test_current_caller_outside_a_request() -> None:
    with pytest.raises(NoCurrentCaller, match="no authenticated caller"):
        current_caller()
    identity = CallerIdentity("HOSP-A", frozenset({Role.COLLECTION}))
    with caller_context(identity):
        assert current_caller() == identity
    with pytest.raises(NoCurrentCaller):
        current_caller()


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TlsFilesMissing, match=r"tls\.crt"):
        server_credentials(SiteTlsFiles.for_site(tmp_path, "HOSP-A"))


# --- PKI files and CLI -------------------------------------------------------------------


def test_pki_layout_and_permissions(pki_dir: Path) -> None:
    assert stat.S_IMODE((pki_dir / "ca.key").stat().st_mode) == 0o600
    for site in ("HOSP-A", "GMP-B", "AUDIT"):
        site_dir = pki_dir / "sites" / site
        for name in ("tls.key", "signing.key"):
            assert stat.S_IMODE((site_dir / name).stat().st_mode) == 0o600
        cert = x509.load_pem_x509_certificate((site_dir / "tls.crt").read_bytes())
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == site
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in san.get_values_for_type(x509.DNSName)
        assert f"urn:v2v:site:{site}" in san.get_values_for_type(x509.UniformResourceIdentifier)


def test_key_ring_holds_every_site_signing_key(pki_dir: Path) -> None:
    ring = KeyRing.load(pki_dir / "signing-keys.json")
    for site in ("HOSP-A", "GMP-B", "AUDIT"):
        key = SiteSigningKey.load(site, pki_dir / "sites" / site / "signing.key")
        assert key.key_id in ring
        assert ring.verify(key.key_id, b"d" * 32, key.sign(b"d" * 32))


def test_init_prints_a_summary(tmp_path: Path) -> None:
    result = invoke("init", "--out", str(tmp_path), "--site", "HOSP-A:collection")
    assert result.exit_code == 0, result.output
    assert "HOSP-A" in result.output
    assert "collection" in result.output


def test_cli_rejects_a_bad_site_id(tmp_path: Path) -> None:
    result = invoke("init", "--out", str(tmp_path), "--site", "hosp-a:collection")
    assert result.exit_code != 0
    assert "site id 'hosp-a' is invalid" in flat(result.output)
    assert not (tmp_path / "ca.crt").exists()


def test_cli_rejects_an_unknown_role(tmp_path: Path) -> None:
    result = invoke("init", "--out", str(tmp_path), "--site", "HOSP-A:collection,surgeon")
    assert result.exit_code != 0
    assert "unknown role 'surgeon'" in flat(result.output)


def test_cli_rejects_a_site_without_roles(tmp_path: Path) -> None:
    result = invoke("init", "--out", str(tmp_path), "--site", "HOSP-A")
    assert result.exit_code != 0
    assert "has no roles" in flat(result.output)


def test_cli_rejects_duplicate_sites(tmp_path: Path) -> None:
    result = invoke(
        "init", "--out", str(tmp_path), "--site", "HOSP-A:qc", "--site", "HOSP-A:collection"
    )
    assert result.exit_code != 0
    assert "more than once" in flat(result.output)


def test_cli_refuses_to_overwrite_a_ca_without_force(tmp_path: Path) -> None:
    assert invoke("init", "--out", str(tmp_path), "--site", "HOSP-A:qc").exit_code == 0
    ca_before = (tmp_path / "ca.crt").read_bytes()
    result = invoke("init", "--out", str(tmp_path), "--site", "HOSP-A:qc")
    assert result.exit_code != 0
    assert "already exists" in flat(result.output)
    assert "--force" in flat(result.output)
    assert (tmp_path / "ca.crt").read_bytes() == ca_before

    forced = invoke("init", "--out", str(tmp_path), "--site", "GMP-B:qc", "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "ca.crt").read_bytes() != ca_before
    assert not (tmp_path / "sites" / "HOSP-A").exists()
    ring = json.loads((tmp_path / "signing-keys.json").read_text())
    assert [entry["site_id"] for entry in ring["keys"]] == ["GMP-B"]


def test_add_site_reuses_the_ca(tmp_path: Path) -> None:
    assert invoke("init", "--out", str(tmp_path), "--site", "HOSP-A:collection").exit_code == 0
    ca_before = (tmp_path / "ca.crt").read_bytes()
    result = invoke("add-site", "--out", str(tmp_path), "--site", "COURIER-1:courier")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    ca = x509.load_pem_x509_certificate(ca_before)
    cert = x509.load_pem_x509_certificate((tmp_path / "sites/COURIER-1/tls.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    ring = json.loads((tmp_path / "signing-keys.json").read_text())
    assert sorted(entry["site_id"] for entry in ring["keys"]) == ["COURIER-1", "HOSP-A"]


def test_add_site_refuses_an_existing_site_without_force(tmp_path: Path) -> None:
    assert invoke("init", "--out", str(tmp_path), "--site", "HOSP-A:collection").exit_code == 0
    result = invoke("add-site", "--out", str(tmp_path), "--site", "HOSP-A:collection")
    assert result.exit_code != 0
    assert "site HOSP-A already exists" in flat(result.output)
    forced = invoke("add-site", "--out", str(tmp_path), "--site", "HOSP-A:collection", "--force")
    assert forced.exit_code == 0, forced.output
    ring = json.loads((tmp_path / "signing-keys.json").read_text())
    assert [entry["site_id"] for entry in ring["keys"]] == ["HOSP-A", "HOSP-A"]


def test_add_site_without_a_ca(tmp_path: Path) -> None:
    result = invoke("add-site", "--out", str(tmp_path), "--site", "HOSP-A:collection")
    assert result.exit_code != 0
    assert "no consortium CA" in flat(result.output)
