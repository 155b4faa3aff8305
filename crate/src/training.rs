//! Training and evaluation of the score model (reference-model.md §3–§5): one optimiser step on a
//! DSM batch, the exponential moving average of the weights, and the DSM evaluation that
//! `foldspace eval-dsm` and the trainer's validation report (per level and per σ band).
//!
//! The loop around these (data threads, checkpoints, logging) lives in the trainer binary.

use std::collections::BTreeMap;

use burn::optim::{GradientsParams, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use crate::compute::{Compute, read_f32};
use crate::loss::{DsmExample, LossError, dsm_loss};
use crate::model::{NormMode, ScoreNet};
use crate::weights::WeightMap;

/// One optimiser step: the DSM loss of `examples` in training mode (batch statistics), its
/// gradient, and the update. Returns the updated network and the batch loss before the update.
///
/// `model` must live on `compute.device`, an autodiff device ([`Compute::autodiff`]).
pub async fn train_step(
    model: ScoreNet,
    optimizer: &mut ModuleOptimizer,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    learning_rate: f64,
) -> Result<(ScoreNet, f32), LossError> {
    let out = dsm_loss(&model, compute, sigmas, examples, NormMode::Train).await?;
    let loss = read_f32(out.loss.clone()).await?;
    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
    let model = optimizer.step(learning_rate, model, grads);
    Ok((model, loss.first().copied().unwrap_or(f32::NAN)))
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
pub async fn evaluate_items(
    model: &ScoreNet,
    compute: &Compute,
    sigmas: &[f32],
    items: &[EvalItem],
    max_pixels: usize,
) -> Result<Vec<f32>, LossError> {
    let mut losses = vec![0f32; items.len()];
    let mut start = 0;
    while start < items.len() {
        let n = items[start].example.crop;
        let per = (n * n).max(1);
        let room = (max_pixels / per).max(1);
        let mut end = start + 1;
        while end < items.len() && end - start < room && items[end].example.crop == n {
            end += 1;
        }
        let batch: Vec<DsmExample> = items[start..end]
            .iter()
            .map(|i| i.example.clone())
            .collect();
        let out = dsm_loss(model, compute, sigmas, &batch, NormMode::Eval).await?;
        let values = read_f32(out.per_example).await?;
        losses[start..end].copy_from_slice(&values);
        start = end;
    }
    Ok(losses)
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
    use crate::weights::WeightTensor;

    #[test]
    fn bands_split_at_one_and_a_tenth() {
        let s = crate::features::noise_levels(10.0, 0.01, 61);
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
