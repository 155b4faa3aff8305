//! What defines a training run of the score model (written as `config.json` in its run
//! directory): the network, the data filter, the stages with their schedules, the optimiser, the
//! weight average and validation. Two recipes are built in: the published reference
//! (docs/score-model.md §3) and ours (TRAINING.md), the default.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::score::data::{ChainFilter, LevelSampling, mix};
use crate::score::network::ScoreNetConfig;
use crate::score::training::scheduled_rate;

/// A training configuration that cannot train, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct RecipeError(pub String);

/// One phase of training with its own crop and batch (e.g. crops, then full-map fine-tuning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Optimiser steps in this stage.
    pub steps: u64,
    /// Crop size in residues (rows and columns drawn independently); `null` = full maps.
    pub crop: Option<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Distinct chains per step (the reference: 1, with `batch_size` noisy copies).
    pub proteins_per_batch: usize,
    /// Adam learning rate: the peak of the stage's schedule (constant without warm-up and
    /// decay).
    pub learning_rate: f64,
    /// Longest chain sampled in this stage (full-map stages grow with L²); `null`: no limit
    /// beyond the data filter.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Steps of linear learning-rate warm-up at the start of the stage (0: none).
    #[serde(default)]
    pub warmup_steps: u64,
    /// Cosine decay from `learning_rate` to this at the stage's last step; `null`: constant.
    #[serde(default)]
    pub final_learning_rate: Option<f64>,
    /// How the noise levels of a batch are drawn.
    #[serde(default)]
    pub levels: LevelSampling,
    /// Crops of several sizes: each step draws its crop size uniformly from `crop..=crop_max`
    /// and scales its batch (and its proteins) down to keep about the pixels of `batch_size`
    /// crops of `crop` ([`Stage::shape`]), so a step costs about the same whatever its size.
    /// `null` (and absent from the file): every step at `crop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_max: Option<usize>,
}

/// The shape of one step's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    /// Crop size in residues; `None`: full maps.
    pub crop: Option<usize>,
    /// Examples.
    pub batch_size: usize,
    /// Distinct chains.
    pub proteins: usize,
}

impl Stage {
    /// The batch shape of step `step`: the stage's own, or with `crop_max` a crop size drawn
    /// from `(seed, step)` alone and the batch scaled to `batch_size · crop² / size²` examples
    /// (rounded to an even number, at least 2) from proportionally fewer proteins.
    pub fn shape(&self, seed: u64, step: u64) -> BatchShape {
        match (self.crop, self.crop_max) {
            (Some(c), Some(m)) if m > c => {
                let mut rng = StdRng::seed_from_u64(mix(&[seed, step, 2]));
                let n = rng.random_range(c..=m);
                let scaled = (self.batch_size * c * c) as f64 / (n * n) as f64;
                let batch = ((scaled / 2.0).round() as usize * 2).clamp(2, self.batch_size.max(2));
                let proteins = (self.proteins_per_batch * batch)
                    .div_ceil(self.batch_size)
                    .clamp(1, batch);
                BatchShape {
                    crop: Some(n),
                    batch_size: batch,
                    proteins,
                }
            }
            _ => BatchShape {
                crop: self.crop,
                batch_size: self.batch_size,
                proteins: self.proteins_per_batch,
            },
        }
    }

    /// The largest crop of the stage (chains shorter than it are not drawn); `None`: full maps.
    pub fn longest_crop(&self) -> Option<usize> {
        self.crop_max.or(self.crop)
    }

    /// The learning rate of 0-based step `t` of this stage.
    pub fn rate(&self, t: u64) -> f64 {
        scheduled_rate(
            self.learning_rate,
            self.final_learning_rate,
            self.warmup_steps,
            t,
            self.steps,
        )
    }
}

/// Everything that defines a training run; written as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network and its noise ladder.
    #[serde(deserialize_with = "ScoreNetConfig::deserialize_with_defaults")]
    pub model: ScoreNetConfig,
    /// Which chains are used.
    pub filter: ChainFilter,
    /// Training phases, in order.
    pub stages: Vec<Stage>,
    /// Adam β1, β2, ε (PyTorch defaults, as the reference).
    pub adam: [f64; 3],
    /// Decay of the weight average (reached after a warm-up, see `foldspace::score::training::Ema`).
    pub ema_decay: f32,
    /// Seed of every draw (batches, noise, crops, validation).
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Steps between validations.
    pub eval_every: u64,
    /// Validation chains (the first of the val split after filtering).
    pub val_chains: usize,
    /// Validation noise levels (empty: all).
    pub val_levels: Vec<usize>,
    /// Validation crop (`null`: full maps).
    pub val_crop: Option<usize>,
    /// Clip the gradient to this global L2 norm (over every parameter); `null`: no clipping.
    #[serde(default)]
    pub max_grad_norm: Option<f32>,
    /// Training batches (of the first stage's shape) over which the batch-norm statistics of
    /// the weight average are recalibrated before each validation and in each checkpoint's
    /// `ema.safetensors`; 0: copy the raw model's running statistics (the reference).
    #[serde(default)]
    pub recalibrate_batches: usize,
    /// Threads a training step's batch is split over on the CPU, each part with its own batch
    /// statistics (`foldspace::score::training::train_step`); 1: the whole batch at once (the
    /// reference). Part of the recipe: it changes the batch statistics, not only the speed.
    #[serde(default = "one")]
    pub shards: usize,
}

fn one() -> usize {
    1
}

impl TrainConfig {
    /// The reference recipe (docs/score-model.md §3–§5): 61 levels 10 → 0.01 Å, 32 blocks,
    /// 64 channels, multi crops of 31, batch 32 from one protein, Adam 1e-3, EMA 0.999, 50 epochs
    /// of the 18,289 training chains.
    pub fn reference() -> Self {
        Self {
            model: ScoreNetConfig::reference(),
            filter: ChainFilter::default(),
            stages: vec![Stage {
                steps: 50 * 18_289,
                crop: Some(31),
                batch_size: 32,
                proteins_per_batch: 1,
                learning_rate: 1e-3,
                max_length: None,
                warmup_steps: 0,
                final_learning_rate: None,
                levels: LevelSampling::Independent,
                crop_max: None,
            }],
            adam: [0.9, 0.999, 1e-8],
            ema_decay: 0.999,
            seed: 0,
            checkpoint_every: 500,
            eval_every: 500,
            val_chains: 16,
            val_levels: (0..61).step_by(3).collect(),
            val_crop: Some(64),
            max_grad_norm: None,
            recalibrate_batches: 0,
            shards: 1,
        }
    }

    /// Our recipe, the default of `foldspace pretrain`: the reference's network, batch and
    /// optimiser, with the training changes that TRAINING.md describes (and, where it has them,
    /// measures in paired runs): the score map scaled by 0.01 (folded into `conv_out` on export)
    /// from a zero `conv_out`, so training starts at the zero score; crops of 31 to 64 residues
    /// at the pixels of 32 crops of 31; 16 proteins a batch (2 noisy copies each); levels
    /// stratified within the batch; a 500-step warm-up to 1e-3, then a cosine decay to 1e-5 over
    /// the stage; the gradient clipped to a global norm of 1; the weight average's batch-norm
    /// statistics recalibrated on 16 batches.
    pub fn recipe() -> Self {
        let mut config = Self::reference();
        config.model.output_scale = 0.01;
        config.stages = vec![Stage {
            steps: 100_000,
            crop: Some(31),
            batch_size: 32,
            proteins_per_batch: 16,
            learning_rate: 1e-3,
            max_length: None,
            warmup_steps: 500,
            final_learning_rate: Some(1e-5),
            levels: LevelSampling::Stratified,
            crop_max: Some(64),
        }];
        config.max_grad_norm = Some(1.0);
        config.recalibrate_batches = 16;
        config.shards = 2;
        config
    }

    /// Steps of all stages.
    pub fn total_steps(&self) -> u64 {
        self.stages.iter().map(|s| s.steps).sum()
    }

    /// Steps before stage `index`.
    pub fn stage_start(&self, index: usize) -> u64 {
        self.stages.iter().take(index).map(|s| s.steps).sum()
    }

    /// Index of the stage of 1-based step `step`.
    pub fn stage_index(&self, step: u64) -> Option<usize> {
        let mut end = 0;
        self.stages.iter().position(|s| {
            end += s.steps;
            step <= end
        })
    }

    /// Whether the configuration can train; the error says what is wrong.
    pub fn validate(&self) -> Result<(), RecipeError> {
        self.model
            .validate()
            .map_err(|e| RecipeError(format!("model: {e}")))?;
        if self.stages.is_empty() || self.stages.iter().any(|s| s.batch_size == 0) {
            return Err(RecipeError(
                "the config needs at least one stage, each with a batch size above 0".into(),
            ));
        }
        if self.stages.iter().any(|s| s.crop.is_some_and(|c| c < 2)) {
            return Err(RecipeError("crops need at least 2 residues".into()));
        }
        if self
            .stages
            .iter()
            .any(|s| s.crop_max.is_some_and(|m| s.crop.is_none_or(|c| m < c)))
        {
            return Err(RecipeError(
                "crop_max needs a crop, and must not be below it".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(RecipeError("ema_decay must be in [0, 1)".into()));
        }
        if self.checkpoint_every == 0 || self.eval_every == 0 {
            return Err(RecipeError(
                "checkpoint_every and eval_every must be above 0".into(),
            ));
        }
        for (k, stage) in self.stages.iter().enumerate() {
            let rates = [Some(stage.learning_rate), stage.final_learning_rate];
            if rates
                .iter()
                .flatten()
                .any(|r| !(r.is_finite() && *r >= 0.0))
            {
                return Err(RecipeError(format!(
                    "stage {}: learning rates must be finite and not negative",
                    k + 1
                )));
            }
            if stage.proteins_per_batch == 0 {
                return Err(RecipeError(format!(
                    "stage {}: proteins_per_batch must be above 0",
                    k + 1
                )));
            }
        }
        if self
            .max_grad_norm
            .is_some_and(|n| !(n.is_finite() && n > 0.0))
        {
            return Err(RecipeError("max_grad_norm must be positive".into()));
        }
        if self.shards == 0 {
            return Err(RecipeError("shards must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_crop_sizes_keep_the_pixels_of_a_batch() {
        let mut stage = TrainConfig::recipe().stages[0].clone();
        stage.crop_max = None;
        let plain = stage.shape(0, 7);
        assert_eq!(
            plain,
            BatchShape {
                crop: Some(31),
                batch_size: 32,
                proteins: 16
            }
        );
        stage.crop_max = Some(64);
        let mut sizes = std::collections::BTreeSet::new();
        for step in 1..=400 {
            let shape = stage.shape(0, step);
            assert_eq!(
                shape,
                stage.shape(0, step),
                "a pure function of (seed, step)"
            );
            let n = shape.crop.unwrap_or(0);
            assert!((31..=64).contains(&n));
            let ratio = (shape.batch_size * n * n) as f64 / (32.0 * 31.0 * 31.0);
            assert!(
                shape.batch_size.is_multiple_of(2) && (0.8..=1.25).contains(&ratio),
                "{shape:?}"
            );
            assert_eq!(shape.proteins, shape.batch_size / 2, "{shape:?}");
            sizes.insert(n);
        }
        assert!(sizes.len() > 25 && sizes.contains(&31) && sizes.contains(&64));
        let mut config = TrainConfig::recipe();
        config.stages[0].crop_max = Some(20);
        assert!(config.validate().is_err(), "crop_max below the crop");
    }
}
