//! Training and evaluation: an optimiser step lowers the loss on its batch, autodiff gradients
//! agree with finite differences (the chain-rule coordinate gradient and the parameters), the
//! model ↔ weight-map round trip is exact, and the evaluation path reproduces the golden losses.

#![cfg(not(target_family = "wasm"))]

mod common;

use common::{golden_loss_rows, reference};
use foldspace::compute::{Compute, read_f32};
use foldspace::embed::recover_gradients;
use foldspace::loss::{DsmExample, dsm_loss};
use foldspace::model::{NormMode, ScoreNetConfig};
use foldspace::training::{EvalItem, evaluate_items, report, train_step};
use foldspace::weights::{WeightMap, load_model, weight_map};
use pollster::block_on;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

fn tiny() -> ScoreNetConfig {
    ScoreNetConfig::new()
        .with_blocks(2)
        .with_hidden_channels(8)
        .with_bottleneck_channels(4)
}

/// A helix-like chain of `n` residues with a repeating sequence.
fn chain(n: usize) -> (String, Vec<[f32; 3]>) {
    let aa: Vec<char> = "ACDEFGHIKLMNPQRSTVWY".chars().collect();
    let seq = (0..n).map(|i| aa[(i * 7) % 20]).collect();
    let ca = (0..n)
        .map(|i| {
            let t = i as f32 * 100f32.to_radians();
            [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f32]
        })
        .collect();
    (seq, ca)
}

fn batch(levels: &[usize], crop: usize) -> Vec<DsmExample> {
    let (seq, ca) = chain(24);
    let sigmas = tiny().sigmas();
    levels
        .iter()
        .enumerate()
        .map(|(k, &level)| {
            let z: Vec<[f32; 3]> = (0..ca.len())
                .map(|i| {
                    let f = ((i * 31 + k * 17) % 13) as f32 / 13.0 - 0.5;
                    [f, -f * 0.7, (f * 3.0).sin()]
                })
                .collect();
            let noisy = foldspace::loss::perturb(&ca, &z, sigmas[level]);
            let mut e = DsmExample::full(&seq, ca.clone(), noisy, level);
            e.crop = crop;
            e.row_start = k % (ca.len() - crop + 1);
            e.col_start = (3 * k + 2) % (ca.len() - crop + 1);
            e
        })
        .collect()
}

fn fresh_model(compute: &Compute) -> (foldspace::model::ScoreNet, WeightMap) {
    let config = tiny();
    // A fixed initialisation: the tests must not depend on a lucky draw.
    compute.device.seed(7);
    let net = config.init(&compute.device);
    let map = block_on(weight_map(&net, &config, 0)).expect("weights");
    let model = load_model(&map, &config, &compute.device).expect("load");
    (model, map)
}

#[test]
fn weight_map_round_trip_is_exact() {
    let compute = Compute::cpu();
    let (model, map) = fresh_model(&compute);
    let again = block_on(weight_map(&model, &tiny(), 0)).expect("weights");
    assert_eq!(map, again);
    foldspace::weights::validate(&map, &tiny()).expect("every key present");
}

#[test]
fn one_step_lowers_the_loss_on_its_batch() {
    step_lowers_loss(Compute::cpu().autodiff());
}

/// The same step on wgpu (lavapipe's Vulkan on CI; a GPU where there is one).
#[test]
fn wgpu_step_lowers_the_loss_on_its_batch() {
    let compute = Compute::wgpu()
        .expect("no wgpu adapter: install Mesa's Vulkan drivers (lavapipe), as .ci/run does");
    step_lowers_loss(compute.autodiff());
}

fn step_lowers_loss(compute: Compute) {
    let (model, _) = fresh_model(&compute);
    let sigmas = tiny().sigmas();
    let examples = batch(&[5, 20, 35, 50], 12);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let (model, before) = block_on(train_step(
        model, &mut optim, &compute, &sigmas, &examples, 1e-4,
    ))
    .expect("step");
    let out = block_on(dsm_loss(
        &model,
        &compute,
        &sigmas,
        &examples,
        NormMode::Train,
    ))
    .expect("loss");
    let after = block_on(read_f32(out.loss)).expect("read")[0];
    eprintln!("loss before {before}, after one step {after}");
    assert!(
        before.is_finite() && after < before,
        "loss {before} -> {after}"
    );
}

/// The chain-rule gradient of §5 is the gradient of E(X) = Σ_ij G_ij ‖x_i − y_j‖² (G fixed):
/// compare with central differences in f64.
#[test]
fn chain_rule_gradient_matches_finite_differences() {
    let device = Compute::cpu().device;
    let (h, w) = (5, 4);
    let g: Vec<f32> = (0..h * w)
        .map(|k| ((k * 37 % 11) as f32 - 5.0) / 7.0)
        .collect();
    let xp: Vec<f32> = (0..h * 3)
        .map(|k| ((k * 13 % 7) as f32 - 3.0) * 1.3)
        .collect();
    let xs: Vec<f32> = (0..w * 3)
        .map(|k| ((k * 5 % 9) as f32 - 4.0) * 0.9)
        .collect();
    let t = |v: &Vec<f32>, d: [usize; 3]| {
        Tensor::<3>::from_data(TensorData::new(v.clone(), d), &device)
    };
    let (gp, gs) = recover_gradients(t(&g, [1, h, w]), t(&xp, [1, h, 3]), t(&xs, [1, w, 3]));
    let gp = block_on(read_f32(gp)).expect("read");
    let gs = block_on(read_f32(gs)).expect("read");
    let energy = |xp: &[f64], xs: &[f64]| -> f64 {
        let mut e = 0.0;
        for i in 0..h {
            for j in 0..w {
                let d2: f64 = (0..3)
                    .map(|k| (xp[i * 3 + k] - xs[j * 3 + k]).powi(2))
                    .sum();
                e += f64::from(g[i * w + j]) * d2;
            }
        }
        e
    };
    let xp64: Vec<f64> = xp.iter().map(|&v| f64::from(v)).collect();
    let xs64: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();
    let eps = 1e-4;
    for k in 0..h * 3 {
        let (mut a, mut b) = (xp64.clone(), xp64.clone());
        a[k] += eps;
        b[k] -= eps;
        let fd = (energy(&a, &xs64) - energy(&b, &xs64)) / (2.0 * eps);
        assert!(
            (fd - f64::from(gp[k])).abs() < 1e-4 * (1.0 + fd.abs()),
            "row {k}: {fd} vs {}",
            gp[k]
        );
    }
    for k in 0..w * 3 {
        let (mut a, mut b) = (xs64.clone(), xs64.clone());
        a[k] += eps;
        b[k] -= eps;
        let fd = (energy(&xp64, &a) - energy(&xp64, &b)) / (2.0 * eps);
        assert!(
            (fd - f64::from(gs[k])).abs() < 1e-4 * (1.0 + fd.abs()),
            "col {k}: {fd} vs {}",
            gs[k]
        );
    }
}

/// Autodiff through the network, the chain rule and the loss agrees with central differences
/// of the loss for a few parameters (eval mode: the loss is then a plain function of them).
#[test]
fn parameter_gradients_match_finite_differences() {
    let ad = Compute::cpu().autodiff();
    let cpu = Compute::cpu();
    let (model, map) = fresh_model(&ad);
    let sigmas = tiny().sigmas();
    let examples = batch(&[10, 30], 10);
    let out = block_on(dsm_loss(&model, &ad, &sigmas, &examples, NormMode::Eval)).expect("loss");
    let grads = out.loss.backward();
    let grads = GradientsParams::from_grads(grads, &model);
    let grad_of = |id, len: usize| -> Vec<f32> {
        let t: Tensor<1> = if len == 1 {
            grads.get::<1>(id)
        } else {
            grads.get::<4>(id).map(|t| t.reshape([len]))
        }
        .expect("gradient");
        block_on(read_f32(t)).expect("read")
    };
    let loss_with = |key: &str, index: usize, delta: f32| -> f64 {
        let mut m = map.clone();
        let t = m.tensors.get_mut(key).expect("key");
        t.values[index] += delta;
        let net = load_model(&m, &tiny(), &cpu.device).expect("load");
        let out = block_on(dsm_loss(&net, &cpu, &sigmas, &examples, NormMode::Eval)).expect("loss");
        f64::from(block_on(read_f32(out.loss)).expect("read")[0])
    };
    let cases = [
        (
            "conv_out.bias",
            model.conv_out.bias.as_ref().expect("bias").id,
            1,
            0,
        ),
        ("conv_out.weight", model.conv_out.weight.id, 8 * 9, 13),
        (
            "conv_in.weight",
            model.conv_in.weight.id,
            8 * 149 * 9,
            149 * 9 + 95 * 9 + 4,
        ),
        (
            "blocks_hid.1.conv2.weight",
            model.blocks_hid[1].conv2.weight.id,
            4 * 4 * 9,
            20,
        ),
    ];
    for (key, id, len, index) in cases {
        let analytic = f64::from(grad_of(id, len)[index]);
        let h = 1e-2f32;
        let fd = (loss_with(key, index, h) - loss_with(key, index, -h)) / (2.0 * f64::from(h));
        eprintln!("{key}[{index}]: autodiff {analytic:.6e}, finite difference {fd:.6e}");
        assert!(
            (analytic - fd).abs() <= 2e-2 * analytic.abs().max(fd.abs()) + 1e-4,
            "{key}[{index}]: autodiff {analytic} vs finite difference {fd}"
        );
    }
}

/// The evaluation path of `eval-dsm` (eval mode, batched by crop size, per-level report) gives the
/// golden full-map and crop losses of the published model on the golden example.
#[test]
fn evaluation_reproduces_the_golden_losses() {
    let text =
        std::fs::read_to_string(reference("golden/loss_A0A023PZB3/meta.json")).expect("meta");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("json");
    let level = meta["noise_idx"].as_u64().expect("level") as usize;
    let (x, x_tilde) = (golden_loss_rows("X"), golden_loss_rows("X_tilde"));
    let parsed = foldspace::structure::read_structure(
        &std::fs::read(reference("A0A023PZB3.pdb")).expect("pdb"),
        Some("A0A023PZB3.pdb"),
        &Default::default(),
    )
    .expect("parse");
    let seq = parsed.structure.chain("A").expect("chain").sequence.clone();
    let (map, _) = WeightMap::from_file(&reference("model_trgt_opt.pth")).expect("pth");
    let config = map.config().expect("config");
    let compute = Compute::cpu();
    let model = load_model(&map, &config, &compute.device).expect("load");
    let sigmas = config.sigmas();
    for (case, crop, row, col) in [
        ("full_eval", 126, 0, 0),
        ("crop32_r10_c70_eval", 32, 10, 70),
    ] {
        let mut example = DsmExample::full(&seq, x.clone(), x_tilde.clone(), level);
        (example.crop, example.row_start, example.col_start) = (crop, row, col);
        let items = vec![EvalItem { chain: 0, example }];
        let losses =
            block_on(evaluate_items(&model, &compute, &sigmas, &items, 1 << 18)).expect("eval");
        let rep = report(&items, &losses, &sigmas);
        let golden = meta["examples"][case]["loss_f32"].as_f64().expect("golden");
        let ours = rep.levels[&level];
        eprintln!("{case}: {ours} (golden {golden})");
        assert!(
            (ours - golden).abs() / golden < 1e-5,
            "{case}: {ours} vs {golden}"
        );
        assert_eq!(rep.bands.len(), 1);
        assert_eq!(rep.mean, ours);
    }
}
