//! The score network of docs/score-model.md §4: `CondResnet(149 → 1)`, a fully convolutional 2D
//! residual network of pre-activation bottleneck blocks with dilated 3×3 convolutions and batch
//! norm whose scale and shift depend on the noise level.
//!
//! Field names follow the published PyTorch module (`conv_in`, `blocks_hid.{b}.norm1.norm…`), so
//! checkpoint keys map one to one (see [`crate::score::weights`]).

use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::score::inputs::{INPUT_CHANNELS, noise_levels};

/// Configuration of the score network and its noise ladder.
#[derive(Config, Debug, PartialEq)]
pub struct ScoreNetConfig {
    /// Input channels (149: see [`crate::score::inputs`]).
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
    /// Constant factor on the score map: `score = output_scale · conv_out(features)`. Training
    /// only: a small scale (with `conv_out` starting at zero) starts the network at the zero score
    /// and keeps Adam's steps on `conv_out` on the scale of a useful score map (~1e-3 to 1e-2;
    /// the coordinate gradient sums the map over a whole row of Å-sized differences).
    /// [`crate::score::weights::WeightMap::fold_output_scale`] folds it into `conv_out` on export, so
    /// shipped weights always have 1 (the published architecture).
    #[config(default = 1.0)]
    pub output_scale: f64,
}

impl ScoreNetConfig {
    /// The published model's configuration (docs/score-model.md §4).
    pub fn reference() -> Self {
        Self::new()
    }

    /// A configuration from JSON, with the defaults of fields that files written before the
    /// field existed lack (`output_scale`: 1). burn's `Config` derive gives serde no defaults.
    pub fn from_json(mut value: serde_json::Value) -> Result<Self, String> {
        if let Some(object) = value.as_object_mut() {
            object
                .entry("output_scale")
                .or_insert(serde_json::json!(1.0));
        }
        serde_json::from_value(value).map_err(|e| format!("not a score-network configuration: {e}"))
    }

    /// serde `deserialize_with` for configurations embedded in other files (training configs).
    pub fn deserialize_with_defaults<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
        Self::from_json(value).map_err(serde::de::Error::custom)
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
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return Err("output_scale must be positive".into());
        }
        Ok(())
    }

    /// A network with freshly initialised parameters, as PyTorch initialises the reference
    /// (batch-norm scales N(1, 0.01), shifts 0, running statistics 0 and 1, convolutions
    /// Kaiming-uniform), except `conv_out`, which starts at zero (weight and bias): a fresh
    /// network predicts the zero score, whose DSM loss is the noise's mean ‖z‖² (expected 3),
    /// instead
    /// of a random map whose coordinate gradients are hundreds of Å (a first loss of ~4e4).
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
            conv_out: zeroed(conv(c, 1, 3, 1)),
            output_scale: self.output_scale,
        }
    }
}

/// The same convolution with its weight and bias set to zero.
fn zeroed(mut conv: Conv2d) -> Conv2d {
    conv.weight = Param::from_tensor(conv.weight.val().zeros_like());
    conv.bias = conv.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
    conv
}

/// ELU (α = 1) with an accurate `expm1` for the negative part, as PyTorch computes it.
///
/// burn's `elu` takes `exp(x) − 1`, which loses most digits for x just below zero; across 97
/// activations that drifts the output by ~1e-5 relative. Near zero (−0.35 ≤ x ≤ 0) this
/// evaluates the Taylor series of `expm1` to x⁷/7! (truncation below 2e-8 relative, under
/// float32's 6e-8), which needs no `exp` at all; below −0.35, `exp(x) − 1` cancels at most two
/// bits. It does not rely on `exp` and `ln` rounding consistently (Kahan's `(u − 1)·x / ln u`
/// does): GPU `exp` / `log` are approximations, and with Kahan's form lavapipe's ELU carried an
/// absolute error of ~1 ulp of 1 near zero, which the published network amplifies to 2e-4 in
/// its low-noise score maps (tests/numerics/outside_protein.py). Differentiable everywhere.
pub fn elu(x: Tensor<4>) -> Tensor<4> {
    // expm1(x) = x·(1 + x·(1/2 + x·(1/6 + x·(1/24 + x·(1/120 + x·(1/720 + x/5040)))))).
    const INVERSE_FACTORIALS: [f64; 6] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
    ];
    let mut p = x.clone().mul_scalar(1.0 / 5040.0);
    for c in INVERSE_FACTORIALS {
        p = (p.add_scalar(c)) * x.clone();
    }
    let plain = x.clone().exp().sub_scalar(1.0);
    let negative = p.mask_where(x.clone().lower_elem(-0.35), plain);
    x.clone().mask_where(x.lower_equal_elem(0.0), negative)
}

/// ELU with `exp(x) − 1` for the negative part (burn's form): four tensor passes instead of
/// [`elu`]'s nineteen, exact to within one ulp of 1 (absolute 6e-8) near zero. For training, where
/// that error is far below the gradient noise; parity with the published numbers needs [`elu`].
pub fn elu_fast(x: Tensor<4>) -> Tensor<4> {
    burn::tensor::activation::elu(x, 1.0)
}

/// How the network computes: exactly as PyTorch does (parity with the published numbers), or
/// with cheaper forms for training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// [`elu`] and batch norm as PyTorch's CPU kernels compute them (inference, parity tests,
    /// evaluation).
    #[default]
    Exact,
    /// [`elu_fast`], and in training mode batch statistics by the plain two-pass formula with
    /// the normalisation and the level's scale folded into one multiply-add: about half the
    /// full-size tensor passes; the convolutions as matrix products (on flex with autodiff one
    /// operation with its own backward, [`crate::score::conv`]; elsewhere with small batches,
    /// [`MATMUL_CONV_MAX_BATCH`]). Differences are float32 rounding, far below gradient noise.
    Fast,
}

impl Numerics {
    fn elu(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Exact => elu(x),
            Self::Fast => elu_fast(x),
        }
    }

    /// A convolution of the bottleneck blocks or `conv_out`: burn's `conv2d`; with
    /// [`Numerics::Fast`] on burn-flex with autodiff (the trainer's CPU steps) one operation on
    /// matrix products with its own backward ([`crate::score::conv`]); with
    /// [`Numerics::Fast`] elsewhere and at most [`MATMUL_CONV_MAX_BATCH`] examples the same
    /// convolution as matrix products of tensors ([`conv_by_matmul`]). BENCHMARKS.md has the
    /// measurements behind each.
    fn conv(self, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        if let Some(y) = self.conv_on_products(conv, &x) {
            return y;
        }
        let small_batch = x.dims()[0] <= MATMUL_CONV_MAX_BATCH;
        match self {
            Self::Fast if small_batch => conv_by_matmul(conv, x),
            Self::Exact | Self::Fast => conv.forward(x),
        }
    }

    /// `conv_in`: [`crate::score::conv`] as in [`Numerics::conv`], else burn's `conv2d`.
    fn conv_in(self, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        match self.conv_on_products(conv, &x) {
            Some(y) => y,
            None => conv.forward(x),
        }
    }

    /// With [`Numerics::Fast`], the convolution by [`crate::score::conv::conv2d_same`] where it
    /// applies (flex with autodiff, a bias, stride 1, the map's size kept); else `None`.
    fn conv_on_products(self, conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
        #[cfg(not(target_family = "wasm"))]
        if self == Self::Fast {
            let k = conv.kernel_size[0];
            let d = conv.dilation[0];
            let same =
                PaddingConfig2d::Explicit(d * (k / 2), d * (k / 2), d * (k / 2), d * (k / 2));
            let plain = conv.stride == [1, 1]
                && conv.groups == 1
                && conv.kernel_size == [k, k]
                && conv.dilation == [d, d]
                && conv.padding == same;
            if let (true, Some(bias)) = (plain, &conv.bias) {
                return crate::score::conv::conv2d_same(x, &conv.weight.val(), &bias.val(), d);
            }
        }
        // The page's wasm build: no autodiff, no training operation.
        #[cfg(target_family = "wasm")]
        let _ = (conv, x);
        None
    }
}

/// Where [`crate::score::conv`] does not apply (not flex with autodiff: wgpu), up to this many
/// examples (per shard) training computes the blocks' convolutions and `conv_out` as matrix
/// products: burn-flex's threshold for its small-channel convolution loop
/// (`SMALL_CHANNEL_IN_THRESHOLD`), which the weight gradients of batches this small reach (see
/// [`conv_by_matmul`]). Measured with `bench-train`: 8 crops of 64 (4 a shard) 10.9 s a step
/// with `conv2d`, 5.4 s with products; 16 crops of 44 (8 a shard) 4.3 s with `conv2d`, 4.8 s
/// with products.
pub const MATMUL_CONV_MAX_BATCH: usize = 4;

/// A stride-1 convolution that keeps the map's size (padding = dilation · ⌊k/2⌋, as every
/// convolution of the network has), computed as matrix products: a 1×1 convolution is one
/// product over channels; a k×k one is one product for all k² kernel taps at once
/// (`z = W_taps · x`, `[B, k²·C_out, H·W]`), then the k² shifted tap maps summed.
///
/// Why: burn computes a convolution's weight gradient as another convolution in which the
/// batch plays the input channels, and burn-flex sends convolutions with ≤ 4 input channels
/// and ≤ 16 output channels to a direct per-plane loop. With the network's 16-channel bottleneck
/// and ≤ 4 examples a shard (crops of 64 residues and more, full maps), that loop took 58 % of a
/// training step (`perf`; BENCHMARKS.md). A product's gradients are products again, whatever the
/// batch. The arithmetic is the same up to float32 summation order (a unit test compares the
/// output and all three gradients with `conv2d`'s).
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]` → `[B, C_out, H, W]`
pub fn conv_by_matmul(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [b, c_in, h, w] = x.dims();
    let weight = conv.weight.val(); // [C_out, C_in, k, k]
    let [c_out, _, k, _] = weight.dims();
    let x = x.reshape([b, c_in, h * w]);
    let mut y = if k == 1 {
        weight
            .reshape([1, c_out, c_in])
            .expand([b, c_out, c_in])
            .matmul(x)
            .reshape([b, c_out, h, w])
    } else {
        let d = conv.dilation[0];
        let r = d * (k / 2);
        let taps = k * k;
        let z = weight
            .permute([2, 3, 0, 1]) // [k, k, C_out, C_in]
            .reshape([1, taps * c_out, c_in])
            .expand([b, taps * c_out, c_in])
            .matmul(x)
            .reshape([b, taps * c_out, h, w])
            .pad((r, r, r, r), burn::tensor::ops::PadMode::Constant(0.0));
        // Output (i, j) takes tap (ky, kx) at input (i + (ky − k/2)·d, j + (kx − k/2)·d),
        // which is padded position (i + ky·d, j + kx·d).
        let mut sum: Option<Tensor<4>> = None;
        for ky in 0..k {
            for kx in 0..k {
                let t = ky * k + kx;
                let tap = z.clone().slice([
                    0..b,
                    t * c_out..(t + 1) * c_out,
                    ky * d..ky * d + h,
                    kx * d..kx * d + w,
                ]);
                sum = Some(match sum {
                    Some(s) => s + tap,
                    None => tap,
                });
            }
        }
        // k ≥ 1, so the loop ran at least once.
        sum.unwrap_or_else(|| Tensor::zeros([b, c_out, h, w], &z.device()))
    };
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([1, c_out, 1, 1]);
    }
    y
}

/// Whether batch norm uses running statistics (evaluation) or the batch's (training).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormMode {
    /// Running statistics: `model.eval()` in the reference.
    Eval,
    /// Batch statistics over (B, H, W), biased variance; running statistics are updated.
    Train,
    /// Batch statistics as in [`NormMode::Train`], running statistics left as they are (the
    /// second shard of a data-parallel step: one shard updates them, deterministically).
    Batch,
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
    pub fn forward(
        &self,
        x: Tensor<4>,
        levels: Tensor<1, Int>,
        mode: NormMode,
        numerics: Numerics,
    ) -> Tensor<4> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        if numerics == Numerics::Fast && mode != NormMode::Eval {
            return self.forward_fast_train(x, levels, mode);
        }
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
            NormMode::Train | NormMode::Batch => {
                // PyTorch accumulates batch statistics in f64. In f32 we get close with a
                // refined mean (one compensation pass) and the corrected two-pass variance.
                let rough = x.clone().mean_dims(&[0, 2, 3]); // [1, C, 1, 1]
                let residual = x.clone() - rough.clone();
                let shift = residual.clone().mean_dims(&[0, 2, 3]);
                let mean = rough + shift.clone();
                let var = residual.powi_scalar(2).mean_dims(&[0, 2, 3]) - shift.powi_scalar(2);
                if mode == NormMode::Train {
                    self.update_running(mean.clone(), var.clone(), b * h * w);
                }
                (mean, var)
            }
        };
        let alpha = (var + self.epsilon).sqrt().recip();
        let beta = mean.neg() * alpha.clone();
        let normalised = x * alpha + beta;
        let (gamma, beta) = self.level_affine(levels, b, c);
        normalised * gamma + beta
    }

    /// `ELU(self.forward(x, …))`: with [`Numerics::Fast`] in a training mode on burn-flex with
    /// autodiff, one fused operation with its own backward pass ([`crate::score::fused`]; the
    /// trainer's CPU steps); everywhere else the composed operations.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`, `levels`: `[B]` → `[B, C, H, W]`
    pub fn forward_elu(
        &self,
        x: Tensor<4>,
        levels: Tensor<1, Int>,
        mode: NormMode,
        numerics: Numerics,
    ) -> Tensor<4> {
        #[cfg(not(target_family = "wasm"))]
        if numerics == Numerics::Fast && mode != NormMode::Eval {
            let [b, c, h, w] = x.dims();
            let (gamma, beta) = self.level_scale_shift(levels.clone());
            if let Some(fused) = crate::score::fused::cbn_elu(&x, &gamma, &beta, self.epsilon) {
                if mode == NormMode::Train {
                    self.update_running(
                        fused.mean.reshape([1, c, 1, 1]),
                        fused.var.reshape([1, c, 1, 1]),
                        b * h * w,
                    );
                }
                return fused.output;
            }
        }
        numerics.elu(self.forward(x, levels, mode, numerics))
    }

    /// Each example's scale and shift for its noise level, `[B, C]` each.
    fn level_scale_shift(&self, levels: Tensor<1, Int>) -> (Tensor<2>, Tensor<2>) {
        let pick = |table: &Embedding, levels| table.weight.val().select(0, levels);
        (
            pick(&self.embed_gamma, levels.clone()),
            pick(&self.embed_beta, levels),
        )
    }

    /// Each example's scale and shift for its noise level, `[B, C, 1, 1]` each.
    fn level_affine(&self, levels: Tensor<1, Int>, b: usize, c: usize) -> (Tensor<4>, Tensor<4>) {
        let (gamma, beta) = self.level_scale_shift(levels);
        (gamma.reshape([b, c, 1, 1]), beta.reshape([b, c, 1, 1]))
    }

    /// Fold a batch's mean and biased variance (`[1, C, 1, 1]`, over `n` values each) into the
    /// running statistics (unbiased variance), with the norm's momentum.
    fn update_running(&self, mean: Tensor<4>, var: Tensor<4>, n: usize) {
        let device = mean.device();
        let c = mean.dims()[1];
        let n = n as f64;
        let unbiased = var.detach().reshape([c]).mul_scalar(n / (n - 1.0).max(1.0));
        let m = self.momentum;
        let running_mean = self.norm.running_mean.value_sync().to_device(&device);
        let running_var = self.norm.running_var.value_sync().to_device(&device);
        self.norm.running_mean.update(
            running_mean
                .mul_scalar(1.0 - m)
                .add(mean.detach().reshape([c]).mul_scalar(m))
                .detach(),
        );
        self.norm.running_var.update(
            running_var
                .mul_scalar(1.0 - m)
                .add(unbiased.mul_scalar(m))
                .detach(),
        );
    }

    /// Training-mode batch norm with fewer full-size passes ([`Numerics::Fast`]): two-pass
    /// statistics, then `(x − mean)·(γ/√(var + ε)) + β` with the per-example scale and shift
    /// (`[B, C, 1, 1]`) formed first.
    fn forward_fast_train(
        &self,
        x: Tensor<4>,
        levels: Tensor<1, Int>,
        mode: NormMode,
    ) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let mean = x.clone().mean_dims(&[0, 2, 3]); // [1, C, 1, 1]
        let centred = x - mean.clone();
        let var = centred.clone().powi_scalar(2).mean_dims(&[0, 2, 3]);
        if mode == NormMode::Train {
            self.update_running(mean, var.clone(), b * h * w);
        }
        let rstd = (var + self.epsilon).sqrt().recip();
        let (gamma, beta) = self.level_affine(levels, b, c);
        centred * (gamma * rstd) + beta
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
    pub fn forward(
        &self,
        h: Tensor<4>,
        levels: Tensor<1, Int>,
        mode: NormMode,
        numerics: Numerics,
    ) -> Tensor<4> {
        let n = numerics;
        let t = n.conv(
            &self.conv1,
            self.norm1.forward_elu(h.clone(), levels.clone(), mode, n),
        );
        let t = n.conv(
            &self.conv2,
            self.norm2.forward_elu(t, levels.clone(), mode, n),
        );
        let t = n.conv(&self.conv3, self.norm3.forward_elu(t, levels, mode, n));
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
    /// 3×3 conv, C → 1: the score map (times `output_scale`).
    pub conv_out: Conv2d,
    /// See [`ScoreNetConfig::output_scale`]; 1 for every exported network.
    pub output_scale: f64,
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
        self.forward_with(inputs, levels, mode, Numerics::Exact)
    }

    /// [`ScoreNet::forward`] with a choice of arithmetic ([`Numerics::Fast`] in training steps).
    ///
    /// # Shapes
    /// - `inputs`: `[B, 149, H, W]`, `levels`: `[B]` noise-level indices
    pub fn forward_with(
        &self,
        inputs: Tensor<4>,
        levels: Tensor<1, Int>,
        mode: NormMode,
        numerics: Numerics,
    ) -> ScoreOutput {
        let mut h = numerics.conv_in(&self.conv_in, inputs);
        for block in &self.blocks_hid {
            h = block.forward(h, levels.clone(), mode, numerics);
        }
        let features = self.norm_out.forward_elu(h, levels, mode, numerics);
        let mut score = numerics.conv(&self.conv_out, features.clone());
        if self.output_scale != 1.0 {
            score = score.mul_scalar(self.output_scale);
        }
        ScoreOutput { score, features }
    }

    /// Every conditional batch norm of the network, in order (recalibration sets their momentum).
    pub fn norms_mut(&mut self) -> impl Iterator<Item = &mut CondBatchNorm> {
        self.blocks_hid
            .iter_mut()
            .flat_map(|b| [&mut b.norm1, &mut b.norm2, &mut b.norm3])
            .chain(std::iter::once(&mut self.norm_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_written_before_output_scale_still_parse() {
        let legacy = serde_json::json!({"in_channels": 149, "hidden_channels": 64,
            "bottleneck_channels": 16, "blocks": 32, "dilations": [1, 3, 5, 9], "levels": 61,
            "sigma_max": 10.0, "sigma_min": 0.01});
        let config = ScoreNetConfig::from_json(legacy).expect("legacy config");
        assert_eq!(config, ScoreNetConfig::reference());
        assert_eq!(config.output_scale, 1.0);
        let mut scaled = serde_json::to_value(ScoreNetConfig::reference().with_output_scale(0.01))
            .expect("json");
        scaled["blocks"] = serde_json::json!(2);
        let back = ScoreNetConfig::from_json(scaled).expect("round trip");
        assert_eq!((back.output_scale, back.blocks), (0.01, 2));
        assert!(ScoreNetConfig::from_json(serde_json::json!({"blocks": "many"})).is_err());
    }

    /// `b` equals `a` to within `tolerance` times `a`'s largest magnitude, element by element.
    #[cfg(not(target_arch = "wasm32"))]
    fn assert_close(what: &str, a: &[f32], b: &[f32], tolerance: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= tolerance * scale,
            "{what}: max difference {worst} (scale {scale})"
        );
    }

    /// The matrix-product convolution of [`Numerics::Fast`] gives burn's `conv2d` output and its
    /// gradients (input, weight, bias) for the network's kinds of convolution: 1×1 both ways
    /// through the bottleneck, dilated 3×3 (also reaching past the map), and 3×3 to one channel;
    /// 1 and 5 examples (both sides of burn-flex's small-channel threshold). So does the
    /// training operation on products ([`crate::score::conv`]), also for an input that needs no
    /// gradient (`conv_in`).
    // Gradients need burn's autodiff, which the wasm32 build leaves out (the page only infers).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn matmul_convolution_matches_conv2d_and_its_gradients() {
        let device = crate::compute::Compute::cpu().autodiff().device;
        let read = |t: Tensor<1>| pollster::block_on(crate::compute::read_f32(t)).expect("read");
        let close = |what: &str, a: Vec<f32>, b: Vec<f32>| assert_close(what, &a, &b, 1e-5);
        for (c_in, c_out, k, dilation, batch) in [
            (8, 4, 1, 1, 1),
            (4, 8, 1, 1, 5),
            (4, 4, 3, 3, 1),
            (4, 4, 3, 1, 5),
            (6, 1, 3, 1, 2),
            (5, 3, 3, 9, 3), // the dilation reaches past the 9-wide map
        ] {
            let [h, w] = [11, 9];
            let pad = dilation * (k / 2);
            let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
                .with_dilation([dilation, dilation])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(&device);
            // A bias that is not zero, so its gradient and broadcast are checked too.
            conv.bias = Some(Param::from_tensor(Tensor::random(
                [c_out],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            )));
            let x: Tensor<4> = Tensor::random(
                [batch, c_in, h, w],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let r: Tensor<4> = Tensor::random(
                [batch, c_out, h, w],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let flat = |t: Tensor<4>| {
                let n = t.dims().iter().product::<usize>();
                t.reshape([n])
            };
            // 0: burn's conv2d; 1: conv_by_matmul; 2: the training operation (score::conv).
            let run = |variant: usize| {
                let x = x.clone().detach().require_grad();
                let y = match variant {
                    0 => conv.forward(x.clone()),
                    1 => conv_by_matmul(&conv, x.clone()),
                    _ => {
                        let y = Numerics::Fast.conv_on_products(&conv, &x);
                        y.expect("the training convolution applies")
                    }
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                let gx = x.grad(&grads).expect("input gradient");
                let gw = conv.weight.val().grad(&grads).expect("weight gradient");
                let gb = conv
                    .bias
                    .as_ref()
                    .and_then(|b| b.val().grad(&grads))
                    .expect("bias gradient");
                (
                    read(flat(y.detach())),
                    read(flat(gx)),
                    read(flat(gw)),
                    read(gb),
                )
            };
            let (y0, gx0, gw0, gb0) = run(0);
            for variant in [1, 2] {
                let (y1, gx1, gw1, gb1) = run(variant);
                let case = format!(
                    "variant {variant}: {c_in}→{c_out}, {k}×{k}, dilation {dilation}, batch {batch}"
                );
                close(&format!("{case}: output"), y0.clone(), y1);
                close(&format!("{case}: input gradient"), gx0.clone(), gx1);
                close(&format!("{case}: weight gradient"), gw0.clone(), gw1);
                close(&format!("{case}: bias gradient"), gb0.clone(), gb1);
            }
            // As `conv_in`: an input that needs no gradient (the weight's is still right).
            let y = Numerics::Fast.conv_in(&conv, x.clone());
            let gw = conv.weight.val().grad(&(y * r.clone()).sum().backward());
            close(
                "no input gradient: weight",
                gw0,
                read(flat(gw.expect("weight"))),
            );
        }
    }

    /// The fused training-mode CBN + ELU of [`CondBatchNorm::forward_elu`] (burn-flex with
    /// autodiff) gives the composed operations' output, running statistics and gradients (input,
    /// level scales and shifts), in both training modes; without autodiff it does not apply.
    #[cfg(not(target_family = "wasm"))]
    #[test]
    fn fused_norm_and_elu_match_the_composed_operations() {
        let device = crate::compute::Compute::cpu().autodiff().device;
        let read = |t: Tensor<1>| pollster::block_on(crate::compute::read_f32(t)).expect("read");
        let flat = |t: Tensor<2>| {
            let n = t.dims().iter().product::<usize>();
            t.reshape([n])
        };
        let close = |what: &str, a: Vec<f32>, b: Vec<f32>| assert_close(what, &a, &b, 2e-5);
        let normal = |shape: [usize; 2], mean: f64, std: f64| -> Tensor<2> {
            Tensor::random(
                shape,
                burn::tensor::Distribution::Normal(mean, std),
                &device,
            )
        };
        let [b, c, h, w, levels] = [3, 5, 6, 7, 4];
        // Activations away from zero mean and unit variance, and level scales and shifts that
        // put part of every channel below zero (both ELU branches).
        let x: Tensor<4> = normal([b * c, h * w], 0.7, 2.5).reshape([b, c, h, w]);
        let r: Tensor<4> = normal([b * c, h * w], 0.0, 1.0).reshape([b, c, h, w]);
        let gamma = normal([levels, c], 1.0, 0.3);
        let beta = normal([levels, c], 0.0, 0.5);
        let lv = Tensor::<1, Int>::from_ints([2, 0, 2], &device);
        for mode in [NormMode::Train, NormMode::Batch] {
            let run = |fused: bool| {
                let mut norm = CondBatchNorm::new(c, levels, &device);
                norm.embed_gamma.weight = Param::from_tensor(gamma.clone().detach());
                norm.embed_beta.weight = Param::from_tensor(beta.clone().detach());
                let x = x.clone().detach().require_grad();
                let y = if fused {
                    norm.forward_elu(x.clone(), lv.clone(), mode, Numerics::Fast)
                } else {
                    elu_fast(norm.forward(x.clone(), lv.clone(), mode, Numerics::Fast))
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                let gx = x.grad(&grads).expect("input gradient");
                let gg = norm
                    .embed_gamma
                    .weight
                    .val()
                    .grad(&grads)
                    .expect("scale gradient");
                let gb = norm
                    .embed_beta
                    .weight
                    .val()
                    .grad(&grads)
                    .expect("shift gradient");
                (
                    read(flat(y.detach().reshape([b * c, h * w]))),
                    read(flat(gx.reshape([b * c, h * w]))),
                    read(flat(gg)),
                    read(flat(gb)),
                    read(norm.norm.running_mean.value_sync()),
                    read(norm.norm.running_var.value_sync()),
                )
            };
            let composed = run(false);
            let fused = run(true);
            let case = format!("{mode:?}");
            close(&format!("{case}: output"), composed.0, fused.0);
            close(&format!("{case}: input gradient"), composed.1, fused.1);
            close(&format!("{case}: scale gradient"), composed.2, fused.2);
            close(&format!("{case}: shift gradient"), composed.3, fused.3);
            close(&format!("{case}: running mean"), composed.4, fused.4);
            close(&format!("{case}: running variance"), composed.5, fused.5);
        }
        // The fused path is the one taken on flex with autodiff, and only there.
        let pick = |t: &Tensor<2>| t.clone().select(0, lv.clone());
        assert!(crate::score::fused::cbn_elu(&x, &pick(&gamma), &pick(&beta), 1e-5).is_some());
        let plain = |t: Tensor<2>| t.inner();
        assert!(
            crate::score::fused::cbn_elu(
                &x.clone().inner(),
                &plain(pick(&gamma)),
                &plain(pick(&beta)),
                1e-5
            )
            .is_none()
        );
    }
}
