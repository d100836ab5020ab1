"""`python -m v2v_testkit.golden --write [--context NAME ...]` (`make golden`): rewrite the
golden vectors of the envelope and every context, only when a contract changes on purpose
(the diff is the review)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from v2v_testkit.golden import envelope, infusion, intake, logistics, manufacturing, release
from v2v_testkit.golden.vectors import write_vectors

CONTEXTS = {
    "intake": intake,
    "manufacturing": manufacturing,
    "logistics": logistics,
    "release": release,
    "infusion": infusion,
}


def writers() -> dict[str, Callable[[], list[Path]]]:
    found: dict[str, Callable[[], list[Path]]] = {"envelope": envelope.write}
    for name, module in CONTEXTS.items():
        found[name] = _writer(module)
    return found


def _writer(module: ModuleType) -> Callable[[], list[Path]]:
    return lambda: write_vectors(module.GOLDEN_DIR, module.golden_payloads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    parser.add_argument("--context", action="append", choices=sorted(writers()), default=[])
    args = parser.parse_args()
    if not args.write:
        parser.error("nothing to do: pass --write to rewrite the golden files on purpose")
    for name, write in writers().items():
        if args.context and name not in args.context:
            continue
        for path in write():
            print(f"{name}: wrote {path} (+ .json)")


if __name__ == "__main__":
    main()
