"""Camera scanning on the courier page (issue 17 item 4), in headless Chromium.

Chromium's fake camera plays a Y4M file written here from a bag label rendered by
`v2v_platform.labels` (ISBT 128: the DIN's Code 128, the DataMatrix's compound message): the
page opens the rear camera, decodes the frames (the browser's BarcodeDetector where it reads
Code 128, else the vendored zxing-wasm: Debian's Chromium has no BarcodeDetector on Linux),
fills the scan field as a keyboard-wedge scanner would and submits it to the courier API.
Each camera test launches its own Chromium (other flags than the session's `browser`, from the
same Playwright). The time from opening the camera to the API's answer is written to
test-artifacts/courier/camera-scan.json, with screenshots of the page.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from v2v_platform.ids import Din
from v2v_platform.labels import Label, barcode_texts, label_png
from v2v_testkit.browser import CHROMIUM_ARGS, ensure_chromium

from .conftest import PHONE
from .scenario import CourierScenario
from .test_courier_page import log_in, open_shipment, server_shipment

pytestmark = [pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[4] / "test-artifacts" / "courier"
FRAME_SIZE = (1280, 720)
"""A phone camera's HD frame; the label fills most of its height."""
BACKGROUND = (150, 150, 150)
TILT_DEGREES = 4
FAKE_CAMERA = "--use-fake-device-for-media-stream"
NO_CAMERA = f"{FAKE_CAMERA}=device-count=0"
GRANT_EVERY_PROMPT = "--use-fake-ui-for-media-stream"
DECODE_TIMEOUT_MS = 20_000
PRODUCT_CODE = "=<E0001V00"
"""An ISBT 128 product code structure (003): names no unit."""


def bag_label(scenario: CourierScenario, din: str) -> Label:
    return Label(din=Din.parse(din), coi=scenario.coi, lines=("v2v courier test",))


def label_image(label: Label) -> Image.Image:
    return Image.open(io.BytesIO(label_png(label, dpi=200))).convert("RGB")


def datamatrix_only(picture: Image.Image) -> Image.Image:
    """The label's DataMatrix with a quiet margin, as a camera held close to it sees it
    (three times larger than in the whole label's picture)."""
    matrix = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.DataMatrix)
    [found] = zxingcpp.read_barcodes(picture, formats=matrix)
    corners = found.position
    xs = [p.x for p in (corners.top_left, corners.top_right, corners.bottom_right)]
    ys = [p.y for p in (corners.top_left, corners.bottom_left, corners.bottom_right)]
    margin = 20
    square = picture.crop((min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin))
    return square.resize((square.width * 3, square.height * 3), Image.Resampling.NEAREST)


def code128_image(text: str) -> Image.Image:
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    code = Image.fromarray(np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=4)))
    label = Image.new("RGB", (code.width + 48, code.height + 48), "white")
    label.paste(code.convert("RGB"), (24, 24))
    return label


def camera_frame(picture: Image.Image | None) -> Image.Image:
    """The picture on a grey bench, tilted a little, as large as the frame allows."""
    frame = Image.new("RGB", FRAME_SIZE, BACKGROUND)
    if picture is not None:
        picture = picture.rotate(TILT_DEGREES, expand=True, fillcolor=BACKGROUND)
        picture.thumbnail((FRAME_SIZE[0] - 40, FRAME_SIZE[1] - 40))
        frame.paste(
            picture, ((frame.width - picture.width) // 2, (frame.height - picture.height) // 2)
        )
    return frame


def write_y4m(frame: Image.Image, path: Path, frames: int = 3) -> Path:
    """YUV4MPEG2: a one-line header, then per frame `FRAME\\n` and the Y, Cb, Cr planes
    (4:2:0: chroma at half width and height; full-range JPEG YCbCr, as Pillow converts)."""
    width, height = frame.size
    luma, blue, red = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    chroma = [p.resize(half, Image.Resampling.BOX).tobytes() for p in (blue, red)]
    body = b"FRAME\n" + luma.tobytes() + b"".join(chroma)
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + body * frames)
    return path


@contextmanager
def camera_phone(
    browser: Browser, video: Path | None, *, grant: bool = True, allow: bool = True
) -> Iterator[Page]:
    """A phone-sized page in a Chromium whose one camera shows `video` (None: it has none).

    `grant`: the camera prompt is answered yes (`--use-fake-ui-for-media-stream`); without
    it, and without `allow` (the context's permission), the courier is asked and says no.
    """
    args = list(CHROMIUM_ARGS)
    if video is None:
        args.append(NO_CAMERA)
    else:
        args += [FAKE_CAMERA, f"--use-file-for-fake-video-capture={video}"]
    if grant:
        args.append(GRANT_EVERY_PROMPT)
    chromium = browser.browser_type.launch(
        executable_path=str(ensure_chromium()), headless=True, args=args
    )
    try:
        context = chromium.new_context(
            viewport=PHONE,
            is_mobile=True,
            has_touch=True,
            permissions=["camera"] if allow else [],
        )
        context.set_default_timeout(10_000)
        yield context.new_page()
    finally:
        chromium.close()


def marks(page: Page) -> dict[str, dict[str, Any]]:
    """The page's performance marks by name: `startTime` (ms since it loaded), `detail`."""
    found: dict[str, dict[str, Any]] = page.evaluate(
        "Object.fromEntries(performance.getEntriesByType('mark')"
        ".map(m => [m.name, { startTime: m.startTime, detail: m.detail }]))"
    )
    return found


def camera_tracks_live(page: Page) -> bool:
    live: bool = page.evaluate(
        "(window.seenStream?.getTracks() || []).some(t => t.readyState === 'live')"
    )
    return live


def keep_stream(page: Page) -> None:
    """Hold on to the stream the page shows, to see afterwards whether its tracks stopped."""
    page.wait_for_function("document.getElementById('camera-video').srcObject !== null")
    page.evaluate("window.seenStream = document.getElementById('camera-video').srcObject")


def scan_with_camera(
    browser: Browser, scenario: CourierScenario, picture: Image.Image, video: Path, name: str
) -> dict[str, Any]:
    """Open the camera on `picture` until the scan is accepted; what was read and how fast."""
    write_y4m(camera_frame(picture), video)
    with camera_phone(browser, video) as phone:
        log_in(phone, scenario)
        open_shipment(phone, scenario)
        opened = time.monotonic()
        phone.click("#camera-open")

        expect(phone.locator("#result-title")).to_have_text("ACCEPTED", timeout=DECODE_TIMEOUT_MS)
        accepted_s = time.monotonic() - opened
        expect(phone.locator("#camera-view")).to_be_hidden()  # stopped once decoded
        assert phone.evaluate("document.getElementById('camera-video').srcObject") is None
        message = phone.locator("#result-message").text_content()
        timings = marks(phone)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=ARTIFACTS / f"{name}-accepted.png")
        opened_at = timings["v2v-camera-open"]["startTime"]
        return {
            "decoder": phone.locator("#camera-view").get_attribute("data-decoder"),
            "decoded": timings["v2v-label-decoded"]["detail"],
            "message": message,
            "open_to_decoded_ms": round(timings["v2v-label-decoded"]["startTime"] - opened_at),
            "open_to_answer_ms": round(timings["v2v-scan-answered"]["startTime"] - opened_at),
            "click_to_accepted_shown_s": round(accepted_s, 2),
        }


def record(name: str, figures: dict[str, Any]) -> None:
    path = ARTIFACTS / "camera-scan.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, name: figures}, indent=2) + "\n")
    print(f"camera scan ({name}): {figures}")


def test_a_courier_scans_a_bag_label_with_the_phone_camera(
    browser: Browser, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    """The whole label in view: the DIN's Code 128 (`=` + DIN + flags) is read and accepted."""
    din = courier_scenario.manifest[0]
    label = bag_label(courier_scenario, din)
    picture = label_image(label)
    picture.save(tmp_path / "label.png")

    figures = scan_with_camera(browser, courier_scenario, picture, tmp_path / "label.y4m", "label")

    assert figures["decoded"] == barcode_texts(label)["din"]
    assert figures["decoder"] in ("BarcodeDetector", "zxing-wasm")
    assert f"Bag {din} checked" in figures["message"]
    assert din in server_shipment(courier_scenario)["scanned"]  # type: ignore[operator]
    record("whole-label", figures)


def test_the_labels_datamatrix_alone_is_read_and_accepted(
    browser: Browser, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    """Only the square code in view: its compound message (`=+...`) names the bag."""
    din = courier_scenario.manifest[1]
    label = bag_label(courier_scenario, din)
    picture = datamatrix_only(label_image(label))

    figures = scan_with_camera(browser, courier_scenario, picture, tmp_path / "dm.y4m", "matrix")

    assert figures["decoded"] == barcode_texts(label)["datamatrix"]
    assert f"Bag {din} checked" in figures["message"]
    assert din in server_shipment(courier_scenario)["scanned"]  # type: ignore[operator]
    record("datamatrix", figures)


def test_the_page_says_nothing_is_decoded_yet_and_stops_the_camera_when_hidden(
    browser: Browser, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    video = write_y4m(camera_frame(None), tmp_path / "bench.y4m")
    with camera_phone(browser, video) as phone:
        log_in(phone, courier_scenario)
        open_shipment(phone, courier_scenario)
        phone.click("#camera-open")
        keep_stream(phone)
        status = phone.locator("#camera-status")
        expect(status).to_have_text("Point the camera at the bag label's barcode.")
        expect(status).to_contain_text("Nothing decoded yet", timeout=DECODE_TIMEOUT_MS)
        expect(phone.locator("#result")).to_be_hidden()
        assert camera_tracks_live(phone)

        # The courier switches apps: the browser hides the page.
        phone.evaluate(
            "Object.defineProperty(document, 'hidden', { value: true, configurable: true });"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )

        expect(status).to_have_text(
            "The camera stopped when the page was hidden: open it again to scan."
        )
        assert not camera_tracks_live(phone)


def test_a_barcode_that_names_no_bag_is_not_submitted(
    browser: Browser, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    """A label's product code (ISBT 128 `=<`) alone names no unit: the camera keeps looking."""
    video = write_y4m(camera_frame(code128_image(PRODUCT_CODE)), tmp_path / "product.y4m")
    with camera_phone(browser, video) as phone:
        log_in(phone, courier_scenario)
        open_shipment(phone, courier_scenario)
        phone.click("#camera-open")
        expect(phone.locator("#camera-status")).to_have_text(
            "That barcode does not name a bag: aim at the DIN barcode or the square code.",
            timeout=DECODE_TIMEOUT_MS,
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.locator("#camera-view").screenshot(path=ARTIFACTS / "camera-scanning.png")
        expect(phone.locator("#camera-view")).to_have_attribute("data-state", "scanning")
        expect(phone.locator("#result")).to_be_hidden()
        assert server_shipment(courier_scenario)["scanned"] == []


def test_the_page_says_when_the_camera_is_refused(
    browser: Browser, courier_scenario: CourierScenario, tmp_path: Path
) -> None:
    video = write_y4m(camera_frame(None), tmp_path / "bench.y4m")
    with camera_phone(browser, video, grant=False, allow=False) as phone:
        log_in(phone, courier_scenario)
        open_shipment(phone, courier_scenario)
        phone.click("#camera-open")
        expect(phone.locator("#camera-status")).to_have_text(
            "Camera permission refused: allow the camera for this page in the browser's"
            " settings, or type the label."
        )
        expect(phone.locator("#camera-status")).to_have_class("camera-status error")
        expect(phone.locator("#scan-input")).to_be_enabled()


def test_the_page_says_when_there_is_no_camera(
    browser: Browser, courier_scenario: CourierScenario
) -> None:
    with camera_phone(browser, None) as phone:
        log_in(phone, courier_scenario)
        open_shipment(phone, courier_scenario)
        phone.click("#camera-open")
        expect(phone.locator("#camera-status")).to_have_text(
            "No camera found on this device: type or scan the label instead."
        )
        phone.click("#camera-stop")
        expect(phone.locator("#camera-view")).to_be_hidden()
