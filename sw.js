// foldspace service worker: keeps the page usable offline after the first visit.
// Same-origin GET requests go to the network first and their answers are cached; when the
// network fails, the cached answer is served.
//
// Weights files (.safetensors) are large, so a cached copy is served without downloading it
// again, but only while it is still the file the site publishes: each time, the small
// `<file>.sha256` beside it is fetched from the network and compared with the SHA-256 of the
// cached bytes (computed when they were cached). A file updated under the same name therefore
// loads fresh on the next visit (never a stale copy that then fails the page's checksum).
// Offline, or where the site has no .sha256 file, the cached copy is served as before.
const CACHE = "foldspace-v2";
const DIGEST_HEADER = "x-foldspace-sha256";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) =>
  event.waitUntil(
    (async () => {
      // Drop the caches of earlier versions of this worker (v1 served weights cache-first
      // with no check).
      for (const name of await caches.keys()) {
        if (name.startsWith("foldspace-") && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  ),
);

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The hash the site publishes for `url` now, or null (offline, no .sha256, unreadable, or no
// answer within 10 s).
async function publishedDigest(url) {
  try {
    const sha = new URL(url);
    sha.pathname += ".sha256";
    sha.search = "";
    const response = await fetch(sha, { cache: "no-store", signal: AbortSignal.timeout(10_000) });
    if (!response.ok) return null;
    const word = (await response.text()).trim().split(/\s+/)[0] || "";
    return /^[0-9a-f]{64}$/i.test(word) ? word.toLowerCase() : null;
  } catch {
    return null;
  }
}

async function weights(request) {
  const cache = await caches.open(CACHE);
  const [hit, expected] = await Promise.all([cache.match(request), publishedDigest(request.url)]);
  if (hit && (expected === null || hit.headers.get(DIGEST_HEADER) === expected)) return hit;
  let response;
  try {
    response = await fetch(request, { cache: "no-store" });
  } catch (error) {
    if (hit) return hit;
    throw error;
  }
  if (!response.ok) return hit || response;
  const bytes = await response.arrayBuffer();
  const headers = new Headers(response.headers);
  // The body is now the decoded bytes: their length, no transfer encoding.
  headers.delete("content-encoding");
  headers.set("content-length", String(bytes.byteLength));
  headers.set(DIGEST_HEADER, await sha256Hex(bytes));
  const fresh = new Response(bytes, { status: response.status, statusText: response.statusText, headers });
  await cache.put(request, fresh.clone());
  return fresh;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.endsWith(".safetensors")) {
    event.respondWith(weights(request));
    return;
  }
  // Checksums always from the network (never the browser's HTTP cache): they are what tells a
  // stale file from a fresh one.
  const fresh = url.pathname.endsWith(".sha256") ? { cache: "no-store" } : undefined;
  event.respondWith(
    fetch(request, fresh)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(async () => (await caches.match(request)) || Response.error()),
  );
});
