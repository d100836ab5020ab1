"""Generate Python code (+ .pyi stubs) from proto/ into libs/contracts/src.

Usage: python tools/gen_proto.py [--out DIR]
The output mirrors proto/v2v/... so `import v2v.events.v1.envelope_pb2` resolves.
Generated files are not committed (see .gitignore); `make proto` runs this.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "libs" / "contracts" / "src"
PACKAGE_DOC = '"""Generated from proto/ by tools/gen_proto.py; do not edit."""\n'


def _clean(out: Path) -> None:
    top = out / "v2v"
    if not top.exists():
        return
    for child in top.iterdir():
        if child.is_dir():
            shutil.rmtree(child)


def _add_init_files(out: Path) -> None:
    for directory in sorted((out / "v2v").rglob("*")):
        if directory.is_dir() and not (directory / "__init__.py").exists():
            (directory / "__init__.py").write_text(PACKAGE_DOC)
            (directory / "py.typed").write_text("")


def generate(out: Path) -> list[Path]:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    _add_init_files(out)
    return protos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    options = parser.parse_args()
    protos = generate(options.out)
    print(f"generated Python for {len(protos)} proto files into {options.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
