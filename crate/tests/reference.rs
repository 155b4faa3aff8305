//! Parity with the published score model (reference-model.md §8): features, score map, encoder
//! features and embeddings of A0A023PZB3 at noise level 4, and the four golden DSM losses, on
//! the CPU (burn flex) and on wgpu (lavapipe Vulkan on CI).
#![cfg(not(target_family = "wasm"))]

mod common;

use common::{golden_loss_rows, npy, reference, rel_err, transpose};
use foldspace::compute::{Compute, read_f32};
use foldspace::embed::Embedder;
use foldspace::loss::{DsmExample, dsm_loss, perturb};
use foldspace::model::NormMode;
use foldspace::structure::{ReadOptions, read_structure};
use foldspace::weights::{WeightMap, WeightsError, expected_keys, load_model};

const TOL: f64 = 1e-4;
const LEVEL: usize = 4;

fn wgpu() -> Compute {
    Compute::wgpu().unwrap_or_else(|e| {
        panic!("{e}: the wgpu tests need a Vulkan driver (on CI: Mesa's lavapipe, package mesa-vulkan-drivers)")
    })
}

fn golden_chain() -> foldspace::structure::Chain {
    let bytes = std::fs::read(reference("A0A023PZB3.pdb")).expect("A0A023PZB3.pdb");
    let parsed =
        read_structure(&bytes, Some("A0A023PZB3.pdb"), &ReadOptions::default()).expect("parse");
    parsed.structure.chain("A").expect("chain A").clone()
}

fn meta() -> serde_json::Value {
    let text =
        std::fs::read_to_string(reference("golden/A0A023PZB3/meta.json")).expect("meta.json");
    serde_json::from_str(&text).expect("meta.json is JSON")
}

fn parity(compute: Compute) {
    let chain = golden_chain();
    let meta = meta();
    assert_eq!(chain.sequence, meta["seq"].as_str().expect("seq"));
    assert_eq!(meta["noise_idx"], LEVEL);
    let l = chain.len();
    let (_, ca) = npy(reference("golden/A0A023PZB3/ca_coords.npy"));
    let ours: Vec<f32> = chain.ca.iter().flatten().copied().collect();
    assert!(rel_err(&ours, &ca) < 1e-7, "C-alpha coordinates differ");

    let embedder =
        Embedder::from_file(&reference("model_trgt_opt.pth"), compute).expect("load .pth");
    assert_eq!(
        embedder.sigmas()[LEVEL],
        meta["noise_std"].as_f64().expect("sigma") as f32
    );
    let (inputs, out) =
        pollster::block_on(embedder.forward(&chain.ca, &chain.sequence, LEVEL)).expect("forward");
    let check = |name: &str, ours: Vec<f32>| {
        let (shape, golden) = npy(reference(&format!("golden/A0A023PZB3/{name}.npy")));
        assert_eq!(ours.len(), golden.len(), "{name}: shape {shape:?}");
        let e = rel_err(&ours, &golden);
        eprintln!(
            "{} {name}: relative error {e:.3e}",
            embedder.compute.describe()
        );
        assert!(e < TOL, "{name}: relative error {e:.3e} above {TOL:e}");
    };
    let read = |t| pollster::block_on(read_f32::<4>(t)).expect("read");
    check("inputs", read(inputs));
    check("conv_out", read(out.score));
    check("encoder_feat", read(out.features));

    let emb = pollster::block_on(embedder.embed(&chain, LEVEL)).expect("embed");
    let c = emb.channels;
    check("residue_level_feat", transpose(&emb.residue, l, c));
    check("protein_level_feat", emb.protein.clone());
    // The pair embedding is the encoder features, channel-last.
    let (_, enc) = npy(reference("golden/A0A023PZB3/encoder_feat.npy"));
    assert!(rel_err(&transpose(&emb.pair, l * l, c), &enc) < TOL);
    assert_eq!(emb.score.len(), l * l);
    assert_eq!(emb.gradient.len(), l * 3);
    assert!(emb.gradient.iter().all(|v| v.is_finite()));
}

#[test]
fn cpu_reproduces_published_features() {
    parity(Compute::cpu());
}

#[test]
fn wgpu_reproduces_published_features() {
    parity(wgpu());
}

/// Largest relative error accepted for each golden loss case, on the CPU and on wgpu.
///
/// The issue asks for 1e-5. That holds on both backends for the full maps and on the CPU for
/// the evaluation-mode crop. The 32×32 crops are ill-conditioned: recomputing them in float64
/// (NumPy, from the same weights and inputs) puts the published float32 score map 9e-4 (train
/// mode) and 1.4e-4 (eval) away from the exact one, and the golden train-mode loss 6.6e-6 from
/// the exact loss; ours is 9.7e-6 from it on the other side, so two correct float32
/// implementations differ by ~2e-5 there. lavapipe's GPU arithmetic (exp and square roots are
/// not correctly rounded on GPUs) moves the train-mode crop by 2e-4. BENCHMARKS.md has the
/// measured values.
fn loss_tolerance(case: &str, gpu: bool) -> f64 {
    match (case, gpu) {
        ("full_eval" | "full_train", _) => 1e-5,
        ("crop32_r10_c70_eval", false) => 1e-5,
        ("crop32_r10_c70_eval", true) => 3e-5,
        ("crop32_r10_c70_train", false) => 3e-5,
        ("crop32_r10_c70_train", true) => 5e-4,
        _ => panic!("unknown golden case {case}"),
    }
}

fn losses(compute: Compute) {
    let text =
        std::fs::read_to_string(reference("golden/loss_A0A023PZB3/meta.json")).expect("meta");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("json");
    let level = meta["noise_idx"].as_u64().expect("level") as usize;
    let (x, z, x_tilde) = (
        golden_loss_rows("X"),
        golden_loss_rows("Z"),
        golden_loss_rows("X_tilde"),
    );
    let chain = golden_chain();
    let weights = std::fs::read(reference("model_trgt_opt.safetensors")).expect("safetensors");
    let embedder = Embedder::from_bytes(&weights, compute).expect("load safetensors");
    let gpu = embedder.compute.is_gpu();
    let sigma = embedder.sigmas()[level];
    assert_eq!(
        sigma as f64,
        meta["noise_std"].as_f64().expect("sigma") as f32 as f64
    );
    assert_eq!(
        perturb(&x, &z, sigma),
        x_tilde,
        "the perturbation differs from the golden X_tilde"
    );
    let examples = meta["examples"].as_object().expect("examples");
    assert_eq!(examples.len(), 4);
    let mut failures = Vec::new();
    for (name, case) in examples {
        // A fresh network per case: train-mode cases update the running statistics, which the
        // eval-mode cases must read as the checkpoint has them.
        let embedder =
            Embedder::from_bytes(&weights, embedder.compute.clone()).expect("load safetensors");
        let mut example = DsmExample::full(&chain.sequence, x.clone(), x_tilde.clone(), level);
        example.row_start = case["row_beg"].as_u64().expect("row") as usize;
        example.col_start = case["col_beg"].as_u64().expect("col") as usize;
        example.crop = case["crop"].as_u64().expect("crop") as usize;
        let mode = match case["bn_mode"].as_str() {
            Some("train") => NormMode::Train,
            Some("eval") => NormMode::Eval,
            other => panic!("unknown bn_mode {other:?}"),
        };
        let out = pollster::block_on(dsm_loss(
            &embedder.model,
            &embedder.compute,
            embedder.sigmas(),
            &[example],
            mode,
        ))
        .expect("loss");
        let loss = pollster::block_on(read_f32(out.loss)).expect("read")[0] as f64;
        let golden = case["loss_f32"].as_f64().expect("loss");
        let e = (loss - golden).abs() / golden;
        let (_, map) = npy(reference(&format!(
            "golden/loss_A0A023PZB3/{name}_pred_map.npy"
        )));
        let map_err = rel_err(
            &pollster::block_on(read_f32(out.score)).expect("read"),
            &map,
        );
        let (_, pred) = npy(reference(&format!(
            "golden/loss_A0A023PZB3/{name}_pred_grad.npy"
        )));
        let grad_err = rel_err(
            &pollster::block_on(read_f32(out.predicted)).expect("read"),
            &pred,
        );
        let (_, truth) = npy(reference(&format!(
            "golden/loss_A0A023PZB3/{name}_true_grad.npy"
        )));
        let truth_err = rel_err(
            &pollster::block_on(read_f32(out.truth)).expect("read"),
            &truth,
        );
        eprintln!(
            "{} {name}: loss {loss} (golden {golden}, relative {e:.2e}); score map {map_err:.2e}, \
             predicted gradient {grad_err:.2e}, true gradient {truth_err:.2e}",
            embedder.compute.describe()
        );
        // The score map and gradients carry the float32 noise of the crops (see above).
        if e > loss_tolerance(name, gpu) || map_err > 5e-3 || grad_err > 2e-3 || truth_err > 1e-6 {
            failures.push(format!(
                "{name}: loss {e:.2e}, map {map_err:.2e}, gradient {grad_err:.2e}"
            ));
        }
    }
    assert!(failures.is_empty(), "golden losses differ: {failures:?}");
}

#[test]
fn cpu_reproduces_golden_losses() {
    losses(Compute::cpu());
}

#[test]
fn wgpu_reproduces_golden_losses() {
    losses(wgpu());
}

#[test]
fn pth_and_safetensors_hold_the_same_tensors() {
    let (pth, _) = WeightMap::from_file(&reference("model_trgt_opt.pth")).expect("pth");
    let st =
        WeightMap::from_bytes(&std::fs::read(reference("model_trgt_opt.safetensors")).expect("st"))
            .expect("st");
    assert_eq!(pth.tensors.len(), 681);
    assert_eq!(pth.tensors, st.tensors);
    let config = pth.config().expect("config");
    assert_eq!(config, foldspace::model::ScoreNetConfig::reference());
    assert_eq!(expected_keys(&config).len(), 681);
}

#[test]
fn weights_are_checked_key_for_key() {
    let map =
        WeightMap::from_bytes(&std::fs::read(reference("model_trgt_opt.safetensors")).expect("st"))
            .expect("st");
    let config = map.config().expect("config");
    let device = burn::tensor::Device::flex();

    let mut missing = map.clone();
    missing.tensors.remove("blocks_hid.7.conv2.weight");
    match load_model(&missing, &config, &device) {
        Err(WeightsError::Keys {
            missing,
            unexpected,
        }) => {
            assert_eq!(missing, vec!["blocks_hid.7.conv2.weight".to_string()]);
            assert!(unexpected.is_empty());
        }
        other => panic!("expected a missing-key error, got {other:?}"),
    }

    let mut extra = map.clone();
    extra
        .tensors
        .insert("head.weight".into(), map.tensors["conv_out.bias"].clone());
    let err = load_model(&extra, &config, &device).expect_err("extra key");
    assert!(
        matches!(&err, WeightsError::Keys { unexpected, .. } if unexpected == &vec!["head.weight".to_string()])
    );
    assert!(err.to_string().contains("head.weight"));

    let mut reshaped = map.clone();
    if let Some(t) = reshaped.tensors.get_mut("conv_in.bias") {
        t.shape = vec![32, 2];
    }
    assert!(matches!(
        load_model(&reshaped, &config, &device),
        Err(WeightsError::Shape { .. })
    ));

    let mut nan = map.clone();
    if let Some(t) = nan.tensors.get_mut("conv_out.weight") {
        t.values[3] = f32::NAN;
    }
    assert!(matches!(
        load_model(&nan, &config, &device),
        Err(WeightsError::NotFinite(_))
    ));

    assert!(matches!(
        WeightMap::from_bytes(b"not weights at all"),
        Err(WeightsError::Format(_))
    ));
    let pth = std::fs::read(reference("model_trgt_opt.pth")).expect("pth");
    let err = WeightMap::from_bytes(&pth).expect_err("a .pth from bytes is refused with a reason");
    assert!(err.to_string().contains("PyTorch checkpoint"));
}
