// Page benchmarks (BENCHMARKS.md): wasm size, time from file chosen to embeddings shown at
// L = 126 and L ≈ 300 with the model on WebGPU and on the CPU backend, and frames per second of
// the 3D view for a 2,000-residue chain on WebGPU and on WebGL 2, in headless Chromium (WebGPU
// and WebGL on SwiftShader, i.e. on the CPU, when no GPU is present).
//
//   bash web/build && FOLDSPACE_SHARED=../shared node tests/e2e/bench.mjs [--quick] [--cpu] [--long]
//
// FOLDSPACE_DIST names another built site (default dist/); --quick leaves out the L ≈ 300 run;
// --cpu runs the model on the CPU backend only and leaves out the 3D view. Each model run also
// reports the longest stall of the page's event loop while the model ran (a 20 ms timer's
// longest gap): how long the page answered nothing. --long runs only the CPU backend's ladder of
// lengths up to the page's limit of 1,000 residues in one page (chains over 400 are asked for, as a user would), with
// the page's own estimate beside each measured time and the browser's peak renderer memory.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const dist = path.resolve(process.env.FOLDSPACE_DIST || path.join(root, "dist"));
const quick = process.argv.includes("--quick");
const long = process.argv.includes("--long");
const cpuOnly = process.argv.includes("--cpu");
const shared = path.resolve(process.env.FOLDSPACE_SHARED || path.join(root, "../shared"));
const chainsFile = path.join(shared, "data/structures/chains.jsonl.gz");
for (const p of [path.join(dist, "index.html"), chainsFile]) {
  if (!fs.existsSync(p)) throw new Error(`missing ${p}: build the site (web/build) and provide ../shared`);
}

const THREE = { A: "ALA", R: "ARG", N: "ASN", D: "ASP", C: "CYS", Q: "GLN", E: "GLU", G: "GLY", H: "HIS", I: "ILE",
  L: "LEU", K: "LYS", M: "MET", F: "PHE", P: "PRO", S: "SER", T: "THR", W: "TRP", Y: "TYR", V: "VAL" };

function pdbOf(seq, ca) {
  const lines = ca.map(([x, y, z], i) =>
    `ATOM  ${String(i + 1).padStart(5)}  CA  ${THREE[seq[i]] || "GLY"} A${String(i + 1).padStart(4)}    ` +
    `${x.toFixed(3).padStart(8)}${y.toFixed(3).padStart(8)}${z.toFixed(3).padStart(8)}  1.00 20.00           C`);
  return Buffer.from(lines.join("\n") + "\nEND\n");
}

const chains = zlib.gunzipSync(fs.readFileSync(chainsFile)).toString("utf8").trim().split("\n").map((l) => JSON.parse(l));
const ok = (c) => c.ca.every((p) => p && p.every(Number.isFinite));
const c300 = chains.find((c) => c.split === "val" && c.seq.length >= 295 && c.seq.length <= 305 && ok(c));
const c600 = chains.find((c) => c.split === "val" && c.seq.length >= 590 && c.seq.length <= 610 && ok(c));
// 2,000 residues: real chains joined end to end (each next one translated to continue 3.8 Å on).
let seq = "", ca = [];
for (const c of chains.filter(ok)) {
  const last = ca.at(-1) || [0, 0, 0];
  const first = c.ca[0];
  const shift = [last[0] - first[0] + 3.8, last[1] - first[1], last[2] - first[2]];
  for (let i = 0; i < c.ca.length && ca.length < 2000; i++) {
    seq += c.seq[i];
    ca.push([c.ca[i][0] + shift[0], c.ca[i][1] + shift[1], c.ca[i][2] + shift[2]]);
  }
  if (ca.length >= 2000) break;
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((req, res) => {
  let file = new URL(req.url, "http://x").pathname;
  if (file.endsWith("/")) file += "index.html";
  const p = path.join(dist, path.normalize(file));
  if (!p.startsWith(dist) || !fs.existsSync(p)) return res.writeHead(404).end();
  // Last-Modified, as `web/serve` (Python's http.server) and static hosts send it: the browser
  // may then reuse what it fetched (the model worker loads the page's wasm again).
  res.writeHead(200, {
    "content-type": TYPES[path.extname(p)] || "application/octet-stream",
    "last-modified": fs.statSync(p).mtime.toUTCString(),
  });
  res.end(fs.readFileSync(p));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;
const config = JSON.parse(fs.readFileSync(path.join(root, "crate/webdriver.json"), "utf8"));
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: config["goog:chromeOptions"].args.filter((a) => !a.startsWith("--headless")),
});

async function status(page, done, timeout = 20 * 60 * 1000) {
  const start = Date.now();
  for (;;) {
    const t = await page.getByTestId("status").textContent();
    if (done(t)) return t;
    if (Date.now() - start > timeout) throw new Error(`status stuck at ${t}`);
    await page.waitForTimeout(100);
  }
}

async function timeToEmbeddings(label, file, query) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  await context.addInitScript(() => {
    const stall = (window.__stall = { ms: 0 });
    let last = performance.now();
    let busy = false;
    setInterval(() => {
      const now = performance.now();
      if (busy) stall.ms = Math.max(stall.ms, now - last);
      last = now;
      busy = /running the model|scoring plausibility/.test(document.querySelector("[data-testid=status]")?.textContent ?? "");
    }, 20);
  });
  const page = await context.newPage();
  // The wasm as fetched by the page and by its model worker (on the CPU backend): bytes of
  // body received (0: served from the browser's cache).
  const wasm = [];
  context.on("requestfinished", async (r) => {
    if (r.url().endsWith(".wasm")) wasm.push((await r.sizes()).responseBodySize);
  });
  await page.goto(`${base}/${query}`);
  // Weights are fetched at start; wait until they are in (a structure then runs at once).
  await page.waitForFunction(() => document.querySelector("[data-testid=weights]")?.textContent !== "", null, { timeout: 600000 });
  const t0 = Date.now();
  await page.getByTestId("file-input").setInputFiles(file);
  const s = await status(page, (t) => t === "ready" || t.startsWith("error:"));
  const wall = (Date.now() - t0) / 1000;
  const timing = await page.getByTestId("timing").textContent();
  const stall = await page.evaluate(() => window.__stall.ms);
  console.log(`${label} ${query}: ${s}; file chosen -> embeddings shown ${wall.toFixed(1)} s (page: ${timing}); longest stall while the model ran ${stall.toFixed(0)} ms; wasm fetched ${wasm.length}x, bytes received ${wasm.join(" + ")}`);
  await page.context().close();
}

// Resident memory (MiB) of the browser's renderer processes (the page and its workers), summed.
function rendererMiB() {
  let kib = 0;
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--type=renderer")) continue;
      kib += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // The process ended meanwhile.
    }
  }
  return kib / 1024;
}

// The CPU backend over a ladder of lengths, one page (as a user going from file to file): a
// chain over the unasked limit waits, says how long it would take, and is asked for.
async function cpuLadder() {
  const alphafold = path.join(root, "assets/examples/AF-Q5VSL9-F1-model_v2.pdb.gz");
  const lines = zlib.gunzipSync(fs.readFileSync(alphafold)).toString("utf8").split("\n");
  const first420 = lines.filter((l) => !/^(ATOM|HETATM)/.test(l) || Number(l.slice(22, 26)) <= 420).join("\n");
  const ladder = [
    ["A0A023PZB3 (L=126)", path.join(shared, "reference/A0A023PZB3.pdb")],
    [`${c300.name} (L=${c300.seq.length})`, { name: `${c300.name}.pdb`, mimeType: "text/plain", buffer: pdbOf(c300.seq, c300.ca) }],
    ["AF-Q5VSL9 residues 1-420 (L=420)", { name: "AF-Q5VSL9-first420.pdb", mimeType: "text/plain", buffer: Buffer.from(first420) }],
    [`${c600.name} (L=${c600.seq.length})`, { name: `${c600.name}.pdb`, mimeType: "text/plain", buffer: pdbOf(c600.seq, c600.ca) }],
    ["AF-Q5VSL9 (L=837)", alphafold],
    // The page's limit: the first 1,000 residues of the joined chain below.
    ["joined chains (L=1000)", { name: "joined1000.pdb", mimeType: "text/plain", buffer: pdbOf(seq.slice(0, 1000), ca.slice(0, 1000)) }],
  ];
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  await page.goto(`${base}/?backend=cpu`);
  await page.waitForFunction(() => document.querySelector("[data-testid=weights]")?.textContent !== "", null, { timeout: 600000 });
  for (const [label, file] of ladder) {
    let peak = rendererMiB();
    const sampler = setInterval(() => (peak = Math.max(peak, rendererMiB())), 500);
    let t0 = Date.now();
    await page.getByTestId("file-input").setInputFiles(file);
    let s = await status(page, (t) => t === "ready" || t.startsWith("error:") || /runs unasked/.test(t));
    let estimate = "-";
    if (/runs unasked/.test(s)) {
      estimate = /take (about .*)$/.exec(s)?.[1] ?? s;
      t0 = Date.now();
      await page.getByTestId("run-model").click();
    }
    s = await status(page, (t) => t === "ready" || t.startsWith("error:"));
    clearInterval(sampler);
    const timing = await page.getByTestId("timing").textContent();
    console.log(`${label}: ${s}; page: ${timing}; from file (or click) to ready (embedding, plausibility) ${((Date.now() - t0) / 1000).toFixed(1)} s; estimate shown: ${estimate}; peak renderer RSS ${peak.toFixed(0)} MiB`);
    // Similar proteins (the alignment model's structure tower, a third run) before the next file.
    await page.getByTestId("similar-table").locator("tbody tr").first().waitFor({ timeout: 600000 });
  }
  await page.context().close();
}

if (long) {
  await cpuLadder();
  await browser.close();
  server.close();
  process.exit(0);
}

const wasm = fs.readFileSync(path.join(dist, "pkg/foldspace_web_bg.wasm"));
const gz = zlib.gzipSync(wasm, { level: 9 });
console.log(`wasm: ${(wasm.length / 1048576).toFixed(1)} MiB raw, ${(gz.length / 1048576).toFixed(1)} MiB gzip -9`);
// The model on WebGPU (forced: SwiftShader here is a software adapter, which the page passes
// over by default) and on the CPU backend (what the page then chooses).
for (const query of cpuOnly ? ["?backend=cpu"] : ["?backend=webgpu", "?backend=cpu"]) {
  await timeToEmbeddings("A0A023PZB3 (L=126)", path.join(shared, "reference/A0A023PZB3.pdb"), query);
  if (!quick) await timeToEmbeddings(`${c300.name} (L=${c300.seq.length})`, { name: `${c300.name}.pdb`, mimeType: "text/plain", buffer: pdbOf(c300.seq, c300.ca) }, query);
}

// Frames per second of the 3D view: 2,000 residues, spinning, on WebGPU and on WebGL 2.
for (const query of cpuOnly ? [] : ["?view=webgpu", "?view=webgl"]) {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  await page.goto(`${base}/${query}`);
  await page.getByTestId("file-input").setInputFiles({ name: "joined2000.pdb", mimeType: "text/plain", buffer: pdbOf(seq, ca) });
  await page.waitForFunction(() => document.querySelector("[data-testid=chain-select] option")?.textContent.includes("2000"), null, { timeout: 600000 });
  await page.waitForTimeout(2000);
  await page.getByRole("button", { name: "Spin" }).click();
  const fps = [];
  for (let i = 0; i < 5; i++) {
    await page.waitForTimeout(2000);
    fps.push(Number(await page.getByTestId("viewer-3d").getAttribute("data-fps")));
  }
  const size = await page.getByTestId("viewer-3d").boundingBox();
  const renderer = await page.getByTestId("viewer-renderer").textContent();
  console.log(`3D view on ${renderer}, 2000 residues, ${Math.round(size.width)}x${Math.round(size.height)} CSS px: fps ${fps.map((f) => f.toFixed(1)).join(", ")}`);
  await page.context().close();
}
await browser.close();
server.close();
