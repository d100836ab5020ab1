// Keeps the courier page's own files so the page opens without a connection.
// API calls (/v1/...) are never intercepted: scans are queued by the page itself.

const CACHE = "v2v-courier-v2";
const SHELL = [
  "/courier",
  "/courier/static/courier.css",
  "/courier/static/courier.js",
  "/courier/static/api.js",
  "/courier/static/camera.js",
  "/courier/static/queue.js",
  "/courier/static/reasons.js",
  "/courier/static/icon.svg",
  "/courier/static/vendor/zxing-wasm/es/reader/index.js",
  "/courier/static/vendor/zxing-wasm/es/share.js",
  "/courier/static/vendor/zxing-wasm/reader/zxing_reader.wasm",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  const old = (keys) => keys.filter((key) => key !== CACHE).map((key) => caches.delete(key));
  event.waitUntil(caches.keys().then((keys) => Promise.all(old(keys))));
  self.clients.claim();
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(request);
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const isShell = url.pathname === "/courier" || url.pathname.startsWith("/courier/static/");
  if (event.request.method === "GET" && url.origin === self.location.origin && isShell) {
    event.respondWith(networkFirst(event.request));
  }
});
