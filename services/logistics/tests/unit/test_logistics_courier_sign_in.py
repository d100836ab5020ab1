"""Issue 13 item 2 for couriers: a courier token names the courier; a token issued with the
courier's password is accepted once the courier signed in with it (asked at login only, not
at each scan); wrong passwords in a row revoke it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from v2v_logistics.adapters.courier_tokens import CourierTokens, sqlite_tokens
from v2v_logistics.bootstrap import LogisticsService, bootstrap
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.errors import InvalidInput
from v2v_platform.esign import MAX_FAILURES
from v2v_testkit.logistics import SERVICE_SITE

PASSWORD = "kim's courier password"


def test_a_token_with_a_password_is_accepted_once_its_courier_signed_in(
    tokens: CourierTokens,
) -> None:
    token = tokens.issue("C-17", "Kim Courier", SERVICE_SITE, PASSWORD)
    waiting = tokens.identify(token)
    assert waiting is not None and not waiting.signed_in
    assert tokens.sign_in(token, "not the password") is None
    signed = tokens.sign_in(token, PASSWORD)
    assert signed is not None and signed.courier_id == "C-17" and signed.signed_in
    accepted = tokens.identify(token)
    assert accepted is not None and accepted.signed_in


def test_wrong_passwords_in_a_row_revoke_the_token(tokens: CourierTokens) -> None:
    token = tokens.issue("C-17", "Kim Courier", SERVICE_SITE, PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        assert tokens.sign_in(token, "guess") is None
    assert tokens.sign_in(token, PASSWORD) is not None  # a success clears the count
    for _ in range(MAX_FAILURES):
        assert tokens.sign_in(token, "guess") is None
    assert tokens.identify(token) is None and tokens.sign_in(token, PASSWORD) is None


def test_a_token_without_a_password_needs_no_sign_in(tokens: CourierTokens) -> None:
    token = tokens.issue("C-17", "Kim Courier", SERVICE_SITE)
    identity = tokens.identify(token)
    assert identity is not None and identity.signed_in
    assert tokens.sign_in(token, "") == identity


def test_a_short_password_is_refused(tokens: CourierTokens) -> None:
    with pytest.raises(InvalidInput, match="at least 8 characters"):
        tokens.issue("C-17", "Kim Courier", SERVICE_SITE, "1234")


@pytest.fixture
def service(tmp_path: Path, tokens: CourierTokens) -> Iterator[LogisticsService]:
    init_pki(tmp_path / "pki", [parse_site_spec(f"{SERVICE_SITE}:courier")])
    settings = LogisticsSettings(site_id=SERVICE_SITE, pki_dir=tmp_path / "pki")
    running = bootstrap(settings, tokens=tokens)
    yield running
    running.stop()


def test_the_courier_api_accepts_a_password_token_after_login_only(
    service: LogisticsService, tokens: CourierTokens
) -> None:
    client = TestClient(service.http_app, raise_server_exceptions=False)
    token = tokens.issue("C-17", "Kim Courier", SERVICE_SITE, PASSWORD)
    me = {"Authorization": f"Bearer {token}"}
    early = client.get("/v1/courier/shipments", headers=me)
    assert early.status_code == 401 and early.json()["detail"] == "sign in with your password first"
    wrong = client.post("/v1/courier/login", json={"password": "guess"}, headers=me)
    assert wrong.status_code == 401
    assert client.post("/v1/courier/login", json={"password": PASSWORD}).status_code == 401
    login = client.post("/v1/courier/login", json={"password": PASSWORD}, headers=me)
    assert login.json() == {
        "courier_id": "C-17",
        "printed_name": "Kim Courier",
        "site_id": "LOGI-1",
    }
    assert client.get("/v1/courier/shipments", headers=me).json() == {"shipments": []}


def test_the_command_line_issues_a_token_with_a_password_from_stdin(tmp_path: Path) -> None:
    init_pki(tmp_path / "pki", [parse_site_spec(f"{SERVICE_SITE}:courier")])
    env = {
        "V2V_SITE_ID": SERVICE_SITE,
        "V2V_PKI_DIR": str(tmp_path / "pki"),
        "V2V_SQLITE_PATH": str(tmp_path / "l.sqlite"),
        "PATH": "",
    }
    command = [sys.executable, "-m", "v2v_logistics", "issue-courier-token"]
    command += ["--courier", "C-17", "--name", "Kim Courier", "--site", SERVICE_SITE]
    issued = subprocess.run(
        [*command, "--password-stdin"],
        env=env,
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        check=True,
    )
    token = issued.stdout.strip()
    tokens = sqlite_tokens(tmp_path / "l.courier-tokens.sqlite")
    waiting = tokens.identify(token)
    assert waiting is not None and not waiting.signed_in
    assert tokens.sign_in(token, PASSWORD) is not None
