"""Site certificates can be revoked (`v2v pki revoke`): a real X.509 CRL signed by the
consortium CA; the gRPC servers (real, with mTLS) refuse a revoked certificate, following the
CRL without a restart; a CRL that cannot be trusted makes them refuse every call (fail closed)
and say why in their health."""

from __future__ import annotations

import datetime
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, pki_cli, secure_channel
from v2v_platform.auth.identity import current_caller
from v2v_platform.auth.pki import add_sites, init_pki, load_ca, parse_site_spec
from v2v_platform.grpc_service import RunningServer, build_server
from v2v_platform.testing.producing import eventually

SITES = ["HOSP-A:collection,infusion", "HOSP-B:collection", "GMP-1:manufacturing,qc"]
SAY = "/v2v.test.Echo/Say"
TIMEOUT = 5
RELOADED_WITHIN_S = 15.0
runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(pki_cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(site) for site in SITES])
    return directory


def _say(request: bytes, context: Any) -> bytes:
    return current_caller().site_id.encode()


@pytest.fixture
def server(pki: Path) -> Iterator[RunningServer]:
    """A service's gRPC server as every service starts it (`build_server`, GMP-1's files)."""
    handler = grpc.method_handlers_generic_handler(
        "v2v.test.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(
                lambda r, c: current_caller().site_id.encode()
            )
        },
    )
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-1"),
        required_roles={SAY: frozenset({Role.COLLECTION})},
        register=lambda s: s.add_generic_rpc_handlers((handler,)),
        service_names=["v2v.test.Echo"],
    )
    yield running
    running.stop(0)


@pytest.fixture
def say_as(pki: Path, server: RunningServer) -> Iterator[Callable[[str], Any]]:
    channels: list[grpc.Channel] = []

    def open_say(site: str) -> Any:
        files = SiteTlsFiles.for_site(pki, site)
        channel = secure_channel(f"127.0.0.1:{server.port}", channel_credentials(files))
        channels.append(channel)
        return channel.unary_unary(SAY)

    yield open_say
    for channel in channels:
        channel.close()


def outcome(say: Any) -> Any:
    """The reply, or the RpcError."""
    try:
        return say(b"hi", timeout=TIMEOUT)
    except grpc.RpcError as error:
        return error


def refused(say: Any, code: Any) -> Any:
    result = outcome(say)
    return result if isinstance(result, grpc.RpcError) and result.code() == code else None


def health_of(pki: Path, server: RunningServer) -> tuple[Any, dict[str, str]]:
    files = SiteTlsFiles.for_site(pki, "HOSP-B")
    with secure_channel(f"127.0.0.1:{server.port}", channel_credentials(files)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply, call = stub.Check.with_call(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        return reply.status, dict(call.trailing_metadata() or ())


def serial_of(pki: Path, site: str) -> int:
    cert = x509.load_pem_x509_certificate((pki / "sites" / site / "tls.crt").read_bytes())
    return int(cert.serial_number)


def test_revoke_writes_a_crl_signed_by_the_consortium_ca(pki: Path) -> None:
    serial = serial_of(pki, "HOSP-A")

    result = cli("revoke", "--out", str(pki), "HOSP-A", "--reason", "keyCompromise")

    assert result.exit_code == 0, result.output
    assert f"certificate serial {serial:x} of site HOSP-A revoked" in flat(result.output)
    path = pki / "ca.crl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    crl = x509.load_pem_x509_crl(path.read_bytes())
    ca = load_ca(pki)
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.cert.subject
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1


def test_revoke_by_serial_and_by_file_adds_to_the_same_crl(pki: Path) -> None:
    hosp_b = serial_of(pki, "HOSP-B")
    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0
    by_file = cli("revoke", "--out", str(pki), str(pki / "sites/GMP-1/tls.crt"))
    by_serial = cli("revoke", "--out", str(pki), f"0x{hosp_b:x}")
    again = cli("revoke", "--out", str(pki), f"{hosp_b:x}")

    assert by_file.exit_code == 0, by_file.output
    assert by_serial.exit_code == 0, by_serial.output
    assert "was already revoked" in again.output
    crl = x509.load_pem_x509_crl((pki / "ca.crl").read_bytes())
    assert sorted(entry.serial_number for entry in crl) == sorted(
        serial_of(pki, site) for site in ("HOSP-A", "HOSP-B", "GMP-1")
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3


def test_revoke_refuses_a_certificate_of_another_ca_and_garbage(pki: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    init_pki(foreign, [parse_site_spec("HOSP-A:collection")])
    result = cli("revoke", "--out", str(pki), str(foreign / "sites/HOSP-A/tls.crt"))
    assert result.exit_code != 0
    assert "was not issued by the consortium CA" in flat(result.output)
    garbage = cli("revoke", "--out", str(pki), "NOT-A-SITE")
    assert garbage.exit_code != 0
    assert "neither a certificate file, a site of this PKI, nor" in flat(garbage.output)
    assert not (pki / "ca.crl").exists()


def test_a_new_ca_drops_the_old_cas_lists(pki: Path) -> None:
    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0
    assert cli("revoke-token", "--out", str(pki), "0123456789abcdef").exit_code == 0

    result = cli("init", "--out", str(pki), "--site", "HOSP-A:collection", "--force")

    assert result.exit_code == 0, result.output
    assert not (pki / "ca.crl").exists()
    assert not (pki / "revoked-tokens.jwt").exists()


def test_a_revoked_certificate_is_refused_by_a_running_grpc_server(
    pki: Path, server: RunningServer, say_as: Callable[[str], Any]
) -> None:
    say_a, say_b = say_as("HOSP-A"), say_as("HOSP-B")
    assert say_a(b"hi", timeout=TIMEOUT) == b"HOSP-A"
    serial = serial_of(pki, "HOSP-A")

    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0

    error = eventually(
        lambda: refused(say_a, grpc.StatusCode.UNAUTHENTICATED),
        "HOSP-A's certificate refused",
        RELOADED_WITHIN_S,
    )
    assert f"certificate serial {serial:x} of site HOSP-A was revoked" in error.details()
    assert SAY in error.details()
    assert say_b(b"hi", timeout=TIMEOUT) == b"HOSP-B"

    add_sites(pki, [parse_site_spec("HOSP-A:collection,infusion")], force=True)
    assert say_as("HOSP-A")(b"hi", timeout=TIMEOUT) == b"HOSP-A"  # its new certificate


def test_a_crl_signed_by_another_ca_fails_closed_and_health_says_why(
    pki: Path, server: RunningServer, say_as: Callable[[str], Any], tmp_path: Path
) -> None:
    say_b = say_as("HOSP-B")
    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0
    good = (pki / "ca.crl").read_bytes()
    assert say_b(b"hi", timeout=TIMEOUT) == b"HOSP-B"
    foreign = tmp_path / "foreign"
    init_pki(foreign, [parse_site_spec("HOSP-A:collection")])
    assert cli("revoke", "--out", str(foreign), "HOSP-A").exit_code == 0

    shutil.copy(foreign / "ca.crl", pki / "ca.crl")

    error = eventually(
        lambda: refused(say_b, grpc.StatusCode.UNAVAILABLE),
        "every call refused (fail closed)",
        RELOADED_WITHIN_S,
    )
    assert "not signed by the consortium CA" in error.details()
    status, metadata = health_of(pki, server)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert "revocation: certificate revocation list" in metadata["v2v-health-detail"]
    assert "not signed by the consortium CA" in metadata["v2v-health-detail"]

    (pki / "ca.crl").write_bytes(good)  # the operator puts the good CRL back: no restart

    eventually(lambda: outcome(say_b) == b"HOSP-B", "served again", RELOADED_WITHIN_S)
    assert health_of(pki, server)[0] == health_pb2.HealthCheckResponse.SERVING


def test_a_malformed_crl_fails_closed(
    pki: Path, server: RunningServer, say_as: Callable[[str], Any]
) -> None:
    say_b = say_as("HOSP-B")
    assert say_b(b"hi", timeout=TIMEOUT) == b"HOSP-B"

    (pki / "ca.crl").write_bytes(b"-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n")

    error = eventually(
        lambda: refused(say_b, grpc.StatusCode.UNAVAILABLE),
        "every call refused (fail closed)",
        RELOADED_WITHIN_S,
    )
    assert "not a readable CRL" in error.details()
    assert health_of(pki, server)[0] == health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_crl_removed_while_running_fails_closed(
    pki: Path, server: RunningServer, say_as: Callable[[str], Any]
) -> None:
    say_a, say_b = say_as("HOSP-A"), say_as("HOSP-B")
    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0
    eventually(
        lambda: refused(say_a, grpc.StatusCode.UNAUTHENTICATED), "revoked", RELOADED_WITHIN_S
    )

    (pki / "ca.crl").unlink()  # deleting the list does not un-revoke anyone

    error = eventually(
        lambda: refused(say_a, grpc.StatusCode.UNAVAILABLE), "refused", RELOADED_WITHIN_S
    )
    assert "it was removed after list number 1 was loaded" in error.details()
    assert refused(say_b, grpc.StatusCode.UNAVAILABLE) is not None


def test_a_crl_past_its_next_update_fails_closed(pki: Path) -> None:
    from v2v_platform.auth.revocation import sign_crl
    from v2v_platform.auth.revocation_watch import RevocationListUnusable, Revocations

    ca = load_ca(pki)
    (pki / "ca.crl").write_bytes(sign_crl(ca, [], 1).public_bytes(Encoding.PEM))
    later = ca.cert.not_valid_after_utc + datetime.timedelta(days=1)
    revocations = Revocations(pki / "ca.crt", wall_clock=lambda: later)

    with pytest.raises(RevocationListUnusable, match="it expired at"):
        revocations.check_certificate(serial_of(pki, "HOSP-A"), "HOSP-A")


def test_the_list_is_looked_at_no_more_than_every_interval(pki: Path) -> None:
    from v2v_platform.auth.revocation_watch import CertificateRevoked, Revocations

    now = [0.0]
    revocations = Revocations(pki / "ca.crt", interval_s=2.0, clock=lambda: now[0])
    serial = serial_of(pki, "HOSP-A")
    revocations.check_certificate(serial, "HOSP-A")  # no CRL: nothing revoked

    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0
    now[0] = 1.9
    revocations.check_certificate(serial, "HOSP-A")  # not looked at again yet
    now[0] = 2.0

    with pytest.raises(CertificateRevoked, match=f"serial {serial:x}"):
        revocations.check_certificate(serial, "HOSP-A")
