"""The courier web page: `GET /courier` and its files under `/courier/static/`.

Plain HTML, ES modules and CSS from the `static` folder next to this module, no build step.
Only the files listed in `STATIC_FILES` are served (no path from the request reaches the
file system), among them the camera scanner's vendored barcode decoder (`static/vendor/
zxing-wasm`, see its README; WebAssembly as `application/wasm`, which streaming compilation
needs) and its licences. The page sets no Content-Security-Policy; one added later must allow
`'wasm-unsafe-eval'` in `script-src` for that decoder (BarcodeDetector needs none). The
service worker may control `/courier` so the page opens while offline.
Public (`PAGE_ACCESS`: no role, no patient's data): the page holds no data until a courier
logs in with their token, and then reads it over the courier API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from v2v_platform.access_policy import Relation, reads

STATIC_DIR = Path(__file__).parent / "static"
PAGE_SCOPE = "/courier"
STATIC_FILES: dict[str, str] = {
    "courier.css": "text/css; charset=utf-8",
    "courier.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "camera.js": "text/javascript; charset=utf-8",
    "queue.js": "text/javascript; charset=utf-8",
    "reasons.js": "text/javascript; charset=utf-8",
    "sw.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "vendor/zxing-wasm/es/reader/index.js": "text/javascript; charset=utf-8",
    "vendor/zxing-wasm/es/share.js": "text/javascript; charset=utf-8",
    "vendor/zxing-wasm/reader/zxing_reader.wasm": "application/wasm",
    "vendor/zxing-wasm/LICENSE": "text/plain; charset=utf-8",
    "vendor/zxing-wasm/LICENSE.zxing-cpp": "text/plain; charset=utf-8",
}
NO_CACHE = {"Cache-Control": "no-cache"}
PAGE_ACCESS = reads(Relation.NO_PATIENT_DATA)

router = APIRouter(include_in_schema=False)


@router.get("/courier", openapi_extra=PAGE_ACCESS.openapi())
def courier_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=NO_CACHE)


@router.get("/courier/static/{name:path}", openapi_extra=PAGE_ACCESS.openapi())
def courier_static(name: str) -> FileResponse:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no courier page file named {name!r}")
    headers = dict(NO_CACHE)
    if name == "sw.js":
        headers["Service-Worker-Allowed"] = PAGE_SCOPE
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=headers)
