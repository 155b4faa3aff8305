//! Training and evaluation: an optimiser step lowers the loss on its batch, autodiff gradients
//! agree with finite differences (the chain-rule coordinate gradient and the parameters), the
//! model ↔ weight-map round trip is exact, and the evaluation path reproduces the golden losses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why
#![cfg(not(target_family = "wasm"))]

mod common;

use common::{golden_loss_rows, reference};
use foldspace::compute::{Compute, read_f32};
use foldspace::score::data::{LevelSampling, TrainChain, training_batch};
use foldspace::score::embed::recover_gradients;
use foldspace::score::loss::{DsmExample, dsm_loss, dsm_loss_with, network_inputs};
use foldspace::score::network::{NormMode, Numerics, ScoreNetConfig};
use foldspace::score::training::{
    EvalItem, batch_gradients, evaluate_items, recalibrate_norms, report, shard_parts, train_step,
};
use foldspace::score::weights::{WeightMap, load_model, weight_map};
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
            let noisy = foldspace::score::loss::perturb(&ca, &z, sigmas[level]);
            let mut e = DsmExample::full(&seq, ca.clone(), noisy, level);
            e.crop = crop;
            e.row_start = k % (ca.len() - crop + 1);
            e.col_start = (3 * k + 2) % (ca.len() - crop + 1);
            e
        })
        .collect()
}

/// A tiny network as training has made it: `conv_out` is set to small fixed values (a fresh
/// network's is zero, which would leave every other parameter without a gradient).
fn fresh_model(compute: &Compute) -> (foldspace::score::network::ScoreNet, WeightMap) {
    let config = tiny();
    // A fixed initialisation: the tests must not depend on a lucky draw.
    compute.device.seed(7);
    let net = config.init(&compute.device);
    let mut map = block_on(weight_map(&net, &config, 0)).expect("weights");
    for key in ["conv_out.weight", "conv_out.bias"] {
        let t = map.tensors.get_mut(key).expect("conv_out");
        for (k, v) in t.values.iter_mut().enumerate() {
            *v = ((k * 29 % 17) as f32 - 8.0) * 2e-4;
        }
    }
    let model = load_model(&map, &config, &compute.device).expect("load");
    (model, map)
}

#[test]
fn weight_map_round_trip_is_exact() {
    let compute = Compute::cpu();
    let (model, map) = fresh_model(&compute);
    let again = block_on(weight_map(&model, &tiny(), 0)).expect("weights");
    assert_eq!(map, again);
    foldspace::score::weights::validate(&map, &tiny()).expect("every key present");
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
    let (model, step) = block_on(train_step(
        model, &mut optim, &compute, &sigmas, &examples, 1e-4, None, 1,
    ))
    .expect("step");
    let before = step.loss;
    let out = block_on(dsm_loss_with(
        &model,
        &compute,
        &sigmas,
        &examples,
        NormMode::Train,
        Numerics::Fast,
    ))
    .expect("loss");
    let after = block_on(read_f32(out.loss)).expect("read")[0];
    eprintln!(
        "loss before {before}, after one step {after} (gradient norm {})",
        step.grad_norm
    );
    // Adam's first step moves every parameter by about the rate against its gradient's sign,
    // so to first order the loss falls by rate·‖g‖₁ ≥ rate·‖g‖₂: require a quarter of the
    // smaller figure, far above the float32 noise of the loss (~1e-6 relative), on any CPU.
    let expected = 1e-4 * f64::from(step.grad_norm);
    let drop = f64::from(before) - f64::from(after);
    eprintln!("drop {drop:.3e}, first-order lower bound {expected:.3e}");
    assert!(
        before.is_finite() && drop > 0.25 * expected,
        "loss {before} -> {after} (drop {drop:.3e}, expected at least {:.3e})",
        0.25 * expected
    );
    assert!(step.grad_norm.is_finite() && step.grad_norm > 0.0 && !step.clipped);
}

/// A data-parallel step's gradient is the example-weighted mean of its shards' gradients, each
/// shard with its own batch statistics, computed here one shard after the other on this thread.
#[test]
fn sharded_gradients_average_the_shards() {
    let compute = Compute::cpu().autodiff();
    let (model, _) = fresh_model(&compute);
    let sigmas = tiny().sigmas();
    let examples = batch(&[3, 17, 29, 44, 52, 60], 11);
    let (loss, grads) = block_on(batch_gradients(
        &model,
        &compute,
        &sigmas,
        &examples,
        2,
        Numerics::Fast,
    ))
    .expect("sharded");
    let after_sharded = block_on(weight_map(&model, &tiny(), 1)).expect("weights");
    let mut want_loss = 0.0;
    let mut parts = Vec::new();
    for (k, part) in shard_parts(&examples, 2).iter().enumerate() {
        let mode = if k == 0 {
            NormMode::Train
        } else {
            NormMode::Batch
        };
        let out = block_on(dsm_loss_with(
            &model,
            &compute,
            &sigmas,
            part,
            mode,
            Numerics::Fast,
        ))
        .expect("loss");
        want_loss += f64::from(block_on(read_f32(out.loss.clone())).expect("read")[0]) / 2.0;
        parts.push(GradientsParams::from_grads(out.loss.backward(), &model));
    }
    assert!(
        (f64::from(loss) - want_loss).abs() <= 1e-6 * want_loss,
        "{loss} vs {want_loss}"
    );
    // The running statistics moved exactly as one training-mode pass over shard 0 moves them
    // (burn keeps them per thread: shard 0 runs on this thread, so they are folded in here).
    let (_, start) = fresh_model(&compute);
    let key = "blocks_hid.0.norm1.norm.running_mean";
    let single = load_model(&start, &tiny(), &compute.device).expect("load");
    block_on(dsm_loss_with(
        &single,
        &compute,
        &sigmas,
        &shard_parts(&examples, 2)[0],
        NormMode::Train,
        Numerics::Fast,
    ))
    .expect("loss");
    let after_single = block_on(weight_map(&single, &tiny(), 1)).expect("weights");
    assert_ne!(
        start.tensors[key], after_sharded.tensors[key],
        "not updated"
    );
    for (a, b) in after_sharded.tensors[key]
        .values
        .iter()
        .zip(&after_single.tensors[key].values)
    {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let read = |g: &GradientsParams, id, len: usize| -> Vec<f32> {
        let t: Tensor<1> = g.get::<4>(id).expect("gradient").reshape([len]);
        block_on(read_f32(t)).expect("read")
    };
    for (id, len) in [
        (model.conv_out.weight.id, 8 * 9),
        (model.blocks_hid[1].conv2.weight.id, 4 * 4 * 9),
        (model.conv_in.weight.id, 8 * 149 * 9),
    ] {
        let got = read(&grads, id, len);
        let (a, b) = (read(&parts[0], id, len), read(&parts[1], id, len));
        let scale = a.iter().chain(&b).fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "no gradient");
        for i in 0..len {
            let want = 0.5 * (a[i] + b[i]);
            assert!(
                (got[i] - want).abs() <= 1e-5 * scale,
                "element {i}: {} vs {want}",
                got[i]
            );
        }
    }
}

/// Clipped steps at warm-up learning rates never raise the loss on their batch: five batches
/// of other levels and crops, each from the same network, with the gradient clipped to a
/// tenth of its norm (so clipping really acts) and rates of the recipe's first warm-up steps.
#[test]
fn clipped_steps_at_warm_up_rates_never_raise_the_loss() {
    let compute = Compute::cpu().autodiff();
    let sigmas = tiny().sigmas();
    for (k, rate) in [2e-6, 4e-6, 1e-5, 2e-5, 4e-5].into_iter().enumerate() {
        let (model, _) = fresh_model(&compute);
        let levels: Vec<usize> = (0..4).map(|i| (i * 15 + k * 4) % 61).collect();
        let examples = batch(&levels, 10 + k);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        // The unclipped norm of this batch, then the clipped step.
        let (_, probe) = block_on(train_step(
            model.clone(),
            &mut AdamConfig::new().init(),
            &compute,
            &sigmas,
            &examples,
            0.0,
            None,
            1,
        ))
        .expect("probe");
        let max = probe.grad_norm / 10.0;
        let (model, step) = block_on(train_step(
            model,
            &mut optim,
            &compute,
            &sigmas,
            &examples,
            rate,
            Some(max),
            1,
        ))
        .expect("step");
        assert!(
            step.clipped,
            "batch {k}: norm {} not above {max}",
            step.grad_norm
        );
        assert!((step.grad_norm - probe.grad_norm).abs() <= 1e-4 * probe.grad_norm);
        let out = block_on(dsm_loss_with(
            &model,
            &compute,
            &sigmas,
            &examples,
            NormMode::Train,
            Numerics::Fast,
        ))
        .expect("loss");
        let after = block_on(read_f32(out.loss)).expect("read")[0];
        // As in step_lowers_loss: at least a quarter of the first-order drop rate·‖g‖₂ (the
        // clipped step of Adam's first update has the same size as an unclipped one).
        let drop = f64::from(step.loss) - f64::from(after);
        let expected = rate * f64::from(probe.grad_norm);
        eprintln!(
            "batch {k}: rate {rate:e}, loss {} -> {after} (drop {drop:.3e}, first order {expected:.3e})",
            step.loss
        );
        assert!(
            drop > 0.25 * expected,
            "batch {k}: loss {} -> {after} (drop {drop:.3e})",
            step.loss
        );
    }
}

/// A fresh network predicts the zero score: its DSM loss is exactly the mean squared norm of
/// the noise (E = 3 for Gaussian noise), whatever the batch.
#[test]
fn a_fresh_network_starts_at_the_zero_score() {
    let compute = Compute::cpu();
    let config = tiny().with_output_scale(0.01);
    compute.device.seed(11);
    let model = config.init(&compute.device);
    let sigmas = config.sigmas();
    let chains: Vec<TrainChain> = [40, 55, 70]
        .iter()
        .map(|&n| {
            let (sequence, ca) = chain(n);
            TrainChain {
                name: format!("helix{n}"),
                sequence,
                ca,
            }
        })
        .collect();
    let examples = training_batch(
        &chains,
        &sigmas,
        5,
        1,
        32,
        3,
        Some(31),
        LevelSampling::Stratified,
    );
    let out = block_on(dsm_loss(
        &model,
        &compute,
        &sigmas,
        &examples,
        NormMode::Train,
    ))
    .expect("loss");
    let loss = block_on(read_f32(out.loss)).expect("read")[0] as f64;
    assert!(
        block_on(read_f32(out.score))
            .expect("read")
            .iter()
            .all(|&v| v == 0.0),
        "a fresh network's score map is not zero"
    );
    // The noise itself: (X − X̃)/σ of the rows and columns of every crop.
    let mut direct = 0.0;
    for e in &examples {
        let sigma = f64::from(sigmas[e.level]);
        let mut sum = 0.0;
        for start in [e.row_start, e.col_start] {
            for i in start..start + e.crop {
                for k in 0..3 {
                    sum += ((f64::from(e.clean[i][k]) - f64::from(e.noisy[i][k])) / sigma).powi(2);
                }
            }
        }
        direct += sum / (2 * e.crop) as f64 / examples.len() as f64;
    }
    eprintln!("fresh network: loss {loss}, squared noise {direct}");
    assert!((loss - direct).abs() < 1e-4 * direct, "{loss} vs {direct}");
    assert!((loss - 3.0).abs() < 0.3, "first loss {loss} is not about 3");
}

/// Recalibrated running statistics are the plain average, over the groups training normalised
/// over (each batch's shards), of each group's mean and unbiased variance: checked against a
/// direct computation of the first norm's statistics (its input is `conv_in` of the network
/// inputs) in f64, and the parameters are unchanged.
#[test]
fn recalibrated_statistics_equal_a_direct_computation() {
    let compute = Compute::cpu();
    let (_, map) = fresh_model(&compute);
    let config = tiny();
    let sigmas = config.sigmas();
    let batches: Vec<Vec<DsmExample>> = (0..3)
        .map(|k| batch(&[k * 7, 20 + k, 40 + 2 * k, 60 - k], 10 + k))
        .collect();
    // Two shards: each batch of 4 normalised as two groups of 2 (examples 0, 2 and 1, 3).
    let recalibrated = block_on(recalibrate_norms(
        &map, &config, &compute, &sigmas, &batches, 2,
    ))
    .expect("recalibrate");
    let groups: Vec<Vec<DsmExample>> = batches.iter().flat_map(|b| shard_parts(b, 2)).collect();
    assert_eq!(groups.len(), 6);
    assert_eq!(
        groups[0],
        vec![batches[0][0].clone(), batches[0][2].clone()]
    );
    let model = load_model(&map, &config, &compute.device).expect("load");
    let c = config.hidden_channels;
    let (mut mean, mut var) = (vec![0f64; c], vec![0f64; c]);
    for b in &groups {
        let (inputs, _) = block_on(network_inputs(&compute, &sigmas, b)).expect("inputs");
        let h = model.conv_in.forward(inputs);
        let [nb, _, hh, ww] = h.dims();
        let values = block_on(read_f32(h)).expect("read");
        let per = hh * ww;
        for ch in 0..c {
            let xs: Vec<f64> = (0..nb)
                .flat_map(|i| {
                    let start = (i * c + ch) * per;
                    values[start..start + per].iter().map(|&v| f64::from(v))
                })
                .collect();
            let n = xs.len() as f64;
            let m = xs.iter().sum::<f64>() / n;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
            mean[ch] += m / groups.len() as f64;
            var[ch] += v / groups.len() as f64;
        }
    }
    // Bound: the network's statistics are float32 reductions over 400–576 values per channel
    // and batch (compensated mean, two-pass variance): a few 1e-7 relative, worst ~3e-6.
    let got = |key: &str| recalibrated.tensors[key].values.clone();
    let (rm, rv) = (
        got("blocks_hid.0.norm1.norm.running_mean"),
        got("blocks_hid.0.norm1.norm.running_var"),
    );
    for ch in 0..c {
        assert!(
            (f64::from(rm[ch]) - mean[ch]).abs() <= 1e-5 * (1.0 + mean[ch].abs()),
            "channel {ch}: mean {} vs {}",
            rm[ch],
            mean[ch]
        );
        assert!(
            (f64::from(rv[ch]) - var[ch]).abs() <= 1e-5 * var[ch],
            "channel {ch}: variance {} vs {}",
            rv[ch],
            var[ch]
        );
    }
    // Every norm got new statistics; no parameter moved.
    for (key, t) in &map.tensors {
        if foldspace::score::training::is_parameter(key) {
            assert_eq!(t, &recalibrated.tensors[key], "{key} changed");
        } else if key.ends_with("running_var") {
            assert_ne!(t, &recalibrated.tensors[key], "{key} was not recalibrated");
        }
    }
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
    // The loss of the perturbed network, summed in f64 from the read-back predicted and true
    // gradients: the f32 loss's own rounding (a few ulp of ~3, i.e. ~1e-6, over 2h) would
    // otherwise be a CPU-dependent noise term of 1e-5..1e-4 in the difference quotient.
    let loss_with = |key: &str, index: usize, delta: f32| -> f64 {
        let mut m = map.clone();
        let t = m.tensors.get_mut(key).expect("key");
        t.values[index] += delta;
        let net = load_model(&m, &tiny(), &cpu.device).expect("load");
        let out = block_on(dsm_loss(&net, &cpu, &sigmas, &examples, NormMode::Eval)).expect("loss");
        let predicted = block_on(read_f32(out.predicted)).expect("read");
        let truth = block_on(read_f32(out.truth)).expect("read");
        let per_example = predicted.len() / examples.len();
        let mut loss = 0.0;
        for (k, e) in examples.iter().enumerate() {
            let sigma = f64::from(sigmas[e.level]);
            let rows = &predicted[k * per_example..(k + 1) * per_example];
            let want = &truth[k * per_example..(k + 1) * per_example];
            let sum: f64 = rows
                .iter()
                .zip(want)
                .map(|(&p, &t)| ((f64::from(p) - f64::from(t)) * sigma).powi(2))
                .sum();
            loss += sum / (per_example / 3) as f64 / examples.len() as f64;
        }
        loss
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
        // The eval-mode bounds of reference.rs `loss_tolerance` (float64 analysis): 1.5e-5.
        assert!(
            (ours - golden).abs() / golden < 1.5e-5,
            "{case}: {ours} vs {golden}"
        );
        assert_eq!(rep.bands.len(), 1);
        assert_eq!(rep.mean, ours);
    }
}
