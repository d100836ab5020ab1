"""Site bearer tokens can be revoked (`v2v pki revoke-token`): the HTTP APIs follow the signed
revoked-token list of the PKI directory without a restart and answer 401 "token revoked"; a
list that cannot be trusted makes them refuse every token (503), never ignored."""

import datetime
import shutil
import stat
from pathlib import Path
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from v2v_platform.auth import CallerIdentity, Role, pki_cli
from v2v_platform.auth.pki import init_pki, load_ca, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.http_api import SiteTokenVerifier, create_app, require_roles
from v2v_platform.testing.producing import eventually

SITES = ["HOSP-A:collection,infusion", "HOSP-B:collection"]
RELOADED_WITHIN_S = 15.0
runner = CliRunner()


def cli(*args: str) -> Any:
    result = runner.invoke(pki_cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(site) for site in SITES])
    return directory


@pytest.fixture
def client(pki: Path) -> TestClient:
    """A service's HTTP API as every service builds it: the verifier from <pki>/ca.crt."""
    app = create_app("test", "1")
    verifier = SiteTokenVerifier(pki / "ca.crt")
    collection = require_roles(lambda: verifier, Role.COLLECTION)

    @app.get("/whoami")
    def whoami(caller: Annotated[CallerIdentity, Depends(collection)]) -> dict[str, str]:
        return {"site": caller.site_id}

    return TestClient(app, raise_server_exceptions=False)


def call(client: TestClient, token: str) -> Any:
    return client.get("/whoami", headers={"Authorization": f"Bearer {token}"})


def refused_as_revoked(client: TestClient, token: str) -> Any:
    response = call(client, token)
    return response if response.status_code == 401 else None


def test_every_token_has_its_own_id_and_names_its_certificate(pki: Path) -> None:
    first, second = issue_site_token(pki, "HOSP-A"), issue_site_token(pki, "HOSP-A")
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in (first, second)]
    assert claims[0]["jti"] != claims[1]["jti"]
    assert len(claims[0]["jti"]) >= 16
    assert claims[0]["cert_serial"] == claims[1]["cert_serial"] != ""


def test_the_token_command_prints_the_token_id_on_stderr(pki: Path) -> None:
    result = cli("token", "--out", str(pki), "--site", "HOSP-A")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert f"token id (jti): {jti}" in result.stderr


def test_a_revoked_token_is_refused_after_reload_without_restart(
    client: TestClient, pki: Path, tmp_path: Path
) -> None:
    revoked, other = issue_site_token(pki, "HOSP-A"), issue_site_token(pki, "HOSP-A")
    assert call(client, revoked).json() == {"site": "HOSP-A"}
    token_file = tmp_path / "hosp-a.token"
    token_file.write_text(revoked + "\n")

    result = cli("revoke-token", "--out", str(pki), str(token_file))

    assert result.exit_code == 0, result.output
    jti = jwt.decode(revoked, options={"verify_signature": False})["jti"]
    assert f"token {jti} of site HOSP-A revoked" in result.output
    response = eventually(
        lambda: refused_as_revoked(client, revoked), "the revoked token refused", RELOADED_WITHIN_S
    )
    assert response.json()["detail"].startswith("token revoked:")
    assert jti in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert call(client, other).status_code == 200  # the site's other token still works


def test_a_token_is_revoked_by_its_id_and_the_list_is_private_and_signed(
    client: TestClient, pki: Path
) -> None:
    token = issue_site_token(pki, "HOSP-B")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert call(client, token).status_code == 200

    first = cli("revoke-token", "--out", str(pki), jti)
    again = cli("revoke-token", "--out", str(pki), jti)

    assert first.exit_code == 0, first.output
    assert "revoked-token list number 1, 1 token(s)" in first.output
    assert again.exit_code == 0 and "was already revoked" in again.output
    path = pki / "revoked-tokens.jwt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ca_key = load_ca(pki).key.public_key()
    signed = jwt.decode(path.read_text().strip(), ca_key, ["ES256"], audience="v2v-revoked-tokens")
    assert [entry["jti"] for entry in signed["revoked"]] == [jti]
    eventually(lambda: refused_as_revoked(client, token), "revoked by id", RELOADED_WITHIN_S)


def test_a_list_signed_by_another_ca_refuses_every_token_until_fixed(
    client: TestClient, pki: Path, tmp_path: Path
) -> None:
    token = issue_site_token(pki, "HOSP-A")
    assert cli("revoke-token", "--out", str(pki), "0123456789abcdef").exit_code == 0
    good = (pki / "revoked-tokens.jwt").read_bytes()
    assert call(client, token).status_code == 200
    foreign = tmp_path / "foreign"
    init_pki(foreign, [parse_site_spec("HOSP-A:collection")])
    assert cli("revoke-token", "--out", str(foreign), "fedcba9876543210").exit_code == 0

    shutil.copy(foreign / "revoked-tokens.jwt", pki / "revoked-tokens.jwt")

    refused = eventually(
        lambda: (r := call(client, token)).status_code == 503 and r,
        "every token refused (fail closed)",
        RELOADED_WITHIN_S,
    )
    assert "not signed by the consortium CA" in refused.json()["detail"]
    assert "revoked-tokens.jwt" in refused.json()["detail"]

    (pki / "revoked-tokens.jwt").write_bytes(good)  # the operator puts the good list back
    eventually(lambda: call(client, token).status_code == 200, "served again", RELOADED_WITHIN_S)


def test_a_malformed_list_refuses_every_token(client: TestClient, pki: Path) -> None:
    token = issue_site_token(pki, "HOSP-A")
    assert call(client, token).status_code == 200

    (pki / "revoked-tokens.jwt").write_text("{not a signed list")

    refused = eventually(
        lambda: (r := call(client, token)).status_code == 503 and r,
        "every token refused (fail closed)",
        RELOADED_WITHIN_S,
    )
    assert "not a readable revoked-token list" in refused.json()["detail"]


def test_an_older_list_put_back_refuses_every_token(client: TestClient, pki: Path) -> None:
    token = issue_site_token(pki, "HOSP-A")
    assert cli("revoke-token", "--out", str(pki), "aaaaaaaaaaaaaaaa").exit_code == 0
    older = (pki / "revoked-tokens.jwt").read_bytes()
    assert cli("revoke-token", "--out", str(pki), "bbbbbbbbbbbbbbbb").exit_code == 0
    assert call(client, token).status_code == 200  # the service's first look: list number 2

    (pki / "revoked-tokens.jwt").write_bytes(older)

    refused = eventually(
        lambda: (r := call(client, token)).status_code == 503 and r,
        "every token refused (rollback)",
        RELOADED_WITHIN_S,
    )
    assert "its number 1 is below the 2 already loaded" in refused.json()["detail"]


def test_tokens_of_a_revoked_site_certificate_are_refused(client: TestClient, pki: Path) -> None:
    token = issue_site_token(pki, "HOSP-A")
    other_site = issue_site_token(pki, "HOSP-B")
    assert call(client, token).status_code == 200

    assert cli("revoke", "--out", str(pki), "HOSP-A").exit_code == 0

    response = eventually(
        lambda: refused_as_revoked(client, token), "the site's token refused", RELOADED_WITHIN_S
    )
    assert "token revoked:" in response.json()["detail"]
    assert "revoked certificate" in response.json()["detail"]
    assert call(client, other_site).status_code == 200


def test_a_token_without_an_id_is_refused(client: TestClient, pki: Path) -> None:
    """A token that could not be revoked (no jti, no certificate serial) is not accepted."""
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "sub": "HOSP-A",
        "roles": ["collection"],
        "aud": "v2v-site-api",
        "iat": now,
        "exp": now + datetime.timedelta(hours=1),
    }
    token = jwt.encode(claims, load_ca(pki).key, algorithm="ES256")

    response = call(client, token)

    assert response.status_code == 401
    assert "jti" in response.json()["detail"]


def test_revoke_token_refuses_a_foreign_token_and_garbage(pki: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    init_pki(foreign, [parse_site_spec("HOSP-A:collection")])
    result = cli("revoke-token", "--out", str(pki), issue_site_token(foreign, "HOSP-A"))
    assert result.exit_code != 0
    assert "not a site token of the consortium CA" in " ".join(result.output.split())
    garbage = cli("revoke-token", "--out", str(pki), "no!")
    assert garbage.exit_code != 0
    assert not (pki / "revoked-tokens.jwt").exists()
