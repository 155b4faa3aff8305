// End-to-end tests of the built page (dist/, made by web/build) in headless Chromium with WebGPU
// on SwiftShader, driven by playwright-core (Debian's /usr/bin/chromium; nothing is downloaded).
//
//   FOLDSPACE_SHARED=../shared node --test tests/e2e/page.test.mjs
//
// The published checkpoint is served beside the site at /published/ (never copied into dist/)
// and the page is pointed at it with ?weights=. Screenshots go to tests/e2e/out/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { PNG } from "pngjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const dist = path.resolve(process.env.FOLDSPACE_DIST || path.join(root, "dist"));
const shared = path.resolve(process.env.FOLDSPACE_SHARED || path.join(root, "../shared"));
const out = path.join(here, "out");
const published = path.join(shared, "reference/model_trgt_opt.safetensors");
const golden = path.join(shared, "reference/golden/A0A023PZB3");
const pdb = path.join(shared, "reference/A0A023PZB3.pdb");
// SwiftShader runs WebGPU on the CPU: a model run takes tens of seconds on 2 cores.
const SLOW = 15 * 60 * 1000;

for (const [what, p] of [["the built site (run web/build)", path.join(dist, "index.html")],
  ["the published checkpoint", published], ["the golden vectors", golden], ["the reference PDB", pdb]]) {
  if (!fs.existsSync(p)) {
    throw new Error(`missing ${what}: ${p} — the browser tests cannot run without it`);
  }
}

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css",
  ".safetensors": "application/octet-stream", ".sha256": "text/plain", ".png": "image/png",
};

// Weights served under one name whose content a test replaces (an update of the site).
const swap = { bytes: null, sha: null, hits: 0 };
function setSwap(bytes) {
  swap.bytes = bytes;
  swap.sha = crypto.createHash("sha256").update(bytes).digest("hex");
}

// Served gzipped when the browser asks for it, as static hosts serve code and text (weights and
// other binary files are sent as they are): the download budget test reads the compressed sizes.
const GZIP = new Set([".html", ".js", ".mjs", ".wasm", ".json", ".css", ".sha256", ".md"]);
// The site's files do not change during a run: each is compressed once. Bodies made per request
// (the swapped weights' checksum) are compressed each time.
const gzipped = new Map();
function gzip(file, body, fromSite) {
  if (!fromSite) return zlib.gzipSync(body, { level: 6 });
  if (!gzipped.has(file)) gzipped.set(file, zlib.gzipSync(body, { level: 6 }));
  return gzipped.get(file);
}

function serve() {
  const publishedBytes = fs.readFileSync(published);
  const publishedSha = crypto.createHash("sha256").update(publishedBytes).digest("hex");
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    let body;
    let fromSite = false;
    let file = url.pathname;
    if (file === "/swap/model.safetensors" && swap.bytes) {
      body = swap.bytes;
      swap.hits += 1;
    }
    else if (file === "/swap/model.safetensors.sha256" && swap.bytes) body = Buffer.from(`${swap.sha}  model.safetensors\n`);
    else if (file === "/published/model.safetensors") body = publishedBytes;
    else if (file === "/published/model.safetensors.sha256") body = Buffer.from(`${publishedSha}  model.safetensors\n`);
    else if (file === "/published/wrong.safetensors") body = publishedBytes;
    else if (file === "/published/wrong.safetensors.sha256") body = Buffer.from(`${"0".repeat(64)}\n`);
    else {
      if (file.endsWith("/")) file += "index.html";
      const p = path.join(dist, path.normalize(file));
      if (!p.startsWith(dist) || !fs.existsSync(p) || !fs.statSync(p).isFile()) {
        res.writeHead(404).end("not found");
        return;
      }
      body = fs.readFileSync(p);
      fromSite = true;
    }
    const headers = { "content-type": TYPES[path.extname(file)] || "application/octet-stream" };
    if (GZIP.has(path.extname(file)) && /\bgzip\b/.test(req.headers["accept-encoding"] || "")) {
      body = gzip(file, body, fromSite);
      headers["content-encoding"] = "gzip";
    }
    headers["content-length"] = body.length;
    res.writeHead(200, headers);
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// A stand-in for the structure archives, with their URL layout (no test reaches the internet):
// RCSB's `/download/<ID>.cif` and the AlphaFold database's `/api/prediction/<ACCESSION>` (a JSON
// list whose `pdbUrl` points at the model file). Another origin than the site, so the page's
// requests are cross-origin as they are to the real archives (which allow any origin).
const archiveHits = [];
function serveArchives() {
  const cif = fs.readFileSync(path.join(root, "assets/examples/1a8o.cif"));
  const model = fs.readFileSync(pdb);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    archiveHits.push(url.pathname);
    const own = `http://127.0.0.1:${server.address().port}`;
    const headers = { "access-control-allow-origin": "*" };
    let body = null;
    if (url.pathname === "/rcsb/download/1A8O.cif") body = cif;
    else if (url.pathname === "/afdb/api/prediction/A0A023PZB3") {
      headers["content-type"] = "application/json";
      body = Buffer.from(JSON.stringify([{ entryId: "AF-A0A023PZB3-F1", uniprotAccession: "A0A023PZB3",
        pdbUrl: `${own}/afdb/files/AF-A0A023PZB3-F1-model_v4.pdb` }]));
    } else if (url.pathname === "/afdb/files/AF-A0A023PZB3-F1-model_v4.pdb") body = model;
    if (body === null) {
      res.writeHead(404, headers).end("not found");
      return;
    }
    headers["content-length"] = body.length;
    res.writeHead(200, headers).end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// The WebGPU/SwiftShader flags of crate/webdriver.json (without its headless and sandbox ones,
// which playwright sets itself).
function chromiumFlags() {
  const config = JSON.parse(fs.readFileSync(path.join(root, "crate/webdriver.json"), "utf8"));
  const args = config["goog:chromeOptions"].args;
  return args.filter((a) => !a.startsWith("--headless"));
}

let server, archives, browser, base;

before(async () => {
  fs.mkdirSync(out, { recursive: true });
  server = await serve();
  archives = await serveArchives();
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumFlags() });
});

after(async () => {
  await browser?.close();
  server?.close();
  archives?.close();
});

// Pages run the model on WebGPU (SwiftShader here) unless `backend` says otherwise: left to
// itself the page passes a software adapter over for the CPU, which the tests of the WebGPU path
// must not. `backend: null` leaves the address as it is; `noWebGpu` hides navigator.gpu, as a
// browser without WebGPU has none.
async function openPage(query = "", { backend = "webgpu", noWebGpu = false, noWorkerScript = false } = {}) {
  if (backend && !/[?&]backend=/.test(query)) query = `${query}${query ? "&" : "?"}backend=${backend}`;
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1400, height: 1000 },
    // Requests a service worker answers are not routed: none here when a route must hold.
    ...(noWorkerScript ? { serviceWorkers: "block" } : {}),
  });
  // A site without the model worker's script (or a browser that cannot start it).
  if (noWorkerScript) await context.route("**/worker.js", (r) => r.fulfill({ status: 404, body: "not found" }));
  if (noWebGpu) {
    await context.addInitScript(() => Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined, configurable: true }));
  }
  // How long the page's event loop stalled while a model ran: a 20 ms timer notes the longest
  // gap between its ticks that began while the status said the model was running
  // (window.__stall.ms; no other code of the page reads it).
  await context.addInitScript(() => {
    const stall = (window.__stall = { ms: 0, busyTicks: 0, seconds: 0 });
    let last = performance.now();
    let busy = false;
    setInterval(() => {
      const now = performance.now();
      if (busy) {
        stall.ms = Math.max(stall.ms, now - last);
        stall.busyTicks += 1;
      }
      last = now;
      const status = document.querySelector("[data-testid=status]")?.textContent ?? "";
      busy = /running the model|scoring plausibility/.test(status);
      // The seconds the status line counts while the model runs.
      const seconds = busy && /… (\d+) s$/.exec(status);
      if (seconds) stall.seconds = Math.max(stall.seconds, Number(seconds[1]));
    }, 20);
  });
  const page = await context.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(`${base}/${query}`);
  return { context, page, logs };
}

async function waitStatus(page, logs, predicate, timeout = SLOW) {
  const status = page.getByTestId("status");
  const start = Date.now();
  // The page mounts once its 40 MB of wasm is compiled: slow on a busy 2-core machine.
  await status.waitFor({ state: "attached", timeout });
  for (;;) {
    const text = (await status.textContent({ timeout })) ?? "";
    if (predicate(text)) return text;
    if (Date.now() - start > timeout) {
      throw new Error(`status stayed "${text}"\n${logs.join("\n")}`);
    }
    await page.waitForTimeout(250);
  }
}

const isReady = (t) => t === "ready" || t.startsWith("error:");

// The rows of a ranked hit table once it is drawn (or the panel's error, thrown); checks that
// there are `n` rows whose cosines (second column) are in [-1, 1] and sorted, best first.
async function rankedRows(page, tableId, errorId, what, n) {
  const rows = page.getByTestId(tableId).locator("tbody tr");
  await Promise.race([
    rows.first().waitFor({ timeout: 240_000 }),
    page.getByTestId(errorId).waitFor({ timeout: 240_000 }).then(async () => {
      throw new Error(`${what}: ${await page.getByTestId(errorId).textContent()}`);
    }),
  ]);
  assert.equal(await rows.count(), n);
  const cosines = (await rows.locator("td:nth-child(2)").allTextContents()).map(Number);
  assert.ok(cosines.every((c, i) => c >= -1 && c <= 1.0001 && (i === 0 || c <= cosines[i - 1])), cosines.join(" "));
  return rows;
}

async function download(page, testid) {
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByTestId(testid).click()]);
  const file = path.join(out, dl.suggestedFilename());
  await dl.saveAs(file);
  return { name: dl.suggestedFilename(), bytes: fs.readFileSync(file) };
}

// --- .npy / stored .npz readers ---
function readNpy(buf) {
  assert.equal(buf.subarray(0, 6).toString("latin1"), "\x93NUMPY", "npy magic");
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLen).toString("latin1");
  assert.match(header, /'descr': '<f4'/, header);
  assert.match(header, /'fortran_order': False/, header);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const data = buf.subarray(start + headerLen);
  const values = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
  return { shape, values };
}

function readZip(buf) {
  // The central directory (from the end record) gives names, sizes and offsets.
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  assert.ok(eocd >= 0, "zip end record");
  let count = buf.readUInt16LE(eocd + 10);
  let cd = buf.readUInt32LE(eocd + 16);
  const files = {};
  // zip64: the real values are in the zip64 end record.
  if (count === 0xffff || cd === 0xffffffff) {
    const loc = buf.readUInt32LE(eocd - 20) === 0x07064b50 ? Number(buf.readBigUInt64LE(eocd - 12)) : -1;
    assert.ok(loc >= 0, "zip64 locator");
    count = Number(buf.readBigUInt64LE(loc + 32));
    cd = Number(buf.readBigUInt64LE(loc + 48));
  }
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(cd), 0x02014b50, "central directory entry");
    const method = buf.readUInt16LE(cd + 10);
    let size = buf.readUInt32LE(cd + 20);
    const nameLen = buf.readUInt16LE(cd + 28);
    const extraLen = buf.readUInt16LE(cd + 30);
    const commentLen = buf.readUInt16LE(cd + 32);
    let offset = buf.readUInt32LE(cd + 42);
    const name = buf.subarray(cd + 46, cd + 46 + nameLen).toString("utf8");
    // zip64 extra field (id 1): uncompressed size, compressed size, offset as needed.
    let e = cd + 46 + nameLen;
    const end = e + extraLen;
    while (e < end) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let p = e + 4;
        if (size === 0xffffffff) { size = Number(buf.readBigUInt64LE(p)); p += 8; }
        if (buf.readUInt32LE(cd + 20) === 0xffffffff) p += 8;
        if (offset === 0xffffffff) { offset = Number(buf.readBigUInt64LE(p)); }
      }
      e += 4 + len;
    }
    assert.equal(method, 0, `${name}: stored (not compressed)`);
    const local = offset + 30 + buf.readUInt16LE(offset + 26) + buf.readUInt16LE(offset + 28);
    files[name] = buf.subarray(local, local + size);
    cd += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

function relErr(a, b) {
  assert.equal(a.length, b.length, "lengths");
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

// How far a PNG is from blank: the number of distinct colours and the spread of brightness.
function pngStats(bytes) {
  const png = PNG.sync.read(bytes);
  const colours = new Set();
  let sum = 0, sum2 = 0;
  const n = png.width * png.height;
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [png.data[4 * i], png.data[4 * i + 1], png.data[4 * i + 2]];
    colours.add((r << 16) | (g << 8) | b);
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    sum += y;
    sum2 += y * y;
  }
  const mean = sum / n;
  return { width: png.width, height: png.height, colours: colours.size, std: Math.sqrt(sum2 / n - mean * mean) };
}

test("A0A023PZB3 through file-input with the published weights at level 4 matches the golden embeddings", { timeout: SLOW }, async () => {
  const { context, page, logs } = await openPage("?weights=/published/model.safetensors&level=4");
  const t0 = Date.now();
  await page.getByTestId("file-input").setInputFiles(pdb);
  const status = await waitStatus(page, logs, isReady);
  assert.equal(status, "ready", logs.join("\n"));
  console.log(`A0A023PZB3: file chosen to ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
    `${await page.getByTestId("timing").textContent()}`);
  assert.equal(await page.getByTestId("noise-level").inputValue(), "4");

  const { name, bytes } = await download(page, "export-npz");
  assert.match(name, /A0A023PZB3_A_embeddings\.npz$/);
  const files = readZip(bytes);
  assert.deepEqual(Object.keys(files).sort(), ["ca.npy", "gradient.npy", "pair.npy", "protein.npy", "residue.npy", "score.npy"]);
  const arrays = Object.fromEntries(Object.entries(files).map(([k, v]) => [k.replace(".npy", ""), readNpy(v)]));
  const meta = JSON.parse(fs.readFileSync(path.join(golden, "meta.json"), "utf8"));
  const L = arrays.ca.shape[0];
  assert.equal(L, meta.seq.length);
  const C = arrays.protein.shape[0];
  assert.deepEqual(arrays.pair.shape, [L, L, C]);
  assert.deepEqual(arrays.residue.shape, [L, C]);
  assert.deepEqual(arrays.score.shape, [L, L]);
  assert.deepEqual(arrays.gradient.shape, [L, 3]);

  const g = (name) => readNpy(fs.readFileSync(path.join(golden, `${name}.npy`)));
  // The reference stores channel-first: residue [C, L], pair [1, C, L, L].
  const residueRef = g("residue_level_feat");
  const residueT = new Float32Array(C * L);
  for (let i = 0; i < L; i++) for (let c = 0; c < C; c++) residueT[c * L + i] = arrays.residue.values[i * C + c];
  const pairRef = g("encoder_feat");
  const pairT = new Float32Array(C * L * L);
  for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) for (let c = 0; c < C; c++) {
    pairT[(c * L + i) * L + j] = arrays.pair.values[(i * L + j) * C + c];
  }
  const checks = {
    protein: relErr(arrays.protein.values, g("protein_level_feat").values),
    residue: relErr(residueT, residueRef.values),
    pair: relErr(pairT, pairRef.values),
    score: relErr(arrays.score.values, g("conv_out").values),
    ca: relErr(arrays.ca.values, g("ca_coords").values),
  };
  console.log("relative errors vs golden:", checks);
  for (const [k, e] of Object.entries(checks)) assert.ok(e <= 1e-4, `${k}: relative error ${e}`);

  // The per-residue CSV: a header and one row per residue, whose last C columns are the
  // residue embedding (the .npz's `residue` row, to the CSV's 7 significant digits).
  const csv = (await download(page, "export-csv")).bytes.toString("utf8").trim().split("\n");
  const channels = Array.from({ length: C }, (_, k) => `e${k}`).join(",");
  assert.equal(csv[0], `index,chain,residue_number,residue_name,aa,score_magnitude,b_factor,${channels}`);
  assert.equal(csv.length, L + 1);
  const rows = csv.slice(1).map((r) => r.split(","));
  const norms = rows.map((r) => Number(r[5]));
  assert.ok(norms.every(Number.isFinite) && norms.some((v) => v > 0), "score magnitudes");
  const fromCsv = Float32Array.from(rows.flatMap((r) => r.slice(7).map(Number)));
  assert.equal(fromCsv.length, L * C);
  assert.ok(relErr(fromCsv, arrays.residue.values) < 1e-5, "CSV residue embeddings differ from the .npz");
  await context.close();
});

test("weights updated under the same name load fresh through the service worker", { timeout: SLOW }, async () => {
  // Version 1 of the site's weights: the published checkpoint; version 2: our shipped f32 export.
  setSwap(fs.readFileSync(published));
  const first = swap.sha;
  const { context, page, logs } = await openPage("?weights=/swap/model.safetensors");
  const label = page.getByTestId("weights");
  const shows = async (sha) => {
    const start = Date.now();
    for (;;) {
      const text = (await label.textContent()) ?? "";
      if (text.includes(sha.slice(0, 12))) return text;
      const status = (await page.getByTestId("status").textContent()) ?? "";
      if (status.startsWith("error:")) throw new Error(`${status}\n${logs.join("\n")}`);
      if (Date.now() - start > SLOW) throw new Error(`weights label stayed "${text}"\n${logs.join("\n")}`);
      await page.waitForTimeout(250);
    }
  };
  await shows(first);
  // The worker is active: the next visit's weights come through it and are cached.
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  await page.reload();
  await shows(first);
  assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null), "no service worker controls the page");
  const cached = await page.evaluate(async () => {
    const names = await caches.keys();
    for (const n of names) {
      const hit = await (await caches.open(n)).match("/swap/model.safetensors");
      if (hit) return hit.headers.get("x-foldspace-sha256");
    }
    return null;
  });
  assert.equal(cached, first, "the worker did not cache the weights with their digest");
  // Unchanged on the site: the next visit is served from the cache, nothing downloaded again.
  const hits = swap.hits;
  await page.reload();
  await shows(first);
  assert.equal(swap.hits, hits, "unchanged weights were downloaded again");
  // The site is updated: same name, new bytes, new .sha256. A returning visitor gets the new ones.
  setSwap(fs.readFileSync(path.join(root, "assets/weights/foldspace-score.safetensors")));
  assert.notEqual(swap.sha, first);
  await page.reload();
  const text = await shows(swap.sha);
  console.log(`after the update: ${text}`);
  await context.close();
});

test("bad files give a plain error in the page, and the page recovers", { timeout: SLOW }, async () => {
  const { context, page, logs } = await openPage();
  const input = page.getByTestId("file-input");
  const cases = [
    [{ name: "empty.pdb", mimeType: "text/plain", buffer: Buffer.alloc(0) }, /empty/],
    [{ name: "noise.pdb", mimeType: "application/octet-stream", buffer: crypto.randomBytes(4096) }, /binary|not a structure/],
    [{ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello, this is not a protein\n") }, /not a structure/],
    [{ name: "truncated.pdb.gz", mimeType: "application/gzip", buffer: fs.readFileSync(path.join(root, "assets/examples/AF-Q5VSL9-F1-model_v2.pdb.gz")).subarray(0, 5000) }, /truncated|gzip|not a structure|could not/],
    [{ name: "dna_only.pdb", mimeType: "text/plain", buffer: Buffer.from("ATOM      1  P    DA B   1      1.000   2.000   3.000  1.00 10.00           P\nEND\n") }, /C-alpha|no chain/],
  ];
  for (const [file, pattern] of cases) {
    await input.setInputFiles(file);
    const text = await waitStatus(page, logs, (t) => t.startsWith("error:"), 60_000);
    assert.match(text, pattern, `${file.name}: ${text}`);
    assert.match(text, new RegExp(file.name.replace(".", "\\.")), `${file.name}: the message names the file`);
  }
  // Wrong checksum on weights is refused in plain words.
  const second = await openPage("?weights=/published/wrong.safetensors");
  await second.page.getByTestId("file-input").setInputFiles(pdb);
  const text = await waitStatus(second.page, second.logs, (t) => t.startsWith("error:"), 120_000);
  assert.match(text, /checksum/);
  await second.context.close();
  // Cross-origin weights are refused before anything is fetched.
  const third = await openPage("?weights=https://example.org/w.safetensors");
  assert.match(await third.page.locator(".note.warn").textContent(), /same origin/);
  await third.context.close();
  await context.close();
});

test("fetch by ID: a PDB ID and a UniProt accession from the archives' stand-in, shareable addresses, clear errors", { timeout: SLOW }, async () => {
  const archive = `http://127.0.0.1:${archives.address().port}`;
  const sources = `rcsb=${encodeURIComponent(`${archive}/rcsb`)}&alphafold=${encodeURIComponent(`${archive}/afdb`)}`;
  const { context, page, logs } = await openPage(`?${sources}`);
  await page.getByTestId("id-input").waitFor({ timeout: SLOW });
  const fetchId = async (id) => {
    await page.getByTestId("id-input").fill(id);
    await page.getByTestId("id-fetch").click();
  };
  // Not an identifier: refused before anything is fetched.
  const before = archiveHits.length;
  await fetchId("haemoglobin");
  assert.match(await waitStatus(page, logs, (t) => t.startsWith("error:"), 60_000), /neither a PDB ID .* nor a UniProt accession/);
  assert.equal(archiveHits.length, before, "nothing fetched for a non-identifier");
  // An entry the archive does not have.
  await fetchId("9zzz");
  assert.match(await waitStatus(page, logs, (t) => t.startsWith("error:"), 60_000), /PDB entry 9ZZZ was not found/);
  assert.ok(archiveHits.includes("/rcsb/download/9ZZZ.cif"));
  // A PDB ID: the mmCIF file from the RCSB layout, read as mmCIF; the address names it.
  await fetchId("1a8o");
  // (The model then runs on SwiftShader and may hold the page's thread: generous time-outs.)
  await page.locator(".panel.info .file", { hasText: /^1A8O\.cif · mmCIF$/ }).waitFor({ timeout: SLOW });
  assert.match(new URL(page.url()).search, /^\?pdb=1a8o&rcsb=/);
  await context.close();
  // A UniProt accession in the address: the AlphaFold API answer, then its model file.
  const second = await openPage(`?uniprot=A0A023PZB3&${sources}`);
  await second.page.locator(".panel.info .file", { hasText: "AF-A0A023PZB3-F1.pdb" }).waitFor({ timeout: SLOW });
  assert.ok(archiveHits.includes("/afdb/api/prediction/A0A023PZB3"));
  assert.equal(await second.page.getByTestId("id-input").inputValue({ timeout: SLOW }), "A0A023PZB3");
  // An accession the database has no model for.
  await second.page.getByTestId("id-input").fill("P69905", { timeout: SLOW });
  await second.page.getByTestId("id-fetch").click({ timeout: SLOW });
  assert.match(await waitStatus(second.page, second.logs, (t) => t.startsWith("error:"), 60_000), /no model for this accession/);
  await second.context.close();
  // No network: the archive's host is named.
  const third = await openPage("?pdb=1ubq&rcsb=http%3A%2F%2F127.0.0.1%3A9");
  assert.match(await waitStatus(third.page, third.logs, (t) => t.startsWith("error:")), /could not reach 127\.0\.0\.1:9/);
  await third.context.close();
});

// Ten model runs on SwiftShader (each file through the score network and the alignment model's
// own structure network) and the bank: the slowest test.
test("five files at once: a table, a map with the bank, exports, and a click opens one", { timeout: 2 * SLOW }, async () => {
  const { context, page, logs } = await openPage();
  const files = ["1a8o.pdb", "1orc.pdb", "1lcd_nmr.pdb", "4e43.pdb"].map((f) => path.join(root, "assets/examples", f));
  files.push(pdb);
  const buffers = files.map((f) => ({ name: path.basename(f), mimeType: "chemical/x-pdb", buffer: fs.readFileSync(f) }));
  await page.getByTestId("file-input").setInputFiles([...buffers, { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a structure") }]);
  const table = page.getByTestId("collection-table");
  const rows = table.locator("tbody tr");
  const start = Date.now();
  let seen = 0;
  while ((await rows.count()) < 5) {
    const n = await rows.count();
    if (n !== seen) console.log(`${n} rows after ${((Date.now() - start) / 1000).toFixed(0)} s`);
    seen = n;
    if (Date.now() - start > 1.5 * SLOW) throw new Error(`the table stayed at ${n} rows\n${logs.join("\n")}`);
    const failed = page.getByTestId("collection-failed");
    if (await failed.count()) throw new Error(`a file failed: ${await failed.textContent()}`);
    await page.waitForTimeout(500);
  }
  console.log(`5 rows after ${((Date.now() - start) / 1000).toFixed(0)} s`);
  assert.equal(await page.getByTestId("collection-progress").getAttribute("value"), "5");
  assert.match(await page.getByTestId("collection").textContent(), /1 other file left out/);
  const cells = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  console.log(cells.map((c) => c.join(" | ")).join("\n"));
  assert.deepEqual(cells.map((c) => c[1]), ["1a8o.pdb", "1orc.pdb", "1lcd_nmr.pdb", "4e43.pdb", "A0A023PZB3.pdb"]);
  const lengths = cells.map((c) => Number(c[3]));
  assert.deepEqual([lengths[0], lengths[1], lengths[2], lengths[4]], [70, 64, 51, 126]);
  assert.ok(lengths[3] >= 95 && lengths[3] <= 104, `4e43 chain A: ${lengths[3]} residues`);
  for (const c of cells) assert.match(c[4], /^\S+ \((0|-?0?\.\d+|1\.000)\)$/, `nearest bank protein: ${c[4]}`);
  // The map: the bank in grey and five numbered points; hovering one names its file, a click
  // opens it in the main view.
  await page.getByTestId("collection-map-note").filter({ hasText: "% of the variance" }).waitFor({ timeout: 240_000 });
  const map = page.getByTestId("collection-map");
  const png = PNG.sync.read(await map.screenshot({ path: path.join(out, "collection-map.png") }));
  const stats = pngStats(PNG.sync.write(png));
  assert.ok(stats.colours > 20, `the map looks blank: ${JSON.stringify(stats)}`);
  const box = await map.boundingBox();
  let target = null;
  for (let y = 0; y < png.height && !target; y++) {
    for (let x = 0; x < png.width; x++) {
      const k = 4 * (y * png.width + x);
      if (Math.abs(png.data[k] - 0xff) < 8 && Math.abs(png.data[k + 1] - 0xb0) < 8 && Math.abs(png.data[k + 2] - 0x20) < 8) {
        target = { x: (x / png.width) * box.width, y: (y / png.height) * box.height };
        break;
      }
    }
  }
  assert.ok(target, "no protein point drawn on the map");
  // Positions relative to the canvas (a screenshot may scroll the page).
  const at = { x: target.x + 0.5, y: target.y + 1 };
  await map.hover({ position: at });
  const hovered = await page.getByTestId("collection-hover").textContent();
  const match = hovered.match(/^(\d)\. (\S+) · chain/);
  assert.ok(match, `hovering a point: ${hovered}`);
  // Exports: the table (five rows and the skipped file is not a row) and every embedding.
  const csv = (await download(page, "collection-csv")).bytes.toString("utf8").trim().split("\n");
  assert.equal(csv[0], "row,file,chain,length,nearest,nearest_pdb_id,nearest_cosine,likely_function,function_share,error");
  assert.equal(csv.length, 6, csv.join("\n"));
  assert.match(csv[5], /^4,A0A023PZB3\.pdb,A,126,/);
  const npz = readZip((await download(page, "collection-npz")).bytes);
  const protein = readNpy(npz["protein.npy"]);
  assert.equal(protein.shape[0], 5);
  assert.equal(readNpy(npz["shared.npy"]).shape[0], 5);
  assert.deepEqual(readNpy(npz["map.npy"]).shape, [5, 2]);
  assert.deepEqual([...readNpy(npz["length.npy"]).values], lengths);
  // Where the embeddings came from: the level and weights of each row.
  assert.deepEqual([...readNpy(npz["noise_level.npy"]).values], [60, 60, 60, 60, 60]);
  const meta = JSON.parse(npz["metadata.json"].toString("utf8"));
  const shippedSha = fs.readFileSync(path.join(root, "assets/weights/foldspace-score-f16.safetensors.sha256"), "utf8").split(/\s/)[0];
  assert.deepEqual(meta.rows.map((r) => r.weights_sha256), Array(5).fill(shippedSha));
  assert.deepEqual(meta.rows.map((r) => r.length), lengths);
  await page.getByTestId("collection").screenshot({ path: path.join(out, "collection.png") });
  await map.click({ position: at });
  await page.locator(".panel.info .file", { hasText: match[2] }).waitFor({ timeout: SLOW });
  await context.close();
});

// The page's resources so far (Resource Timing): URL path, bytes over the wire (body, compressed
// where the server compressed it) and decoded.
async function resources(page) {
  return page.evaluate(() => [
    ...performance.getEntriesByType("navigation"),
    ...performance.getEntriesByType("resource"),
  ].map((e) => ({ path: new URL(e.name).pathname, encoded: e.encodedBodySize, decoded: e.decodedBodySize })));
}

const MB = 1e6;

// A folder dropped as the user drags one from their file manager (Chrome DevTools Protocol's
// drag events carry real paths; a page-made DataTransfer cannot hold a folder): the page walks
// it, sub-folders included, and summarises its structure files.
test("a dropped folder is walked: its structure files, sub-folders included, become the table", { timeout: SLOW }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "foldspace-drop-"));
  const folder = path.join(dir, "structures");
  fs.mkdirSync(path.join(folder, "more"), { recursive: true });
  fs.copyFileSync(path.join(root, "assets/examples/1a8o.pdb"), path.join(folder, "1a8o.pdb"));
  fs.copyFileSync(path.join(root, "assets/examples/1orc.pdb"), path.join(folder, "more/1orc.pdb"));
  fs.writeFileSync(path.join(folder, "notes.txt"), "not a structure");
  const { context, page, logs } = await openPage();
  const box = await page.locator(".page").boundingBox();
  const cdp = await context.newCDPSession(page);
  const data = { items: [], files: [folder], dragOperationsMask: 1 };
  for (const type of ["dragEnter", "dragOver", "drop"]) {
    await cdp.send("Input.dispatchDragEvent", { type, x: box.x + box.width / 2, y: box.y + 200, data });
  }
  const progress = page.getByTestId("collection-progress");
  await progress.waitFor({ timeout: SLOW });
  assert.equal(await progress.getAttribute("max"), "2", logs.join("\n"));
  assert.match(await page.getByTestId("collection").textContent(), /1 other file left out/);
  const rows = page.getByTestId("collection-table").locator("tbody tr");
  const start = Date.now();
  while ((await rows.count()) < 2) {
    if (Date.now() - start > SLOW) throw new Error(`the table stayed at ${await rows.count()} rows\n${logs.join("\n")}`);
    await page.waitForTimeout(500);
  }
  const names = await rows.evaluateAll((trs) => trs.map((tr) => tr.cells[1].textContent));
  assert.deepEqual([...names].sort(), ["1a8o.pdb", "1orc.pdb"]);
  await context.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the first visit stays within the download budget; the bank and the text model wait for their first use", { timeout: SLOW }, async () => {
  const { context, page, logs } = await openPage();
  await page.getByTestId("status").waitFor({ state: "attached", timeout: SLOW });
  // The default weights load in the background before any file is dropped.
  const start = Date.now();
  for (;;) {
    const got = await resources(page);
    if (got.some((r) => r.path.endsWith("/foldspace-score-f16.safetensors.sha256"))) break;
    if (Date.now() - start > SLOW) throw new Error(`the weights were never fetched\n${logs.join("\n")}`);
    await page.waitForTimeout(250);
  }
  await page.waitForTimeout(2000);
  const got = await resources(page);
  const table = got.map((r) => `${r.path}: ${r.encoded} bytes (${r.decoded} decoded)`).join("\n");
  console.log(`first visit:\n${table}`);
  fs.writeFileSync(path.join(out, "first-visit.json"), JSON.stringify(got, null, 1));
  const code = got.filter((r) => /\.(js|wasm)$/.test(r.path)).reduce((a, r) => a + r.encoded, 0);
  const all = got.reduce((a, r) => a + r.encoded, 0);
  console.log(`code ${(code / MB).toFixed(2)} MB, all ${(all / MB).toFixed(2)} MB over the wire`);
  assert.ok(got.some((r) => r.path.endsWith(".wasm")), `no wasm among the resources:\n${table}`);
  // The issue's goal: the code of the first visit ≤ 4 MB gzipped (BENCHMARKS.md, "The page's
  // download": 3.65 MB since the page is built without burn's autodiff, optim and fusion).
  assert.ok(code <= 4 * MB, `the code of the first visit is ${(code / MB).toFixed(2)} MB (goal 4 MB):\n${table}`);
  assert.ok(all <= 6 * MB, `the first visit fetched ${(all / MB).toFixed(2)} MB (budget 6 MB):\n${table}`);
  for (const later of ["bank.safetensors", "align.safetensors", "all-minilm-l6-v2-int8.safetensors", ".whl"]) {
    assert.ok(!got.some((r) => r.path.endsWith(later)), `${later} was fetched before it was needed:\n${table}`);
  }
  await context.close();
});

test("an example with the shipped weights: 3D view and heatmaps are drawn, exports work", { timeout: SLOW }, async () => {
  const { context, page, logs } = await openPage("?example=1a8o");
  const status = await waitStatus(page, logs, isReady);
  assert.equal(status, "ready", logs.join("\n"));
  await page.waitForTimeout(500);
  const shots = {
    "viewer-3d": await page.getByTestId("viewer-3d").screenshot({ path: path.join(out, "viewer-3d.png") }),
    "distance-map": await page.getByTestId("distance-map").screenshot({ path: path.join(out, "distance-map.png") }),
    "residue-embedding": await page.getByTestId("residue-embedding").screenshot({ path: path.join(out, "residue-embedding.png") }),
  };
  for (const [k, png] of Object.entries(shots)) {
    const s = pngStats(png);
    console.log(k, s);
    assert.ok(s.width > 50 && s.height > 10, `${k}: size`);
    assert.ok(s.colours > 50 && s.std > 8, `${k} looks blank: ${JSON.stringify(s)}`);
  }
  // The page's own PNG export of the 3D view holds the picture too.
  const [shot] = await Promise.all([page.waitForEvent("download"), page.locator(".view3d button", { hasText: "PNG" }).click()]);
  assert.match(shot.suggestedFilename(), /1a8o_A_3d\.png$/);
  const exported = pngStats(fs.readFileSync(await shot.path()));
  console.log("exported 3D PNG", exported);
  assert.ok(exported.colours > 50 && exported.std > 8, `the exported 3D PNG looks blank: ${JSON.stringify(exported)}`);
  // Colour by score, hover the map, then a full-page screenshot for the README / review.
  await page.locator(".view3d select").selectOption("score");
  const box = await page.getByTestId("distance-map").boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.6);
  assert.match(await page.locator(".map .hover").textContent(), /Å/);
  // The plot along the sequence follows the map's hover (its row), and hovering the plot
  // highlights that residue in the 3D view and in the plot itself.
  const plot = page.getByTestId("residue-plot");
  const mapRow = (await page.locator(".map .hover").textContent()).match(/^i (\d+) /)[1];
  assert.equal(await plot.getAttribute("data-hovered"), mapRow);
  await page.getByTestId("residue-panel").locator(".legend", { hasText: "plausibility ‖g‖" }).waitFor({ timeout: 180_000 });
  const plotBox = await plot.boundingBox();
  await page.mouse.move(plotBox.x + plotBox.width * 0.5 + 1, plotBox.y + plotBox.height / 2);
  assert.equal(await plot.getAttribute("data-hovered"), "35");
  assert.match(await page.getByTestId("residue-hover").textContent(), /^residue 35 \(/);
  assert.match(await page.locator(".view3d .hover").textContent(), /^residue 35 \(/);
  const plotPng = PNG.sync.read(await plot.screenshot({ path: path.join(out, "residue-plot.png") }));
  const markerColumns = new Set();
  for (let y = 0; y < plotPng.height; y++) {
    for (let x = 0; x < plotPng.width; x++) {
      const k = 4 * (y * plotPng.width + x);
      if (Math.abs(plotPng.data[k] - 0xff) < 12 && Math.abs(plotPng.data[k + 1] - 0x3d) < 12 && Math.abs(plotPng.data[k + 2] - 0xc8) < 12) markerColumns.add(x);
    }
  }
  const columns = [...markerColumns];
  assert.ok(columns.length > 0, "no highlighted residue in the plot");
  const centre = columns.reduce((a, b) => a + b, 0) / columns.length / plotPng.width;
  assert.ok(Math.abs(centre - 35.5 / 70) < 0.03, `the plot's marker is at ${centre.toFixed(3)} of its width, residue 35 is at ${(35.5 / 70).toFixed(3)}`);
  await page.screenshot({ path: path.join(out, "page.png"), fullPage: true });
  // Plausibility colouring: ‖g_i‖ at σ ≈ 0.56 Å (one more model run) on a fixed scale.
  await page.locator(".view3d select").selectOption("plausibility");
  await page.locator(".view3d .legend-title", { hasText: "implausibility" }).waitFor({ timeout: 180_000 });
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  const plausible = pngStats(await page.getByTestId("viewer-3d").screenshot({ path: path.join(out, "viewer-plausibility.png") }));
  console.log("plausibility colouring", plausible);
  assert.ok(plausible.colours > 50 && plausible.std > 8, `plausibility view looks blank: ${JSON.stringify(plausible)}`);
  // "How good is this?": the numbers behind the colouring, and the tables one click away.
  const note = page.getByTestId("plausibility-note");
  await note.locator("summary").click();
  assert.match(await note.textContent(), /Spearman ρ = 0\.\d+.*Pearson r = 0\.\d+/s);
  const docs = await note.locator("a").getAttribute("href");
  const docsResponse = await page.request.get(new URL(docs, page.url()).href);
  assert.equal(docsResponse.status(), 200, `${docs} is not served`);
  assert.match(await docsResponse.text(), /eval-qa/);
  // Similar proteins in the bank and likely function (the alignment model and bank, assets/align).
  const rows = await rankedRows(page, "similar-table", "similar-error", "similar proteins", 10);
  assert.match(await rows.first().locator("a").getAttribute("href"), /^https:\/\/www\.rcsb\.org\/structure\/[0-9A-Z]{4}$/);
  // Likely function: up to 5 GO names transferred from the closest annotated chains, with shares
  // in (0, 1], best first.
  const terms = page.getByTestId("likely-function").locator("li");
  const nTerms = await terms.count();
  assert.ok(nTerms >= 1 && nTerms <= 5, `likely function: ${nTerms} terms`);
  const shares = (await terms.locator("span").allTextContents()).map(Number);
  assert.ok(shares.every((x, i) => x > 0 && x <= 1 && (i === 0 || x <= shares[i - 1])), shares.join(" "));
  // "How good is this?" for likely function: the held-out numbers, the tables one click away.
  const functionNote = page.getByTestId("likely-function-note");
  await functionNote.locator("summary").click();
  assert.match(await functionNote.textContent(), /Fmax 0\.\d+.*against 0\.\d+.*MAP 0\.\d+/s);
  const training = await functionNote.locator("a").getAttribute("href");
  const trainingResponse = await page.request.get(new URL(training, page.url()).href);
  assert.equal(trainingResponse.status(), 200, `${training} is not served`);
  assert.match(await trainingResponse.text(), /eval-retrieval/);
  // Search the bank by free function text (the MiniLM text tower on the CPU backend): the text
  // model (int8, 23.4 MB) is fetched now, the first time, never the 83.5 MB wheel.
  const textModel = "/assets/text/all-minilm-l6-v2-int8.safetensors";
  assert.ok(!(await resources(page)).some((r) => r.path === textModel), "the text model was fetched before a search");
  await page.getByTestId("search-input").fill("sequence-specific DNA binding");
  await page.getByTestId("search-button").click();
  await rankedRows(page, "search-table", "search-error", "text search", 10);
  const afterSearch = await resources(page);
  assert.ok(afterSearch.some((r) => r.path === textModel), "the search did not fetch the int8 text model");
  assert.ok(!afterSearch.some((r) => r.path.endsWith(".whl")), "the page fetched the MiniLM wheel");
  console.log("search:", await page.locator(".similar .small").first().textContent());
  console.log("similar:", await page.locator(".similar .small").last().textContent());
  await page.getByTestId("similar").screenshot({ path: path.join(out, "similar.png") });
  const json = JSON.parse((await download(page, "export-json")).bytes.toString("utf8"));
  assert.equal(json.chain, "A");
  assert.equal(json.length, 70);
  assert.equal(json.noise_level, 60);
  assert.equal(json.protein_embedding.length, json.channels);
  assert.equal(json.residue_embeddings.length, 70);
  assert.ok(json.residue_embeddings.every((r) => r.length === json.channels && r.every(Number.isFinite)));
  const npy = readNpy((await download(page, "export-npy")).bytes);
  assert.deepEqual(npy.shape, [70, json.channels]);
  // Multi-chain file: the chain picker lists every protein chain.
  await page.getByRole("button", { name: /4e43/ }).click();
  await waitStatus(page, logs, (t) => t === "ready" || t.startsWith("error:"));
  const options = await page.getByTestId("chain-select").locator("option").allTextContents();
  assert.equal(options.length, 3, options.join(" | "));
  await page.getByTestId("chain-select").selectOption({ index: 1 });
  assert.equal(await waitStatus(page, logs, isReady), "ready");
  // The other two chains are drawn around it (thinner, dimmed), with their own swatches when
  // colouring by chain; unticking "other chains" leaves the chosen chain alone in the view.
  await page.locator(".view3d select").selectOption("chain");
  const toggle = page.getByTestId("context-chains");
  assert.ok(await toggle.isChecked(), "other chains are drawn by default");
  const swatches = page.locator(".view3d .legend .swatch");
  assert.equal(await swatches.count(), 3, (await swatches.allTextContents()).join(" | "));
  await page.waitForTimeout(500);
  const withContext = PNG.sync.read(await page.getByTestId("viewer-3d").screenshot({ path: path.join(out, "viewer-4e43-context.png") }));
  await toggle.uncheck();
  assert.equal(await swatches.count(), 1);
  await page.waitForTimeout(500);
  const alone = PNG.sync.read(await page.getByTestId("viewer-3d").screenshot({ path: path.join(out, "viewer-4e43-alone.png") }));
  let changed = 0;
  for (let k = 0; k < alone.data.length; k += 4) {
    if (Math.abs(alone.data[k] - withContext.data[k]) + Math.abs(alone.data[k + 1] - withContext.data[k + 1]) + Math.abs(alone.data[k + 2] - withContext.data[k + 2]) > 30) changed++;
  }
  const share = changed / (alone.width * alone.height);
  console.log(`4e43: ${(100 * share).toFixed(1)} % of the 3D view changes without the other chains`);
  // The camera stays, so the two renders are the same but for the other chains (2.0 % of the
  // pixels on SwiftShader, mostly hidden behind the chosen chain); nothing drawn gives 0.
  assert.ok(share > 0.005, `the other chains do not show: ${(100 * share).toFixed(2)} % of the pixels differ`);
  await context.close();
});

test("without WebGPU the model runs on the CPU and the 3D view on WebGL 2; a software WebGPU adapter is passed over for the CPU", { timeout: SLOW }, async () => {
  // SwiftShader's WebGPU (a fallback adapter) is what this machine has: left to itself the page
  // runs the model on the CPU backend and says why; the 3D view stays on WebGPU.
  let workerSimilar;
  {
    const { context, page, logs } = await openPage("?example=1a8o", { backend: null });
    const t0 = Date.now();
    assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
    const timing = await page.getByTestId("timing").textContent();
    console.log(`software WebGPU adapter, default backend: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${timing}`);
    assert.match(timing, /on the CPU \(in a worker\)/);
    // The model ran in the worker: the page's own thread went on answering meanwhile. On the
    // page's thread the stall is nearly the model's whole time (2.65 s of a 2.82 s run at
    // L = 126, BENCHMARKS.md "The page"); what stalls it now is the page's own work meanwhile
    // (loading the alignment model and bank, drawing): 277–767 ms here against a 1.3–1.9 s
    // embedding, by the machine's load.
    const modelMs = Number(/model (\d+) ms/.exec(timing)[1]);
    const stall = await page.evaluate(() => window.__stall);
    console.log(`longest stall of the page's event loop while the model ran: ${stall.ms.toFixed(0)} ms (${stall.busyTicks} ticks; the embedding took ${modelMs} ms); the status counted up to ${stall.seconds} s`);
    assert.ok(stall.busyTicks > 0, "the probe never saw the model running");
    assert.ok(stall.ms < 0.75 * modelMs, `the page stalled ${stall.ms.toFixed(0)} ms while a ${modelMs} ms model run was going on`);
    // And the status line counted the seconds meanwhile (embedding, then plausibility).
    assert.ok(stall.seconds >= 1, `the status line never counted a second (${JSON.stringify(stall)})`);
    // Similar proteins: the alignment model's own score network, loaded in the worker too.
    workerSimilar = await (await rankedRows(page, "similar-table", "similar-error", "similar proteins", 10)).allTextContents();
    assert.match(await page.getByTestId("backend-note").textContent(), /WebGPU runs in software here .*\?backend=webgpu/);
    assert.equal(await page.getByTestId("viewer-renderer").textContent(), "WebGPU");
    await context.close();
  }
  // Where the worker cannot start, the model runs on the page's thread, and the page says so.
  {
    const { context, page, logs } = await openPage("?example=1a8o", { backend: "cpu", noWorkerScript: true });
    assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
    const timing = await page.getByTestId("timing").textContent();
    assert.match(timing, /on the CPU · /);
    const note = await page.getByTestId("backend-note").textContent();
    console.log(`without worker.js: ${timing}; note: ${note}`);
    assert.match(note, /the model runs on the page's own thread, which pauses while it runs \(the model worker failed: /);
    // The same backend on the page's thread gives the worker's answers exactly.
    const here = await (await rankedRows(page, "similar-table", "similar-error", "similar proteins", 10)).allTextContents();
    assert.deepEqual(here, workerSimilar);
    await context.close();
  }
  // A browser without WebGPU: the model on the CPU, the 3D view on WebGL 2, drawn.
  const { context, page, logs } = await openPage("?example=1a8o", { backend: null, noWebGpu: true });
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  assert.match(await page.getByTestId("timing").textContent(), /on the CPU \(in a worker\)/);
  assert.match(await page.getByTestId("backend-note").textContent(), /this browser has no WebGPU/);
  assert.equal(await page.getByTestId("viewer-renderer").textContent(), "WebGL 2");
  await page.waitForTimeout(500);
  const view = pngStats(await page.getByTestId("viewer-3d").screenshot({ path: path.join(out, "viewer-3d-webgl.png") }));
  console.log("3D view on WebGL 2", view);
  assert.ok(view.colours > 50 && view.std > 8, `the WebGL 2 view looks blank: ${JSON.stringify(view)}`);
  // The view answers a drag (it is redrawn, not a still picture).
  const box = await page.getByTestId("viewer-3d").boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2 + 30, { steps: 6 });
  await page.mouse.up();
  await page.waitForTimeout(300);
  const turned = PNG.sync.read(await page.getByTestId("viewer-3d").screenshot());
  const before = PNG.sync.read(fs.readFileSync(path.join(out, "viewer-3d-webgl.png")));
  let changed = 0;
  for (let k = 0; k < turned.data.length; k += 4) {
    if (Math.abs(turned.data[k] - before.data[k]) + Math.abs(turned.data[k + 1] - before.data[k + 1]) > 40) changed++;
  }
  console.log(`WebGL 2 view after a drag: ${(100 * changed / (turned.width * turned.height)).toFixed(1)} % of the pixels changed`);
  assert.ok(changed / (turned.width * turned.height) > 0.01, "the WebGL 2 view did not turn");
  // A refinement in the worker, from noise with 50 steps per level (thousands of model runs):
  // its steps come back as it goes, and Stop (posted to the worker) ends it after the step in
  // progress.
  await page.locator(".model label.check input[type=checkbox]").check();
  await page.locator(".model input[type=number]").fill("50");
  await page.getByTestId("refine").click();
  const progress = /from noise · (\d+) \/ (\d+) steps/;
  await page.getByTestId("refine-status").filter({ hasText: /from noise · [1-9]\d* \/ \d+ steps/ }).waitFor({ timeout: SLOW });
  const t0 = Date.now();
  await page.getByRole("button", { name: "Stop" }).click();
  await page.getByTestId("refine").waitFor({ timeout: SLOW });
  const stopped = await page.getByTestId("refine-status").textContent();
  console.log(`refinement in the worker stopped in ${Date.now() - t0} ms: ${stopped}`);
  const [, done, total] = progress.exec(stopped).map(Number);
  assert.ok(done >= 1 && done < total && total >= 1000, stopped);
  const errors = logs.filter((l) => l.startsWith("pageerror"));
  assert.deepEqual(errors, [], errors.join("\n"));
  await context.close();
});

test("on the CPU a long chain waits to be asked, a run for a chain no longer on screen is dropped, and Stop stops", { timeout: SLOW }, async () => {
  const { context, page, logs } = await openPage("?example=1a8o", { backend: "cpu" });
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  const firstSimilar = await (await rankedRows(page, "similar-table", "similar-error", "similar proteins", 10)).allTextContents();
  const alphafold = path.join(root, "assets/examples/AF-Q5VSL9-F1-model_v2.pdb.gz");
  const held = /^chain A has 837 residues: on the CPU the model runs unasked on up to 400; longer chains take about (\d+) (s|min) a run here \(estimated from the last run: [\d.]+ s at \d+ residues\)$/;
  // 837 residues: the map and the 3D view, and the model waits to be asked, with an estimate.
  await page.getByTestId("file-input").setInputFiles(alphafold);
  const text = await waitStatus(page, logs, (t) => held.test(t) || t.startsWith("error:"));
  const [, n, unit] = held.exec(text);
  const estimate = Number(n) * (unit === "min" ? 60 : 1);
  console.log(`held: ${text}`);
  assert.ok(estimate >= 60, `an estimate of ${estimate} s for 837 residues`);
  await page.getByTestId("run-model").waitFor();
  // Asked: it runs in the worker, and can be stopped.
  await page.getByTestId("run-model").click();
  await waitStatus(page, logs, (t) => /^running the model/.test(t));
  await page.getByTestId("stop-model").waitFor();
  await page.waitForTimeout(2000);
  // Another file while it runs: the stale run is dropped (the worker is replaced), so the new
  // chain's model runs now, not after minutes of a run nobody wants.
  const t0 = Date.now();
  await page.getByTestId("file-input").setInputFiles(path.join(root, "assets/examples/1a8o.pdb"));
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  const switched = (Date.now() - t0) / 1000;
  console.log(`1a8o ready ${switched.toFixed(1)} s after it replaced a running 837-residue model run (estimated at ${estimate} s)`);
  assert.ok(switched < Math.min(30, estimate / 2), `the new chain waited ${switched.toFixed(1)} s`);
  // The restarted worker has the same networks: the same answers as before.
  const again = await (await rankedRows(page, "similar-table", "similar-error", "similar proteins", 10)).allTextContents();
  assert.deepEqual(again, firstSimilar);
  // Stop: the run ends at once and the page offers to run it again.
  await page.getByTestId("file-input").setInputFiles(alphafold);
  await waitStatus(page, logs, (t) => held.test(t));
  await page.getByTestId("run-model").click();
  await page.getByTestId("stop-model").waitFor();
  await page.getByTestId("stop-model").click();
  assert.equal(await waitStatus(page, logs, (t) => t === "the model was stopped" || t.startsWith("error:"), 10_000), "the model was stopped");
  await page.getByTestId("run-model").waitFor();
  // Stopped for real: the next file does not wait for the run that was stopped.
  const t2 = Date.now();
  await page.getByTestId("file-input").setInputFiles(path.join(root, "assets/examples/1a8o.pdb"));
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  const afterStop = (Date.now() - t2) / 1000;
  console.log(`1a8o ready ${afterStop.toFixed(1)} s after the 837-residue run was stopped`);
  assert.ok(afterStop < Math.min(30, estimate / 2), `the next chain waited ${afterStop.toFixed(1)} s after Stop`);
  // A chain just over the limit, asked, runs to the end: embeddings, plausibility and similar
  // proteins (the first 420 residues of the same model).
  const lines = zlib.gunzipSync(fs.readFileSync(alphafold)).toString("utf8").split("\n");
  const first420 = lines.filter((l) => !/^(ATOM|HETATM)/.test(l) || Number(l.slice(22, 26)) <= 420).join("\n");
  await page.getByTestId("file-input").setInputFiles({ name: "AF-Q5VSL9-first420.pdb", mimeType: "text/plain", buffer: Buffer.from(first420) });
  await waitStatus(page, logs, (t) => /^chain A has 420 residues/.test(t));
  const t1 = Date.now();
  await page.getByTestId("run-model").click();
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  const timing = await page.getByTestId("timing").textContent();
  console.log(`420 residues on the CPU, asked: ready in ${((Date.now() - t1) / 1000).toFixed(1)} s; ${timing}`);
  assert.match(timing, /on the CPU \(in a worker\)/);
  await rankedRows(page, "similar-table", "similar-error", "similar proteins", 10);
  const errors = logs.filter((l) => l.startsWith("pageerror"));
  assert.deepEqual(errors, [], errors.join("\n"));
  await context.close();
});

test("refinement runs a short annealed Langevin schedule and reports the RMSD", { timeout: SLOW }, async () => {
  const { context, page, logs } = await openPage("?example=1orc");
  assert.equal(await waitStatus(page, logs, isReady), "ready", logs.join("\n"));
  // The noise-level slider while dragged (input events, no release): the page keeps its
  // position through a re-render and runs nothing until it is released.
  const slider = page.getByTestId("noise-level");
  const level = await slider.inputValue();
  await slider.evaluate((el) => {
    el.value = "30";
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
  await page.locator(".view3d .tools label.check", { hasText: "arrows" }).locator("input").click();
  assert.equal(await slider.inputValue(), "30");
  assert.match(await page.locator(".model label.row .value").first().textContent(), /^30 · σ/);
  assert.equal(await page.getByTestId("status").textContent(), "ready");
  await slider.evaluate((el, back) => {
    el.value = back;
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
  }, level);
  assert.equal(await page.getByTestId("status").textContent(), "ready");
  // Start near the end of the ladder with one step per level: three model runs.
  await page.locator(".model input[type=range]").nth(1).evaluate((el) => {
    el.value = "58";
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
  // Typed, as a user would: the page takes the value on each input event (it once waited for
  // `change`, and a re-render in between put the old value back: CI ran 9 steps instead of 3).
  await page.locator(".model input[type=number]").fill("1");
  await page.locator(".model label.row .value").nth(1).filter({ hasText: /^58 · σ/ }).waitFor();
  assert.equal(await page.locator(".model input[type=number]").inputValue(), "1");
  // Click from inside the page: the refinement then keeps the main thread busy, and on a loaded
  // machine playwright's own click timed out waiting for the page after its click was done.
  await page.getByTestId("refine").evaluate((el) => el.click());
  await page.getByTestId("refine").waitFor({ timeout: SLOW });
  const text = await page.getByTestId("refine-status").textContent();
  console.log("refinement:", text);
  assert.match(text, /3 \/ 3 steps/);
  assert.match(text, /RMSD to the structure \d+\.\d+ Å/);
  await context.close();
});
