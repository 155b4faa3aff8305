//! Parity with the published score model (docs/score-model.md §8): features, score map, encoder
//! features and embeddings of A0A023PZB3 at noise level 4, and the four golden DSM losses, on
//! the CPU (burn flex) and on wgpu (lavapipe Vulkan on CI).
#![cfg(not(target_family = "wasm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use common::{golden_loss_rows, npy, reference, rel_err, transpose};
use foldspace::compute::{Compute, read_f32};
use foldspace::score::embed::Embedder;
use foldspace::score::loss::{DsmExample, dsm_loss, perturb};
use foldspace::score::network::NormMode;
use foldspace::score::weights::{WeightMap, WeightsError, expected_keys, load_model};
use foldspace::structure::{ReadOptions, read_structure};

/// Relative error allowed for the level-4 embedding arrays against the golden float32 ones.
/// By the rule of `loss_tolerance` (tests/numerics/f64_reference.py, case `embed_level4_eval`):
/// conv_out 9.2e-6 (golden vs float64) + 2 × 7.6e-6 (correct float32 runs) = 2.4e-5; the
/// encoder, residue and protein features 2e-6 and less. 1e-4 leaves a factor 4 on the score
/// map for the GPUs' own rounding (lavapipe measured 1.8e-5, BENCHMARKS.md).
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

/// Largest relative error accepted for each golden loss case (against the golden PyTorch float32
/// loss), on the CPU and on wgpu.
///
/// Set by analysis, not by one machine's result: `python3 tests/numerics/f64_reference.py`
/// (raw output in evaluation/numerics/f64_reference.json) recomputes every case in float64 and
/// runs the network in float32 with randomised, legitimate accumulation orders (what differs
/// between correct implementations, CPUs and gemm kernels). The rule: the golden value's own
/// distance to float64, plus twice the largest distance of those float32 runs to float64.
///
/// | case | golden − f64 | f32 runs, max | bound | measured (A: AMD EPYC, gemm AVX2; I2: Intel Xeon, AVX2; I5: Intel Xeon, AVX-512) |
/// |---|---|---|---|---|
/// | full_eval | 3.5e-6 | 3.4e-6 | 1.5e-5 | A 2.6e-6, I5 2.75e-6 |
/// | full_train | 0.6e-6 | 1.0e-5 | 2.5e-5 | A 1.7e-6, I5 1.83e-6 |
/// | crop32_r10_c70_eval | 3.8e-6 | 5.0e-6 | 1.5e-5 | A 3.6e-7, I5 3.56e-7 |
/// | crop32_r10_c70_train | 6.6e-6 | 1.6e-4 | 3.5e-4 | A 2.1e-5, I2 1.34e-4, I5 6.22e-5 |
///
/// (A: BENCHMARKS.md before this analysis; I2: the CI failure that prompted it, burn-flex without
/// its `x86-v4` feature; I5: this build, gemm's AVX-512 kernels, rayon and SIMD on.)
///
/// The train-mode crop is ill-conditioned, not badly computed: one float32 rounding of the
/// first activations, with exact arithmetic after it, moves its loss by 2.8e-5 (batch
/// statistics over 1,024 pixels through 97 normalisations amplify it ~1e4 times), and correct
/// float32 runs scatter by 7e-5 (one standard deviation) around float64. The golden value is
/// a lucky 6.6e-6 from float64. On wgpu, lavapipe's exp and square roots (not correctly
/// rounded on GPUs) add to that: measured 1.2e-5 on the eval crop and 2.1e-4 on the train crop
/// (BENCHMARKS.md); the GPU bounds are the CPU ones or twice the measured value, the larger.
fn loss_tolerance(case: &str, gpu: bool) -> f64 {
    match (case, gpu) {
        ("full_eval", _) => 1.5e-5,
        ("full_train", _) => 2.5e-5,
        ("crop32_r10_c70_eval", false) => 1.5e-5,
        ("crop32_r10_c70_eval", true) => 3e-5,
        ("crop32_r10_c70_train", false) => 3.5e-4,
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
        // The score map and gradients carry the float32 noise of the crops. By the rule above,
        // on the train crop: golden map 9.0e-4 from float64 + 2 x 1.06e-3 = 3.0e-3 (bound
        // 5e-3); gradient 5.3e-4 + 2 x 5.8e-4 = 1.7e-3 (bound 2e-3). The true gradient is the
        // same float32 arithmetic on the same inputs: 1e-6.
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
    assert_eq!(
        config,
        foldspace::score::network::ScoreNetConfig::reference()
    );
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

/// The low-noise score map of a protein outside the reference set: wgpu (lavapipe on CI) must
/// agree with the CPU. At level 59 (σ = 0.011 Å) the published network amplifies an absolute
/// error of one ulp of 1 in its ELUs near zero to ~2e-4 of the score map
/// (tests/numerics/outside_protein.py). With Kahan's `expm1` (which needs `exp` and `ln` to
/// round consistently, as GPU approximations do not) lavapipe's map was 1.6e-4 to 2.5e-4 from
/// float64 on four example chains, where the CPU was 3e-6 to 7e-6; with the series form of
/// `foldspace::score::network::elu` both are 3e-6 to 9e-6 (float32's own spread: up to 1e-5;
/// evaluation/numerics/outside_protein.json). 5e-5 between the two devices keeps a factor 2.5
/// over two float32 results each at most 1e-5 from float64, and fails the old GPU ELU by 3×.
#[test]
fn wgpu_low_noise_score_map_matches_the_cpu() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/examples/1a8o.pdb");
    let bytes = std::fs::read(&path).expect("assets/examples/1a8o.pdb");
    let parsed = read_structure(&bytes, Some("1a8o.pdb"), &ReadOptions::default()).expect("parse");
    let chain = parsed.structure.chain("A").expect("chain A").clone();
    let level = 59;
    let maps: Vec<Vec<f32>> = [Compute::cpu(), wgpu()]
        .into_iter()
        .map(|compute| {
            let embedder =
                Embedder::from_file(&reference("model_trgt_opt.pth"), compute).expect("load .pth");
            pollster::block_on(embedder.embed(&chain, level))
                .expect("embed")
                .score
        })
        .collect();
    let err = rel_err(&maps[1], &maps[0]);
    println!("1a8o chain A, level {level}: wgpu score map {err:.2e} from the CPU's");
    assert!(
        err < 5e-5,
        "wgpu score map {err:.2e} from the CPU's (bound 5e-5)"
    );
}
