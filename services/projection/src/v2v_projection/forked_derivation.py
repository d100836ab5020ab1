"""Deriving many chain views in forked worker processes (bulk replays on several cores).

The workers inherit the fold by fork (nothing is sent to them); each derives a share of the
COIs and sends its views back marshalled (views are plain dicts, lists, strings and numbers).
Only for single-threaded processes such as `v2v audit replay` and the benchmark.
"""

from __future__ import annotations

import marshal
import multiprocessing
import signal
from typing import TYPE_CHECKING, Any

from v2v_projection.gc_pause import gc_paused

if TYPE_CHECKING:
    from v2v_projection.fold import ChainFold

PARALLEL_MINIMUM = 2_000  # fewer stale chains are derived faster in-process
_inherited: ChainFold | None = None


def _derive_share(cois: list[str]) -> bytes:
    assert _inherited is not None, "workers inherit the fold by fork"
    with gc_paused():
        return marshal.dumps([(coi, _inherited.derive(coi)) for coi in cois])


def _worker_signals() -> None:
    """A worker ends on SIGTERM and ignores Ctrl-C (the parent handles it), whatever handlers
    the parent had installed when it forked. The pool is closed and joined, not terminated,
    when the work is done: a SIGTERM that reaches a worker still starting, before this runs,
    meets the parent's handler, and one that does not exit left `Pool.terminate` waiting for
    that worker forever (seen in CI)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def derive_in_processes(
    fold: ChainFold, cois: list[str], workers: int
) -> dict[str, dict[str, Any]]:
    global _inherited
    shares = [cois[i :: workers * 4] for i in range(workers * 4)]
    _inherited = fold
    try:
        with multiprocessing.get_context("fork").Pool(workers, _worker_signals) as pool:
            results = pool.map(_derive_share, shares)
            pool.close()  # the workers end on their own: no SIGTERM (see _worker_signals)
            pool.join()
    finally:
        _inherited = None
    views: dict[str, dict[str, Any]] = {}
    with gc_paused():
        for result in results:
            views.update(marshal.loads(result))
    return views
