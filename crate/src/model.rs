//! The score network of reference-model.md §4: `CondResnet(149 → 1)`, a fully convolutional 2D
//! residual network of pre-activation bottleneck blocks with dilated 3×3 convolutions and batch
//! norm whose scale and shift depend on the noise level.
//!
//! Field names follow the published PyTorch module (`conv_in`, `blocks_hid.{b}.norm1.norm…`), so
//! checkpoint keys map one to one (see [`crate::weights`]).

use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::features::{INPUT_CHANNELS, noise_levels};

/// Configuration of the score network and its noise ladder.
#[derive(Config, Debug, PartialEq)]
pub struct ScoreNetConfig {
    /// Input channels (149: see [`crate::features`]).
    #[config(default = 149)]
    pub in_channels: usize,
    /// Channels of the residual stream.
    #[config(default = 64)]
    pub hidden_channels: usize,
    /// Channels inside a bottleneck block.
    #[config(default = 16)]
    pub bottleneck_channels: usize,
    /// Number of bottleneck blocks.
    #[config(default = 32)]
    pub blocks: usize,
    /// Dilations of the 3×3 convolutions, cycled over the blocks.
    #[config(default = "vec![1, 3, 5, 9]")]
    pub dilations: Vec<usize>,
    /// Number of noise levels (the conditional batch norm's embedding size).
    #[config(default = 61)]
    pub levels: usize,
    /// Largest noise standard deviation (Å), level 0.
    #[config(default = 10.0)]
    pub sigma_max: f64,
    /// Smallest noise standard deviation (Å), the last level.
    #[config(default = 0.01)]
    pub sigma_min: f64,
}

impl ScoreNetConfig {
    /// The published model's configuration (reference-model.md §4).
    pub fn reference() -> Self {
        Self::new()
    }

    /// The noise standard deviations, decreasing.
    pub fn sigmas(&self) -> Vec<f32> {
        noise_levels(self.sigma_max, self.sigma_min, self.levels)
    }

    /// Dilation of block `b`.
    pub fn dilation(&self, b: usize) -> usize {
        if self.dilations.is_empty() {
            1
        } else {
            self.dilations[b % self.dilations.len()]
        }
    }

    /// Check that the configuration describes a network that can be built.
    pub fn validate(&self) -> Result<(), String> {
        if self.in_channels != INPUT_CHANNELS {
            return Err(format!(
                "in_channels is {} but the features have {INPUT_CHANNELS}",
                self.in_channels
            ));
        }
        if self.hidden_channels == 0 || self.bottleneck_channels == 0 || self.levels == 0 {
            return Err("channels and levels must be positive".into());
        }
        if self.dilations.contains(&0) {
            return Err("dilations must be positive".into());
        }
        if !(self.sigma_max > self.sigma_min && self.sigma_min > 0.0) {
            return Err("noise levels need sigma_max > sigma_min > 0".into());
        }
        Ok(())
    }

    /// A network with freshly initialised parameters (as PyTorch initialises the reference:
    /// batch-norm scales N(1, 0.01), shifts 0, running statistics 0 and 1).
    pub fn init(&self, device: &Device) -> ScoreNet {
        let conv = |cin: usize, cout: usize, k: usize, dilation: usize| {
            let pad = dilation * (k / 2);
            Conv2dConfig::new([cin, cout], [k, k])
                .with_dilation([dilation, dilation])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device)
        };
        let (c, m) = (self.hidden_channels, self.bottleneck_channels);
        ScoreNet {
            conv_in: conv(self.in_channels, c, 3, 1),
            blocks_hid: (0..self.blocks)
                .map(|b| Bottleneck {
                    norm1: CondBatchNorm::new(c, self.levels, device),
                    conv1: conv(c, m, 1, 1),
                    norm2: CondBatchNorm::new(m, self.levels, device),
                    conv2: conv(m, m, 3, self.dilation(b)),
                    norm3: CondBatchNorm::new(m, self.levels, device),
                    conv3: conv(m, c, 1, 1),
                })
                .collect(),
            norm_out: CondBatchNorm::new(c, self.levels, device),
            conv_out: conv(c, 1, 3, 1),
        }
    }
}

/// ELU (α = 1) with an accurate `expm1` for the negative part, as PyTorch computes it.
///
/// burn's `elu` takes `exp(x) − 1`, which loses most digits for x just below zero; across 97
/// activations that drifts the output by ~1e-5 relative. For −1 ≤ x ≤ 0 this uses Kahan's
/// `expm1(x) = (u − 1)·x / ln(u)` with `u = exp(x)` (exact where `u` rounds to 1); below −1,
/// `exp(x) − 1` is already accurate. Differentiable everywhere it is used.
pub fn elu(x: Tensor<4>) -> Tensor<4> {
    let u = x.clone().exp();
    let plain = u.clone().sub_scalar(1.0);
    let log_u = u.clone().log();
    // Where u == 1, ln(u) == 0: use expm1(x) ≈ x there (and avoid 0/0).
    let one = u.equal_elem(1.0);
    let safe_log = log_u.mask_fill(one.clone(), 1.0);
    let kahan = (plain.clone() * x.clone() / safe_log).mask_where(one, x.clone());
    let negative = kahan.mask_where(x.clone().lower_elem(-1.0), plain);
    x.clone().mask_where(x.lower_equal_elem(0.0), negative)
}

/// Whether batch norm uses running statistics (evaluation) or the batch's (training).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormMode {
    /// Running statistics: `model.eval()` in the reference.
    Eval,
    /// Batch statistics over (B, H, W), biased variance; running statistics are updated.
    Train,
}

/// Running statistics of a batch norm without affine parameters (`BatchNorm2d(affine=False)`).
#[derive(Module, Debug)]
pub struct NormStats {
    /// Running mean, `[C]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: RunningState<Tensor<1>>,
}

/// Conditional batch norm: batch norm, then a per-level scale and shift.
#[derive(Module, Debug)]
pub struct CondBatchNorm {
    /// The normalisation statistics.
    pub norm: NormStats,
    /// Scales, `[levels, C]`.
    pub embed_gamma: Embedding,
    /// Shifts, `[levels, C]`.
    pub embed_beta: Embedding,
    /// Momentum of the running statistics.
    pub momentum: f64,
    /// Added to the variance.
    pub epsilon: f64,
}

impl CondBatchNorm {
    fn new(channels: usize, levels: usize, device: &Device) -> Self {
        let mut gamma = EmbeddingConfig::new(levels, channels).init(device);
        gamma.weight = Param::from_tensor(Tensor::random(
            [levels, channels],
            burn::tensor::Distribution::Normal(1.0, 0.01),
            device,
        ));
        let mut beta = EmbeddingConfig::new(levels, channels).init(device);
        beta.weight = Param::from_tensor(Tensor::zeros([levels, channels], device));
        Self {
            norm: NormStats {
                running_mean: RunningState::new(Tensor::zeros([channels], device)),
                running_var: RunningState::new(Tensor::ones([channels], device)),
            },
            embed_gamma: gamma,
            embed_beta: beta,
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]`, `levels`: `[B]` noise-level indices
    /// - output: `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>, levels: Tensor<1, Int>, mode: NormMode) -> Tensor<4> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        // Normalise as PyTorch's CPU kernels do, `x·α + β` with `α = 1/√(var + ε)` and
        // `β = −mean·α` (not `(x − mean)·α`): activations here sit far from zero, and matching
        // torch's rounding keeps us within 1e-5 of the published numbers.
        let (mean, var) = match mode {
            NormMode::Eval => (
                self.norm
                    .running_mean
                    .value_sync()
                    .to_device(&device)
                    .reshape([1, c, 1, 1]),
                self.norm
                    .running_var
                    .value_sync()
                    .to_device(&device)
                    .reshape([1, c, 1, 1]),
            ),
            NormMode::Train => {
                // PyTorch accumulates batch statistics in f64. In f32 we get close with a
                // refined mean (one compensation pass) and the corrected two-pass variance.
                let rough = x.clone().mean_dims(&[0, 2, 3]); // [1, C, 1, 1]
                let residual = x.clone() - rough.clone();
                let shift = residual.clone().mean_dims(&[0, 2, 3]);
                let mean = rough + shift.clone();
                let var = residual.powi_scalar(2).mean_dims(&[0, 2, 3]) - shift.powi_scalar(2);
                let n = (b * h * w) as f64;
                let unbiased = var
                    .clone()
                    .detach()
                    .reshape([c])
                    .mul_scalar(n / (n - 1.0).max(1.0));
                let m = self.momentum;
                let running_mean = self.norm.running_mean.value_sync().to_device(&device);
                let running_var = self.norm.running_var.value_sync().to_device(&device);
                self.norm.running_mean.update(
                    running_mean
                        .mul_scalar(1.0 - m)
                        .add(mean.clone().detach().reshape([c]).mul_scalar(m))
                        .detach(),
                );
                self.norm.running_var.update(
                    running_var
                        .mul_scalar(1.0 - m)
                        .add(unbiased.mul_scalar(m))
                        .detach(),
                );
                (mean, var)
            }
        };
        let alpha = (var + self.epsilon).sqrt().recip();
        let beta = mean.neg() * alpha.clone();
        let normalised = x * alpha + beta;
        let gamma = self
            .embed_gamma
            .weight
            .val()
            .select(0, levels.clone())
            .reshape([b, c, 1, 1]);
        let beta = self
            .embed_beta
            .weight
            .val()
            .select(0, levels)
            .reshape([b, c, 1, 1]);
        normalised * gamma + beta
    }
}

/// A full pre-activation bottleneck block: three (CBN → ELU → conv) steps and a residual add.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// Norm before the 1×1 reduction.
    pub norm1: CondBatchNorm,
    /// 1×1 conv, C → C/4.
    pub conv1: Conv2d,
    /// Norm before the dilated 3×3 conv.
    pub norm2: CondBatchNorm,
    /// Dilated 3×3 conv, C/4 → C/4.
    pub conv2: Conv2d,
    /// Norm before the 1×1 expansion.
    pub norm3: CondBatchNorm,
    /// 1×1 conv, C/4 → C.
    pub conv3: Conv2d,
}

impl Bottleneck {
    /// # Shapes
    /// - `h`: `[B, C, H, W]` → `[B, C, H, W]`
    pub fn forward(&self, h: Tensor<4>, levels: Tensor<1, Int>, mode: NormMode) -> Tensor<4> {
        let t = self
            .conv1
            .forward(elu(self.norm1.forward(h.clone(), levels.clone(), mode)));
        let t = self
            .conv2
            .forward(elu(self.norm2.forward(t, levels.clone(), mode)));
        let t = self.conv3.forward(elu(self.norm3.forward(t, levels, mode)));
        h + t
    }
}

/// The score network.
#[derive(Module, Debug)]
pub struct ScoreNet {
    /// 3×3 conv, 149 → C.
    pub conv_in: Conv2d,
    /// The residual blocks.
    pub blocks_hid: Vec<Bottleneck>,
    /// Final conditional norm (its ELU output is the pair embedding).
    pub norm_out: CondBatchNorm,
    /// 3×3 conv, C → 1: the score map.
    pub conv_out: Conv2d,
}

/// What one forward pass gives.
#[derive(Debug, Clone)]
pub struct ScoreOutput {
    /// The score map H, read as dE/d(D²): `[B, 1, H, W]` (`conv_out`).
    pub score: Tensor<4>,
    /// `ELU(CBN_out(h))`: `[B, C, H, W]` (`encoder_feat`, the pair embedding).
    pub features: Tensor<4>,
}

impl ScoreNet {
    /// # Shapes
    /// - `inputs`: `[B, 149, H, W]`, `levels`: `[B]` noise-level indices
    pub fn forward(
        &self,
        inputs: Tensor<4>,
        levels: Tensor<1, Int>,
        mode: NormMode,
    ) -> ScoreOutput {
        let mut h = self.conv_in.forward(inputs);
        for block in &self.blocks_hid {
            h = block.forward(h, levels.clone(), mode);
        }
        let features = elu(self.norm_out.forward(h, levels, mode));
        let score = self.conv_out.forward(features.clone());
        ScoreOutput { score, features }
    }
}
