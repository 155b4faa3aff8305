//! The MiniLM text encoder in headless Chromium (`bash tests/browser --test wasm_text`):
//! the files `foldspace export-text` writes, fetched the way the page fetches them, on WebGPU
//! (SwiftShader on CI: f32 and f16) and on the CPU backend (int8), against the golden tokens and embeddings of
//! `shared/minilm` (embedded at compile time).
//!
//! `tests/run` exports the model into `crate/tests/served/` first: the test runner's web server
//! serves the crate directory and nothing above it.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

#[cfg(not(foldspace_shared))]
compile_error!(
    "../shared is missing: the browser text test embeds the golden tokens and embeddings of \
     shared/minilm (CI provides ../shared beside the clone; or set FOLDSPACE_SHARED)"
);

mod web;

use foldspace::compute::Compute;
use foldspace::text::{TextEncoder, TextPrecision};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const TOKENS: &str = include_str!(concat!(env!("FOLDSPACE_SHARED_DIR"), "/minilm/tokens.json"));
const EMBEDDINGS: &[u8] = include_bytes!(concat!(
    env!("FOLDSPACE_SHARED_DIR"),
    "/minilm/embeddings.npy"
));

/// (text, golden ids) of the 20 shared sentences.
fn golden_tokens() -> Vec<(String, Vec<u32>)> {
    let v: serde_json::Value = serde_json::from_str(TOKENS).expect("tokens.json");
    v["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| {
            let ids = s["input_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|i| i.as_u64().expect("id") as u32)
                .collect();
            (s["text"].as_str().expect("text").to_string(), ids)
        })
        .collect()
}

fn golden_embeddings() -> Vec<Vec<f32>> {
    let v: Vec<f32> = npyz::NpyFile::new(EMBEDDINGS)
        .expect("npy")
        .into_vec()
        .expect("f32");
    v.chunks(384).map(<[f32]>::to_vec).collect()
}

async fn check(file: &str, compute: Compute, precision: TextPrecision, min_cosine: f64) {
    let gpu = compute.is_gpu();
    let bytes = web::fetch(&format!("/tests/served/{file}")).await;
    let encoder = TextEncoder::from_exported(&bytes, compute).expect("encoder");
    assert_eq!(encoder.precision, precision);
    let golden = golden_tokens();
    for (i, (text, ids)) in golden.iter().enumerate() {
        let ours = encoder.tokenizer().encode(text).expect("encode");
        assert_eq!(&ours.ids, ids, "sentence {i} {text:?}");
    }
    let texts: Vec<&str> = golden.iter().map(|(t, _)| t.as_str()).collect();
    let out = encoder.embed(&texts).await.expect("embed");
    assert_eq!(out.truncated.len(), 1, "the 600-word sentence is cut");
    // A second run on the same device gives the same vectors (with kernel autotuning in the
    // browser, a kernel WebGPU had refused was picked for the second run: zero vectors).
    let again = if gpu {
        encoder.embed(&texts).await.expect("embed")
    } else {
        out.clone()
    };
    for (i, (a, b)) in out.vectors.iter().zip(&again.vectors).enumerate() {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "sentence {i}: second run differs by {d:.2e}");
    }
    let mut worst = 1.0f64;
    for (i, (ours, want)) in out.vectors.iter().zip(golden_embeddings()).enumerate() {
        let c: f64 = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        worst = worst.min(c);
        assert!(
            c >= min_cosine,
            "sentence {i}: cosine {c:.7} < {min_cosine}"
        );
    }
    console_log!(
        "{} {file}: worst cosine to golden {worst:.8}",
        encoder.compute().describe()
    );
}

#[wasm_bindgen_test]
async fn webgpu_f32_matches_golden() {
    let compute = Compute::wgpu_async()
        .await
        .expect("WebGPU is needed (chromium flags in crate/webdriver.json)");
    check(
        "all-minilm-l6-v2-f32.safetensors",
        compute,
        TextPrecision::F32,
        0.9999,
    )
    .await;
}

#[wasm_bindgen_test]
async fn webgpu_f16_matches_golden() {
    let compute = Compute::wgpu_async().await.expect("WebGPU");
    check(
        "all-minilm-l6-v2-f16.safetensors",
        compute,
        TextPrecision::F16,
        0.995,
    )
    .await;
}

#[wasm_bindgen_test]
async fn browser_cpu_int8_matches_golden() {
    check(
        "all-minilm-l6-v2-int8.safetensors",
        Compute::cpu(),
        TextPrecision::Int8,
        0.98,
    )
    .await;
}
