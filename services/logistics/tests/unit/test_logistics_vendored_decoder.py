"""The courier page's vendored barcode decoder (zxing-wasm): the files are exactly the ones
`tools/vendor_js.py` took from the npm registry (sha256 in MANIFEST.json: a drift check), and
the page serves them (with their licences), WebAssembly as `application/wasm`."""

from __future__ import annotations

import hashlib
import json

from fastapi import FastAPI
from fastapi.testclient import TestClient

from v2v_logistics.adapters.courier_page import STATIC_DIR, STATIC_FILES, router

VENDOR = STATIC_DIR / "vendor" / "zxing-wasm"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text())
NOT_HASHED = {"MANIFEST.json", "README.md"}
"""Written by the tool from the manifest's own values."""


def vendored_files() -> set[str]:
    return {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}


def test_every_vendored_file_matches_the_committed_manifest() -> None:
    assert vendored_files() == set(MANIFEST["files"]) | NOT_HASHED
    drifted = {
        path: digest
        for path, digest in MANIFEST["files"].items()
        if hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() != digest
    }
    assert drifted == {}


def test_the_manifest_names_a_pinned_registry_package_with_its_licences() -> None:
    assert (MANIFEST["package"], MANIFEST["version"]) == ("zxing-wasm", "3.1.8")
    assert MANIFEST["integrity"].startswith("sha512-")
    assert MANIFEST["tarball"].startswith("https://registry.npmjs.org/zxing-wasm/")
    assert {"LICENSE", "LICENSE.zxing-cpp"} <= set(MANIFEST["files"])
    readme = (VENDOR / "README.md").read_text()
    assert MANIFEST["integrity"] in readme and MANIFEST["version"] in readme


def test_the_page_serves_the_decoder_with_its_content_types() -> None:
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    served = {
        path: client.get(f"/courier/static/{path}")
        for path in STATIC_FILES
        if path.startswith("vendor/")
    }
    assert {p.removeprefix("vendor/zxing-wasm/") for p in served} == {
        "es/reader/index.js",
        "es/share.js",
        "reader/zxing_reader.wasm",
        "LICENSE",
        "LICENSE.zxing-cpp",
    }
    for path, response in served.items():
        assert response.status_code == 200
        assert response.content == (STATIC_DIR / path).read_bytes()
    wasm = served["vendor/zxing-wasm/reader/zxing_reader.wasm"]
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.content[:4] == b"\0asm"
    script = served["vendor/zxing-wasm/es/reader/index.js"]
    assert script.headers["content-type"].startswith("text/javascript")


def test_only_listed_files_are_served() -> None:
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    for path in ("vendor/zxing-wasm/MANIFEST.json", "vendor/zxing-wasm/README.md", "vendor"):
        assert (STATIC_DIR / path).exists()
        assert client.get(f"/courier/static/{path}").status_code == 404
    assert client.get("/courier/static/camera.js").status_code == 200
