"""Generate Python code (+ .pyi stubs) from proto/ into libs/contracts/src.

Usage: python tools/gen_proto.py [--out DIR]
The output mirrors proto/v2v/... so `import v2v.events.v1.envelope_pb2` resolves.
Generated files are not committed (see .gitignore); `make proto` runs this.

protoc (grpcio-tools) runs in a subprocess into a scratch directory. Any error it reports, a
non-zero exit, or a missing output module fails the run with a clear message and leaves the
previously generated code untouched; warnings are printed and do not fail the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "libs" / "contracts" / "src"
PACKAGE_DOC = '"""Generated from proto/ by tools/gen_proto.py; do not edit."""\n'
PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")  # from mypy-protobuf
_DIAGNOSTIC = re.compile(r"^\S+\.proto(:\d+:\d+)?: ")


class ProtoGenerationError(SystemExit):
    """Raised (exits non-zero) when code generation fails; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(f"gen_proto: {message}")


def _find_plugin(name: str) -> Path:
    """The mypy-protobuf plugin next to this interpreter (venv bin/) or else on PATH."""
    bin_dir = Path(sys.executable).parent
    for candidate in (bin_dir / name, bin_dir / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is None:
        raise ProtoGenerationError(
            f"{name} not found (is mypy-protobuf installed? run `uv sync`, then "
            "`uv run python tools/gen_proto.py`)"
        )
    return Path(found)


def _well_known_includes() -> Path:
    """google/protobuf/*.proto as shipped inside grpcio-tools."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise ProtoGenerationError("grpcio-tools is not installed (run `uv sync`)")
    return Path(next(iter(spec.submodule_search_locations))) / "_proto"


def _protoc_args(protos: list[Path], out: Path) -> list[str]:
    well_known = _well_known_includes()
    plugins = [f"--plugin={name}={_find_plugin(name)}" for name in PLUGINS]
    return [
        *plugins,
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out=quiet:{out}",
        *[p.relative_to(PROTO_ROOT).as_posix() for p in protos],
    ]


def _run_protoc(protos: list[Path], out: Path) -> None:
    command = [sys.executable, "-m", "grpc_tools.protoc", *_protoc_args(protos, out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    warnings = [line for line in lines if "warning" in line.lower()]
    if result.returncode != 0:
        errors = [line for line in lines if line not in warnings]
    else:  # protoc diagnostics look like "<file>.proto:<line>:<column>: <message>"
        errors = [line for line in lines if _DIAGNOSTIC.match(line) and line not in warnings]
    for line in lines:
        if line not in errors:
            print(f"protoc: {line}", file=sys.stderr)
    if result.returncode != 0 or errors:
        details = "\n".join(f"  {line}" for line in errors) or "  (protoc printed no details)"
        raise ProtoGenerationError(
            f"protoc failed (exit code {result.returncode}) on proto/; nothing was "
            f"regenerated:\n{details}"
        )


def _check_outputs(protos: list[Path], out: Path) -> None:
    missing = []
    for proto in protos:
        stem = out / proto.relative_to(PROTO_ROOT).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            expected = stem.parent / f"{stem.name}{suffix}"
            if not expected.is_file():
                missing.append(expected.relative_to(out).as_posix())
    if missing:
        raise ProtoGenerationError(
            "protoc reported success but did not write: " + ", ".join(sorted(missing))
        )


def _add_init_files(top: Path) -> None:
    """Make every generated directory below top a regular package (top itself is committed)."""
    for directory in sorted(p for p in top.rglob("*") if p.is_dir()):
        if not (directory / "__init__.py").exists():
            (directory / "__init__.py").write_text(PACKAGE_DOC)
            (directory / "py.typed").write_text("")


def _install(scratch: Path, out: Path) -> None:
    """Replace the generated sub-packages of out/v2v with those in scratch/v2v.

    out/v2v/__init__.py and out/v2v/py.typed are committed and left alone.
    """
    top = out / "v2v"
    top.mkdir(parents=True, exist_ok=True)
    for child in top.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    for child in (scratch / "v2v").iterdir():
        if child.is_dir():
            shutil.copytree(child, top / child.name)


def generate(out: Path) -> list[Path]:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise ProtoGenerationError(f"no .proto files under {PROTO_ROOT}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="v2v-gen-proto-") as tmp:
        scratch = Path(tmp)
        _run_protoc(protos, scratch)
        _check_outputs(protos, scratch)
        _add_init_files(scratch / "v2v")
        _install(scratch, out)
    return protos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    options = parser.parse_args()
    protos = generate(options.out)
    print(f"generated Python for {len(protos)} proto files into {options.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
