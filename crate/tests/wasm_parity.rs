//! The parity test of `reference.rs`, compiled to wasm32 and run in headless Chromium by
//! `bash tests/browser --test wasm_parity`: WebGPU (SwiftShader on CI) and the CPU backend.
//! The checkpoint and golden vectors are embedded at compile time from `../shared`.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

#[cfg(not(foldspace_shared))]
compile_error!(
    "../shared/reference is missing: the browser parity test embeds the published checkpoint and \
     golden vectors from it (CI provides ../shared beside the clone; or set FOLDSPACE_SHARED)"
);

use foldspace::compute::{Compute, read_f32};
use foldspace::score::embed::Embedder;
use foldspace::structure::{ReadOptions, read_structure};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

macro_rules! reference {
    ($path:literal) => {
        include_bytes!(concat!(env!("FOLDSPACE_SHARED_DIR"), "/reference/", $path)).as_slice()
    };
}

const LEVEL: usize = 4;
const TOL: f64 = 1e-4;

fn npy(bytes: &[u8]) -> Vec<f32> {
    npyz::NpyFile::new(bytes)
        .expect("npy")
        .into_vec::<f32>()
        .expect("f32 npy")
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

async fn parity(compute: Compute) {
    let parsed = read_structure(
        reference!("A0A023PZB3.pdb"),
        Some("A0A023PZB3.pdb"),
        &ReadOptions::default(),
    )
    .expect("parse");
    let chain = parsed.structure.chain("A").expect("chain A").clone();
    let l = chain.len();
    let embedder =
        Embedder::from_bytes(reference!("model_trgt_opt.safetensors"), compute).expect("weights");
    let (inputs, out) = embedder
        .forward(&chain.ca, &chain.sequence, LEVEL)
        .await
        .expect("forward");
    let describe = embedder.compute.describe();
    let check = |name: &str, ours: &[f32], golden: &[u8]| {
        let e = rel_err(ours, &npy(golden));
        web_sys_log(&format!("{describe} {name}: relative error {e:.3e}"));
        assert!(e < TOL, "{name}: relative error {e:.3e}");
    };
    check(
        "inputs",
        &read_f32(inputs).await.expect("read"),
        reference!("golden/A0A023PZB3/inputs.npy"),
    );
    check(
        "conv_out",
        &read_f32(out.score).await.expect("read"),
        reference!("golden/A0A023PZB3/conv_out.npy"),
    );
    check(
        "encoder_feat",
        &read_f32(out.features).await.expect("read"),
        reference!("golden/A0A023PZB3/encoder_feat.npy"),
    );
    let emb = embedder.embed(&chain, LEVEL).await.expect("embed");
    let c = emb.channels;
    let mut residue_cl = vec![0f32; l * c];
    for i in 0..l {
        for k in 0..c {
            residue_cl[k * l + i] = emb.residue[i * c + k];
        }
    }
    check(
        "residue_level_feat",
        &residue_cl,
        reference!("golden/A0A023PZB3/residue_level_feat.npy"),
    );
    check(
        "protein_level_feat",
        &emb.protein,
        reference!("golden/A0A023PZB3/protein_level_feat.npy"),
    );
}

fn web_sys_log(s: &str) {
    wasm_bindgen_test::console_log!("{}", s);
}

#[wasm_bindgen_test]
async fn webgpu_reproduces_published_features() {
    let compute = Compute::wgpu_async()
        .await
        .expect("WebGPU is needed (chromium flags in crate/webdriver.json)");
    parity(compute).await;
}

#[wasm_bindgen_test]
async fn browser_cpu_reproduces_published_features() {
    parity(Compute::cpu()).await;
}
