//! Browser timings of the text encoder (BENCHMARKS.md), not run by the tests (`#[ignore]`):
//!
//! ```sh
//! bash tests/browser --test wasm_text_bench -- --include-ignored --nocapture
//! ```
//!
//! Needs `crate/tests/served/` (see `tests/run`). Prints, per backend and stored precision: the
//! time from the start of the download to the first embedding (fetch, parse, upload, one text),
//! and texts per second over 32 GO-style texts after a warm-up (SwiftShader is slow: 256 texts
//! ran past the runner's 900 s).
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod web;

use foldspace::compute::Compute;
use foldspace::text::{TextEncoder, benchmark_texts};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now_ms() -> f64 {
    js_sys::Date::now()
}

async fn bench(file: &str, compute: Compute) {
    let start = now_ms();
    let bytes = web::fetch(&format!("/tests/served/{file}")).await;
    let fetched = now_ms();
    let encoder = TextEncoder::from_exported(&bytes, compute).expect("encoder");
    let loaded = now_ms();
    encoder.embed(&["zinc ion binding"]).await.expect("embed");
    let first = now_ms();
    let texts = benchmark_texts(32);
    let tokens = encoder.tokenize(&texts).expect("tokenize");
    encoder.embed_tokens(&tokens).await.expect("warm-up");
    let t = now_ms();
    encoder.embed_tokens(&tokens).await.expect("embed");
    let seconds = (now_ms() - t) / 1000.0;
    let mean = tokens.iter().map(|t| t.ids.len()).sum::<usize>() as f64 / tokens.len() as f64;
    console_log!(
        "BENCH {} {file} ({:.1} MB): first embedding {:.2} s after the download started \
         (fetch {:.2} s, parse+upload {:.2} s, first text {:.2} s); {} texts (mean {mean:.1} \
         tokens) in {seconds:.2} s = {:.1} texts/s",
        encoder.compute().describe(),
        bytes.len() as f64 / 1e6,
        (first - start) / 1000.0,
        (fetched - start) / 1000.0,
        (loaded - fetched) / 1000.0,
        (first - loaded) / 1000.0,
        texts.len(),
        texts.len() as f64 / seconds
    );
}

#[wasm_bindgen_test]
#[ignore]
async fn bench_webgpu_f16() {
    bench(
        "all-minilm-l6-v2-f16.safetensors",
        Compute::wgpu_async().await.expect("WebGPU"),
    )
    .await;
}

#[wasm_bindgen_test]
#[ignore]
async fn bench_cpu_f16() {
    bench("all-minilm-l6-v2-f16.safetensors", Compute::cpu()).await;
}
