"""Deriving in forked workers must end even when the parent had installed a SIGTERM handler
that does not exit (a test or a service that set one before forking): `Pool.terminate` stops
idle workers with SIGTERM, and a worker that inherited such a handler keeps waiting for a
queue lock the parent holds, so the pool waits for it forever (seen in CI). The workers
therefore start with SIGTERM's default action."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from v2v_projection.fold import ChainFold
from v2v_projection.forked_derivation import derive_in_processes


@pytest.fixture
def sigterm_handler_that_does_not_exit() -> Iterator[list[int]]:
    received: list[int] = []

    def keep_going(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, keep_going)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigterm_action_in_the_worker(_fold: ChainFold, coi: str) -> dict[str, Any]:
    """Stands in for a chain's derivation: reports how the worker handles SIGTERM."""
    return {"coi": coi, "sigterm": repr(signal.getsignal(signal.SIGTERM))}


@pytest.mark.timeout(120)
def test_workers_start_with_sigterms_default_action(
    monkeypatch: pytest.MonkeyPatch, sigterm_handler_that_does_not_exit: list[int]
) -> None:
    monkeypatch.setattr(ChainFold, "derive", _sigterm_action_in_the_worker)
    cois = [f"CHA{n:012}" for n in range(8)]

    views = derive_in_processes(ChainFold(), cois, workers=2)

    assert sorted(views) == cois
    assert {view["sigterm"] for view in views.values()} == {repr(signal.SIG_DFL)}
    assert sigterm_handler_that_does_not_exit == []  # nothing reached the parent
