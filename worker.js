// The foldspace model worker: the page's own wasm, run off the page's thread so that the page
// keeps answering while the score network runs on the CPU (web/src/model.rs). The page posts its
// compiled WebAssembly.Module first (no second download or compile); instantiating it runs its
// start function, which mounts nothing here (a worker has no document).
import init, { model_worker } from "./pkg/foldspace_web.js";

self.addEventListener(
  "message",
  async (event) => {
    await init({ module_or_path: event.data });
    model_worker();
  },
  { once: true },
);
