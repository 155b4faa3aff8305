//! Training and evaluation of the score model (docs/score-model.md §3–§5): one optimiser step on a
//! DSM batch, the exponential moving average of the weights, and the DSM evaluation that
//! `foldspace eval-dsm` and the trainer's validation report (per level and per σ band).
//!
//! The loop around these (data threads, checkpoints, logging) is [`crate::score::run`].

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compute::{Compute, ComputeError, read_f32};
use crate::score::loss::{DsmExample, LossError, dsm_loss, dsm_loss_with};
use crate::score::network::{NormMode, Numerics, ScoreNet, ScoreNetConfig};
use crate::score::weights::{WeightMap, WeightsError, load_model, weight_map};

/// What one optimiser step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The batch loss before the update.
    pub loss: f32,
    /// The global L2 norm of the gradient over every parameter, before clipping.
    pub grad_norm: f32,
    /// Whether the gradient was scaled down to the clipping norm.
    pub clipped: bool,
}

/// One optimiser step: the DSM loss of `examples` in training mode (batch statistics,
/// [`Numerics::Fast`]), its gradient, clipping by the global norm over all parameters when
/// `max_grad_norm` is set (burn's own clipping works tensor by tensor), and the update. Returns
/// the updated network.
///
/// `shards` > 1 splits the batch round-robin into that many parts ([`shard_parts`]) whose
/// forward and backward passes run on their own threads (CPU, native), each with its own batch
/// statistics ("ghost" batch norm over the part), and averages their gradients weighted by their
/// sizes: burn's CPU backend runs most element-wise operations on one core, so this is what uses
/// the others. Only the first shard (on the calling thread) updates the running statistics, so
/// a step is deterministic. 1: the whole batch at once.
///
/// `model` must live on `compute.device`, an autodiff device ([`Compute::autodiff`]).
#[allow(clippy::too_many_arguments)]
pub async fn train_step(
    model: ScoreNet,
    optimizer: &mut ModuleOptimizer,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    learning_rate: f64,
    max_grad_norm: Option<f32>,
    shards: usize,
) -> Result<(ScoreNet, StepReport), LossError> {
    train_step_with(
        model,
        optimizer,
        compute,
        sigmas,
        examples,
        learning_rate,
        max_grad_norm,
        shards,
        Numerics::Fast,
    )
    .await
}

/// [`train_step`] with a choice of arithmetic (`bench-train --numerics exact` measures what
/// [`Numerics::Fast`] saves).
#[allow(clippy::too_many_arguments)]
pub async fn train_step_with(
    model: ScoreNet,
    optimizer: &mut ModuleOptimizer,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    learning_rate: f64,
    max_grad_norm: Option<f32>,
    shards: usize,
    numerics: Numerics,
) -> Result<(ScoreNet, StepReport), LossError> {
    let (loss, mut grads) =
        batch_gradients(&model, compute, sigmas, examples, shards, numerics).await?;
    let grad_norm = global_norm(&model, &grads).await?;
    if !grad_norm.is_finite() {
        return Err(LossError::Batch(format!(
            "the gradient is not finite (norm {grad_norm}, loss {loss}); the step was not taken"
        )));
    }
    let clipped = match max_grad_norm {
        Some(max) if grad_norm > max => {
            grads = scale_gradients(&model, grads, f64::from(max / grad_norm));
            true
        }
        _ => false,
    };
    let model = optimizer.step(learning_rate, model, grads);
    Ok((
        model,
        StepReport {
            loss,
            grad_norm,
            clipped,
        },
    ))
}

/// The training-mode batch loss of `examples` and its gradients with respect to `model`'s
/// parameters, on `shards` threads as [`train_step`] describes (1, or a GPU: in one pass).
pub async fn batch_gradients(
    model: &ScoreNet,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    shards: usize,
    numerics: Numerics,
) -> Result<(f32, GradientsParams), LossError> {
    if shards > 1 && examples.len() >= 2 && !compute.is_gpu() {
        return sharded_gradients(model, compute, sigmas, examples, shards, numerics);
    }
    let out = dsm_loss_with(model, compute, sigmas, examples, NormMode::Train, numerics).await?;
    let loss = read_f32(out.loss.clone()).await?;
    let loss = loss.first().copied().unwrap_or(f32::NAN);
    Ok((
        loss,
        GradientsParams::from_grads(out.loss.backward(), model),
    ))
}

/// The batch loss and gradients of [`train_step`] with `shards` threads (see there).
#[cfg(not(target_family = "wasm"))]
fn sharded_gradients(
    model: &ScoreNet,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    shards: usize,
    numerics: Numerics,
) -> Result<(f32, GradientsParams), LossError> {
    let parts = shard_parts(examples, shards);
    // One shard's loss and gradients, on a fork of the model: the same parameters (and ids) as
    // new autodiff leaves, so each shard has its own graph (burn keeps graphs that share nodes
    // under one mutex, which would run the backward passes one after the other).
    let run = |k: usize, part: &[DsmExample]| -> Result<(f32, usize, GradientsParams), LossError> {
        let net = model.clone().fork(&compute.device);
        let mode = if k == 0 {
            NormMode::Train
        } else {
            NormMode::Batch
        };
        let out = pollster::block_on(dsm_loss_with(&net, compute, sigmas, part, mode, numerics))?;
        let loss = pollster::block_on(read_f32(out.loss.clone()))?;
        let grads = GradientsParams::from_grads(out.loss.backward(), &net);
        Ok((loss.first().copied().unwrap_or(f32::NAN), part.len(), grads))
    };
    let results: Vec<Result<(f32, usize, GradientsParams), LossError>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, part)| s.spawn(move || run(k, part)))
            .collect();
        // Shard 0 on this thread: it updates the running statistics, which burn keeps per
        // thread and folds in when the same thread reads them (a new thread each step would
        // leave every update pending).
        let mut results = vec![run(0, &parts[0])];
        results.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(LossError::Batch("a training thread panicked".into())))
        }));
        results
    });
    let total = examples.len() as f64;
    let mut loss = 0.0;
    let mut sum: Option<GradientsParams> = None;
    for result in results {
        let (part_loss, n, grads) = result?;
        let weight = n as f64 / total;
        loss += f64::from(part_loss) * weight;
        let grads = scale_gradients(model, grads, weight);
        sum = Some(match sum {
            None => grads,
            Some(acc) => add_gradients(model, acc, grads),
        });
    }
    Ok((loss as f32, sum.unwrap_or_default()))
}

/// A batch split into `shards` parts round-robin (example k to part k mod shards), so that
/// each part of a stratified batch still spans the whole noise ladder.
pub fn shard_parts(examples: &[DsmExample], shards: usize) -> Vec<Vec<DsmExample>> {
    let n = shards.clamp(1, examples.len().max(1));
    let mut parts = vec![Vec::new(); n];
    for (k, e) in examples.iter().enumerate() {
        parts[k % n].push(e.clone());
    }
    parts
}

#[cfg(target_family = "wasm")]
fn sharded_gradients(
    _model: &ScoreNet,
    _compute: &Compute,
    _sigmas: &[f32],
    _examples: &[DsmExample],
    _shards: usize,
    _numerics: Numerics,
) -> Result<(f32, GradientsParams), LossError> {
    Err(LossError::Batch(
        "data-parallel steps need threads, which the browser build has not".into(),
    ))
}

/// Adds one set of gradients into another, parameter by parameter.
struct AddGradients {
    acc: GradientsParams,
    other: GradientsParams,
}

impl ModuleVisitor for AddGradients {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let theirs = self.other.remove::<D>(param.id);
        let sum = match (self.acc.remove::<D>(param.id), theirs) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        if let Some(g) = sum {
            self.acc.register(param.id, g);
        }
    }
}

/// The sum of two sets of gradients of `model`'s parameters.
pub fn add_gradients(
    model: &ScoreNet,
    acc: GradientsParams,
    other: GradientsParams,
) -> GradientsParams {
    let mut visitor = AddGradients { acc, other };
    model.visit(&mut visitor);
    visitor.acc
}

/// Sums of squares of every parameter's gradient (one `[1]` tensor each).
struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sums.push(g.powi_scalar(2).sum());
        }
    }
}

/// The global L2 norm of the gradients of `model`'s parameters.
pub async fn global_norm(model: &ScoreNet, grads: &GradientsParams) -> Result<f32, ComputeError> {
    let mut visitor = SquaredNorms {
        grads,
        sums: Vec::new(),
    };
    model.visit(&mut visitor);
    if visitor.sums.is_empty() {
        return Ok(0.0);
    }
    let total = read_f32(Tensor::cat(visitor.sums, 0).sum()).await?;
    Ok(total.first().copied().unwrap_or(f32::NAN).sqrt())
}

/// Multiplies every parameter's gradient by one factor.
struct ScaleGradients {
    grads: GradientsParams,
    factor: f64,
}

impl ModuleVisitor for ScaleGradients {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The gradients times `factor` (global-norm clipping keeps their direction).
pub fn scale_gradients(model: &ScoreNet, grads: GradientsParams, factor: f64) -> GradientsParams {
    let mut visitor = ScaleGradients { grads, factor };
    model.visit(&mut visitor);
    visitor.grads
}

/// The learning rate of 0-based step `t` of a stage of `steps` steps: a linear warm-up from
/// `peak / warmup` to `peak` over the first `warmup` steps, then constant (`floor = None`) or a
/// cosine decay from `peak` to `floor` at the stage's last step.
pub fn scheduled_rate(peak: f64, floor: Option<f64>, warmup: u64, t: u64, steps: u64) -> f64 {
    if t < warmup {
        return peak * (t + 1) as f64 / warmup as f64;
    }
    match floor {
        None => peak,
        Some(floor) => {
            let span = steps.saturating_sub(warmup).saturating_sub(1).max(1) as f64;
            let progress = ((t - warmup) as f64 / span).min(1.0);
            floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Why batch-norm statistics could not be recalibrated.
#[derive(Debug, thiserror::Error)]
pub enum RecalibrateError {
    /// The weights do not fit their configuration.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A batch could not be evaluated.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// The device failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// Nothing to recalibrate on.
    #[error("recalibration needs at least one batch")]
    NoBatch,
}

/// Batch-norm running statistics recalibrated for `weights` (e.g. the weight average, whose
/// parameters no running statistics were ever computed for): train-mode forward passes over
/// `batches`, each split into `shards` groups as training splits it, without gradients; each
/// norm's running mean and variance become the plain average over the groups of the group mean
/// and unbiased group variance (PyTorch's cumulative average, `momentum = None`). The parameters
/// are unchanged; the result holds the new statistics.
pub async fn recalibrate_norms(
    weights: &WeightMap,
    config: &ScoreNetConfig,
    compute: &Compute,
    sigmas: &[f32],
    batches: &[Vec<DsmExample>],
    shards: usize,
) -> Result<WeightMap, RecalibrateError> {
    if batches.is_empty() {
        return Err(RecalibrateError::NoBatch);
    }
    let mut model = load_model(weights, config, &compute.device)?;
    // The groups training normalised over: each batch's shards ([`shard_parts`]).
    let groups: Vec<Vec<DsmExample>> = batches
        .iter()
        .flat_map(|b| shard_parts(b, shards))
        .filter(|g| !g.is_empty())
        .collect();
    for (k, group) in groups.iter().enumerate() {
        // After group k the running value is the mean of the k + 1 group values.
        let momentum = 1.0 / (k + 1) as f64;
        for norm in model.norms_mut() {
            norm.momentum = momentum;
        }
        dsm_loss(&model, compute, sigmas, group, NormMode::Train).await?;
    }
    for norm in model.norms_mut() {
        norm.momentum = 0.1;
    }
    let tracked = weights
        .tensors
        .get("norm_out.norm.num_batches_tracked")
        .and_then(|t| t.values.first())
        .map_or(0, |&v| v as u64);
    let mut map = weight_map(&model, config, tracked).await?;
    map.metadata = weights.metadata.clone();
    Ok(map)
}

/// Exponential moving average of the learned parameters, `θ̄ ← d_t·θ̄ + (1 − d_t)·θ` with the
/// usual warm-up `d_t = min(d, (1 + t)/(10 + t))` at step t (the average of a short run is not
/// dominated by the random initialisation); the batch-norm running statistics are copied from
/// the model (they are not parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Ema {
    /// The decay `d` (0.999 in the reference).
    pub decay: f32,
    /// The averaged weights.
    pub weights: WeightMap,
}

impl Ema {
    /// Start the average at the current weights.
    pub fn new(decay: f32, weights: WeightMap) -> Self {
        Self { decay, weights }
    }

    /// Fold in the model's weights after step `step` (1-based).
    pub fn update(&mut self, current: &WeightMap, step: u64) {
        let t = step as f64;
        let d = (self.decay as f64).min((1.0 + t) / (10.0 + t)) as f32;
        for (key, now) in &current.tensors {
            match self.weights.tensors.get_mut(key) {
                Some(avg) if is_parameter(key) && avg.values.len() == now.values.len() => {
                    for (a, &x) in avg.values.iter_mut().zip(&now.values) {
                        *a = d * *a + (1.0 - d) * x;
                    }
                }
                _ => {
                    self.weights.tensors.insert(key.clone(), now.clone());
                }
            }
        }
        self.weights.metadata = current.metadata.clone();
    }
}

/// Whether a key names a learned parameter (not a batch-norm buffer).
pub fn is_parameter(key: &str) -> bool {
    !key.contains(".norm.running_") && !key.ends_with("num_batches_tracked")
}

/// The σ bands of the reports: high σ ≥ 1 Å, mid 0.1 ≤ σ < 1 Å, low σ < 0.1 Å.
pub fn band(sigma: f32) -> &'static str {
    if sigma >= 1.0 {
        "high"
    } else if sigma >= 0.1 {
        "mid"
    } else {
        "low"
    }
}

/// DSM losses of a set of evaluation examples, aggregated per level and band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DsmReport {
    /// Chains that gave at least one example.
    pub chains: usize,
    /// Mean loss over chains, per noise-level index.
    pub levels: BTreeMap<usize, f64>,
    /// Mean of the per-level losses in each σ band (`high`, `mid`, `low`; absent if no level).
    pub bands: BTreeMap<String, f64>,
    /// Mean of the per-level losses.
    pub mean: f64,
}

/// One evaluation example with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    /// Index of its chain.
    pub chain: usize,
    /// The example (its `level` is the noise level).
    pub example: DsmExample,
}

/// DSM loss of every item in evaluation mode (running statistics), in batches of equal crop size
/// holding at most `max_pixels` map pixels (at least one example a batch). Returns one loss per
/// item, in order. Evaluation mode makes each loss independent of its batch-mates.
///
/// On the CPU (native) the batches run on rayon's threads, one batch a thread: burn's CPU backend
/// runs most element-wise operations on one core.
pub async fn evaluate_items(
    model: &ScoreNet,
    compute: &Compute,
    sigmas: &[f32],
    items: &[EvalItem],
    max_pixels: usize,
) -> Result<Vec<f32>, LossError> {
    let batches = eval_batches(items, max_pixels);
    let one = |range: &std::ops::Range<usize>| {
        let batch: Vec<DsmExample> = items[range.clone()]
            .iter()
            .map(|i| i.example.clone())
            .collect();
        async move {
            let out = dsm_loss(model, compute, sigmas, &batch, NormMode::Eval).await?;
            let values = read_f32(out.per_example).await?;
            if values.len() != batch.len() {
                return Err(LossError::Batch(format!(
                    "{} losses came back for a batch of {}",
                    values.len(),
                    batch.len()
                )));
            }
            Ok(values)
        }
    };
    #[cfg(not(target_family = "wasm"))]
    if !compute.is_gpu() && batches.len() > 1 {
        use rayon::prelude::*;
        let parts: Vec<Result<Vec<f32>, LossError>> = batches
            .par_iter()
            .map(|range| pollster::block_on(one(range)))
            .collect();
        let mut losses = Vec::with_capacity(items.len());
        for part in parts {
            losses.extend(part?);
        }
        return Ok(losses);
    }
    let mut losses = Vec::with_capacity(items.len());
    for range in &batches {
        losses.extend(one(range).await?);
    }
    Ok(losses)
}

/// [`evaluate_items`]' batches: consecutive items of one crop size, at most `max_pixels` map
/// pixels (and at least one item) each.
fn eval_batches(items: &[EvalItem], max_pixels: usize) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let n = items[start].example.crop;
        let room = (max_pixels / (n * n).max(1)).max(1);
        let mut end = start + 1;
        while end < items.len() && end - start < room && items[end].example.crop == n {
            end += 1;
        }
        batches.push(start..end);
        start = end;
    }
    batches
}

/// Aggregate per-item losses: mean over chains per level, then bands and the overall mean.
pub fn report(items: &[EvalItem], losses: &[f32], sigmas: &[f32]) -> DsmReport {
    let mut per_level: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    let mut chains = std::collections::BTreeSet::new();
    for (item, &loss) in items.iter().zip(losses) {
        let e = per_level.entry(item.example.level).or_default();
        e.0 += f64::from(loss);
        e.1 += 1;
        chains.insert(item.chain);
    }
    let levels: BTreeMap<usize, f64> = per_level
        .into_iter()
        .map(|(l, (sum, n))| (l, sum / n as f64))
        .collect();
    let mut bands: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (&l, &v) in &levels {
        let sigma = sigmas.get(l).copied().unwrap_or(f32::NAN);
        let e = bands.entry(band(sigma).to_string()).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let mean = if levels.is_empty() {
        f64::NAN
    } else {
        levels.values().sum::<f64>() / levels.len() as f64
    };
    DsmReport {
        chains: chains.len(),
        levels,
        bands: bands
            .into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect(),
        mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::weights::WeightTensor;

    #[test]
    fn bands_split_at_one_and_a_tenth() {
        let s = crate::score::inputs::noise_levels(10.0, 0.01, 61);
        assert_eq!(band(s[20]), "high");
        assert_eq!(band(s[21]), "mid");
        assert_eq!(band(s[40]), "mid");
        assert_eq!(band(s[41]), "low");
    }

    #[test]
    fn ema_averages_parameters_and_copies_buffers() {
        let t = |v: f32| WeightTensor {
            shape: vec![1],
            values: vec![v],
            integer: false,
        };
        let mut start = WeightMap::default();
        start.tensors.insert("conv_in.weight".into(), t(0.0));
        start
            .tensors
            .insert("norm_out.norm.running_mean".into(), t(0.0));
        let mut ema = Ema::new(0.9, start);
        // Step 100: the warm-up bound 101/110 is above 0.9, so d = 0.9.
        let mut now = WeightMap::default();
        now.tensors.insert("conv_in.weight".into(), t(1.0));
        now.tensors
            .insert("norm_out.norm.running_mean".into(), t(5.0));
        ema.update(&now, 100);
        assert!((ema.weights.tensors["conv_in.weight"].values[0] - 0.1).abs() < 1e-7);
        assert_eq!(
            ema.weights.tensors["norm_out.norm.running_mean"].values[0],
            5.0
        );
    }
}
