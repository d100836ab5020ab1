"""Vendor the courier page's JavaScript decoder from the npm registry, pinned and checked.

Usage: python tools/vendor_js.py [--check]
Downloads the pinned npm package's tarball (the registry's version document gives its URL and
its `dist.integrity`, what `npm view zxing-wasm@<version> dist.integrity` prints), refuses it
unless the registry's integrity equals the pinned one and the tarball's sha512 matches it, then
writes the listed files under the courier page's static folder with the package's licence,
zxing-cpp's licence (the WebAssembly is zxing-cpp compiled; its Apache-2.0 text comes from the
locked `zxing-cpp` Python distribution), a README and MANIFEST.json (sha256 of every file: the
unit test `test_logistics_vendored_decoder.py` fails when a vendored file drifts from it).
`--check` downloads and compares with the files in the tree, writing nothing. Needs no npm:
the registry's documents over HTTPS, nothing else.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = (
    Path(__file__).resolve().parent.parent
    / "services/logistics/src/v2v_logistics/adapters/static/vendor/zxing-wasm"
)
TIMEOUT_S = 60


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    integrity: str
    """The registry's `dist.integrity` (Subresource Integrity form, sha512)."""
    files: dict[str, str] = field(default_factory=dict)
    """Path in the tarball -> path under the vendor folder (no `dist/`: .gitignore'd)."""


ZXING_WASM = Pin(
    name="zxing-wasm",
    version="3.1.8",
    integrity=(
        "sha512-FpxLK7/lfZrlnmqoRUZd+4qpVlYabsuPx6tRxzN7V/E9IwijQ1dOJSlJGHoA2Yc62hkdvzDD8+qjRPGUx+5j+g=="
    ),
    files={
        "package/dist/es/reader/index.js": "es/reader/index.js",
        "package/dist/es/share.js": "es/share.js",
        "package/dist/reader/zxing_reader.wasm": "reader/zxing_reader.wasm",
        "package/LICENSE": "LICENSE",
    },
)
ZXING_CPP_LICENCE = ("zxing-cpp", "licenses/LICENSE", "LICENSE.zxing-cpp")
"""(Python distribution, file in its metadata, path under the vendor folder)."""
UPSTREAM = "https://github.com/Sec-ant/zxing-wasm"


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        data: bytes = response.read()
    return data


def sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def registry_dist(pin: Pin) -> dict[str, Any]:
    document = json.loads(fetch(f"{REGISTRY}/{pin.name}/{pin.version}"))
    dist: dict[str, Any] = document["dist"]
    if dist["integrity"] != pin.integrity:
        raise SystemExit(
            f"{pin.name}@{pin.version}: the registry's integrity {dist['integrity']} is not the"
            f" pinned {pin.integrity}"
        )
    return dist


def package_files(pin: Pin) -> dict[str, bytes]:
    """The pinned files from the registry's tarball, after checking its sha512."""
    dist = registry_dist(pin)
    tarball = fetch(dist["tarball"])
    if sri_sha512(tarball) != pin.integrity:
        raise SystemExit(f"{dist['tarball']}: sha512 {sri_sha512(tarball)} != {pin.integrity}")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member, target in pin.files.items():
            extracted = archive.extractfile(member)
            if extracted is None:
                raise SystemExit(f"{pin.name}@{pin.version} has no file {member}")
            files[target] = extracted.read()
    package, metadata_path, target = ZXING_CPP_LICENCE
    licence = distribution(package).read_text(metadata_path)
    if licence is None:
        raise SystemExit(f"the {package} distribution has no {metadata_path}")
    files[target] = licence.encode()
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(pin: Pin, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "package": pin.name,
        "version": pin.version,
        "integrity": pin.integrity,
        "tarball": f"{REGISTRY}/{pin.name}/-/{pin.name}-{pin.version}.tgz",
        "files": {path: sha256(data) for path, data in sorted(files.items())},
    }


def readme(pin: Pin) -> str:
    listed = "\n".join(f"- `{target}` from `{member}`" for member, target in pin.files.items())
    package, metadata_path, target = ZXING_CPP_LICENCE
    return f"""# {pin.name} {pin.version} (vendored, reader build)

The courier page's barcode decoder where the browser has no `BarcodeDetector` (Code 128 and
DataMatrix): zxing-cpp compiled to WebAssembly, npm package [`{pin.name}`]({UPSTREAM}),
version {pin.version}, MIT licence (`LICENSE`); the WebAssembly is zxing-cpp, Apache-2.0
(`{target}`, the text from the `{package}` Python distribution's `{metadata_path}`).

- registry: {REGISTRY}/{pin.name}/{pin.version}
- integrity (`npm view {pin.name}@{pin.version} dist.integrity`): `{pin.integrity}`

Files (the tarball's `dist/` folder renamed: `dist/` is git-ignored in this repository):
{listed}

The page loads `es/reader/index.js` and points its `locateFile` at `reader/zxing_reader.wasm`
on this server (the package's default is a CDN, never used). Written by `tools/vendor_js.py`
(re-downloads the pinned package and checks its sha512); `MANIFEST.json` holds each file's
sha256, checked by `services/logistics/tests/unit/test_logistics_vendored_decoder.py`.
"""


def expected(pin: Pin) -> dict[str, bytes]:
    files = package_files(pin)
    files["MANIFEST.json"] = (json.dumps(manifest(pin, files), indent=2) + "\n").encode()
    files["README.md"] = readme(pin).encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    files = expected(ZXING_WASM)
    if args.check:
        differ = [p for p, data in files.items() if _read(VENDOR_DIR / p) != data]
        for path in differ:
            print(f"differs from {ZXING_WASM.name}@{ZXING_WASM.version}: {VENDOR_DIR / path}")
        return 1 if differ else 0
    for path, data in files.items():
        target = VENDOR_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"wrote {target} ({len(data)} bytes)")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
