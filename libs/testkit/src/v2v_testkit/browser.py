"""Browser tests: Debian's Chromium driven by Playwright (the `browser` fixture).

Chromium comes from the distribution (`apt-get install -y chromium`), never from
`playwright install`: when it is missing and we are root it is installed here, otherwise the
tests fail with the command to run. This module is a pytest plugin (`-p v2v_testkit.browser`
in the pytest options): one `browser` fixture for the whole session, whatever test asks for it
(two sync Playwright instances cannot run in one process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_COMMAND = ["apt-get", "install", "-y", "chromium"]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"Chromium is missing: run `sudo {' '.join(INSTALL_COMMAND)}`", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(INSTALL_COMMAND, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(INSTALL_COMMAND, env=env, check=True)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
