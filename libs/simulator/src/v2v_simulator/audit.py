"""The auditor's check at the end: `v2v audit verify` (hash chains, signatures, version
continuity) over every topic, with the consortium's key ring, as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

VERIFY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Verdict:
    clean: bool
    exit_code: int
    output: str
    errors: str = ""

    @property
    def last_line(self) -> str:
        lines = [line for line in (self.output or self.errors).splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


def verify(pki: Path, kafka_bootstrap: str) -> Verdict:
    command = [sys.executable, "-m", "v2v_projection.audit", "verify"]
    command += ["--keys", str(pki), "--bootstrap", kafka_bootstrap]
    try:
        done = subprocess.run(
            command,
            env={**os.environ, "NO_COLOR": "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERIFY_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Verdict(False, -1, f"verify did not finish within {VERIFY_TIMEOUT_S:g}s")
    return Verdict(done.returncode == 0, done.returncode, done.stdout, done.stderr)
