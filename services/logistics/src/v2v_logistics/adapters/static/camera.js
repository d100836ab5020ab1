// Scanning a bag label with the phone's camera: the rear camera's frames are decoded by the
// browser's BarcodeDetector where it reads Code 128 (and DataMatrix), else by the vendored
// zxing-wasm (zxing-cpp as WebAssembly, served by this server: no CDN). The first label that
// names a unit is handed to `onLabel`, exactly the text a keyboard-wedge scanner types.

const FORMATS = { code_128: "Code128", data_matrix: "DataMatrix" };
const ZXING = "./vendor/zxing-wasm/es/reader/index.js";
const ZXING_WASM = new URL("./vendor/zxing-wasm/reader/zxing_reader.wasm", import.meta.url).href;
const FRAME_GAP_MS = 120;
const NOTHING_YET_MS = 4000;
// What names a unit, best first: the DIN data structure of an ISBT 128 label's Code 128
// (`=` then the DIN's first character; `=<` product code, `&>` expiry... name none), the
// DataMatrix's compound message (`=+`, holding the DIN structure), a bare DIN.
const NAMING_A_UNIT = [/^=[A-Z0-9]/, /^=\+/, /^[A-Z0-9]{13}/];

const $ = (id) => document.getElementById(id);
const camera = { stream: null, opening: false, timer: 0, decoder: null, onLabel: null, hint: 0 };

export function setUpCamera(onLabel) {
  camera.onLabel = onLabel;
  $("camera-open").addEventListener("click", openCamera);
  $("camera-stop").addEventListener("click", () => stopCamera());
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && camera.stream) {
      stopCamera("The camera stopped when the page was hidden: open it again to scan.");
    }
  });
  window.addEventListener("pagehide", () => stopCamera());
}

function say(message, kind = "note") {
  const status = $("camera-status");
  status.textContent = message;
  status.className = `camera-status ${kind}`;
}

async function openCamera() {
  if (camera.stream || camera.opening) return;
  $("camera-view").hidden = false;
  $("camera-view").scrollIntoView({ block: "nearest" });
  if (!window.isSecureContext) {
    return say("The camera needs this page over HTTPS: type or scan the label instead.", "error");
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    return say("No camera on this device or browser: type or scan the label instead.", "error");
  }
  say("Opening the camera…");
  performance.mark("v2v-camera-open");
  const stream = await rearCamera();
  if (!stream) return;
  if (document.hidden) return stream.getTracks().forEach((track) => track.stop());
  camera.stream = stream;
  const video = $("camera-video");
  video.srcObject = stream;
  await video.play().catch(() => {});
  $("camera-view").dataset.state = "scanning";
  say("Point the camera at the bag label's barcode.");
  camera.hint = setTimeout(
    () => say("Nothing decoded yet: hold the label flat, fill the frame, add light."),
    NOTHING_YET_MS,
  );
  try {
    camera.decoder ||= await chooseDecoder();
  } catch (error) {
    stopCamera(`The barcode reader did not load (${error.message}): type the label instead.`);
    return;
  }
  if (camera.stream !== stream) return; // stopped meanwhile
  $("camera-view").dataset.decoder = camera.decoder.name;
  scanNextFrame();
}

async function rearCamera() {
  camera.opening = true;
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" } },
      audio: false,
    });
  } catch (error) {
    say(cameraRefusal(error), "error");
    return null;
  } finally {
    camera.opening = false;
  }
}

function cameraRefusal(error) {
  if (error?.name === "NotAllowedError" || error?.name === "SecurityError") {
    return "Camera permission refused: allow the camera for this page in the browser's " +
      "settings, or type the label.";
  }
  if (error?.name === "NotFoundError" || error?.name === "OverconstrainedError") {
    return "No camera found on this device: type or scan the label instead.";
  }
  if (error?.name === "NotReadableError") {
    return "The camera is busy (another app is using it): close it and try again.";
  }
  return `The camera could not be opened (${error?.name || error}).`;
}

export function stopCamera(message = "") {
  clearTimeout(camera.timer);
  clearTimeout(camera.hint);
  camera.stream?.getTracks().forEach((track) => track.stop());
  camera.stream = null;
  const video = $("camera-video");
  video.pause();
  video.srcObject = null;
  delete $("camera-view").dataset.state;
  if (message) say(message);
  else $("camera-view").hidden = true;
}

function scanNextFrame() {
  camera.timer = setTimeout(async () => {
    if (!camera.stream) return;
    const label = await decodeFrame($("camera-video")).catch(() => null);
    if (!camera.stream) return;
    if (label === null) return scanNextFrame();
    performance.mark("v2v-label-decoded", { detail: label });
    stopCamera();
    camera.onLabel(label);
  }, FRAME_GAP_MS);
}

async function decodeFrame(video) {
  if (video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA || !video.videoWidth) return null;
  const found = await camera.decoder.read(video);
  return pickLabel(found);
}

// The DIN's own Code 128 when it is in view (what a courier aims a handheld scanner at),
// else the DataMatrix; never another structure alone (product code, expiry).
function pickLabel(found) {
  for (const pattern of NAMING_A_UNIT) {
    const naming = found.find((text) => pattern.test(text));
    if (naming) return naming;
  }
  if (found.length) {
    say("That barcode does not name a bag: aim at the DIN barcode or the square code.");
  }
  return null;
}

async function chooseDecoder() {
  const native = await nativeDecoder();
  return native || zxingDecoder();
}

async function nativeDecoder() {
  if (!("BarcodeDetector" in window)) return null;
  const supported = await BarcodeDetector.getSupportedFormats().catch(() => []);
  const formats = Object.keys(FORMATS).filter((f) => supported.includes(f));
  if (!formats.includes("code_128")) return null;
  const detector = new BarcodeDetector({ formats });
  return {
    name: "BarcodeDetector",
    read: async (video) =>
      (await detector.detect(video)).map((barcode) => barcode.rawValue),
  };
}

async function zxingDecoder() {
  const zxing = await import(ZXING);
  await zxing.prepareZXingModule({
    overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? ZXING_WASM : prefix + path) },
    fireImmediately: true,
  });
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const options = {
    formats: Object.values(FORMATS),
    tryHarder: true,
    textMode: "Plain",
    maxNumberOfSymbols: 8,
  };
  return {
    name: "zxing-wasm",
    read: async (video) => {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      const results = await zxing.readBarcodes(frame, options);
      return results.filter((result) => result.isValid).map((result) => result.text);
    },
  };
}
