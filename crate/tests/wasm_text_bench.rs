//! Browser timings of the text encoder (BENCHMARKS.md), not run by the tests (`#[ignore]`):
//!
//! ```sh
//! cd crate && wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" \
//!     -- --test wasm_text_bench -- --include-ignored
//! ```
//!
//! Needs `crate/tests/served/` (see `tests/run`). Prints, per backend and stored precision: the
//! time from the start of the download to the first embedding (fetch, parse, upload, one text),
//! and texts per second over 32 GO-style texts after a warm-up (SwiftShader is slow: 256 texts
//! ran past the runner's 900 s).
#![cfg(target_family = "wasm")]

use foldspace::compute::Compute;
use foldspace::text::TextEncoder;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now_ms() -> f64 {
    js_sys::Date::now()
}

async fn fetch(path: &str) -> Vec<u8> {
    let window = web_sys::window().expect("a window");
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(path))
        .await
        .expect("fetch")
        .dyn_into()
        .expect("a Response");
    assert!(response.ok(), "{path}: HTTP {}", response.status());
    let buffer = JsFuture::from(response.array_buffer().expect("body"))
        .await
        .expect("body");
    js_sys::Uint8Array::new(&buffer).to_vec()
}

fn texts(n: usize) -> Vec<String> {
    let words = [
        "binding",
        "of",
        "a",
        "protein",
        "to",
        "the",
        "membrane",
        "zinc",
        "ion",
        "transport",
        "regulation",
        "kinase",
        "activity",
        "catalysis",
        "hydrolysis",
        "ATP",
        "DNA",
        "repair",
        "mitochondrial",
        "signal",
        "transduction",
        "cell",
        "cycle",
        "negative",
        "positive",
    ];
    (0..n)
        .map(|i| {
            let len = 8 + (i * 7) % 30;
            (0..len)
                .map(|j| words[(i * 31 + j * 17) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

async fn bench(file: &str, compute: Compute) {
    let start = now_ms();
    let bytes = fetch(&format!("/tests/served/{file}")).await;
    let fetched = now_ms();
    let encoder = TextEncoder::from_exported(&bytes, compute).expect("encoder");
    let loaded = now_ms();
    encoder.embed(&["zinc ion binding"]).await.expect("embed");
    let first = now_ms();
    let texts = texts(32);
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
