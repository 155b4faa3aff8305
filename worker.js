// The foldspace model worker: the page's own wasm, run off the page's thread so that the page
// keeps answering while the score network runs on the CPU (web/src/model.rs). Loading the wasm
// runs its start function, which mounts nothing here (a worker has no document).
import init, { model_worker } from "./pkg/foldspace_web.js";

await init();
model_worker();
