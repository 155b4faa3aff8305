//! The denoising score matching loss of docs/score-model.md §5 ("scheme #2"): the score map of
//! the perturbed pair map is turned into coordinate gradients of the row and column residues by
//! the chain rule, divided by σ, and compared with the true score `(X − X̃)/σ²`, σ²-weighted.

use burn::prelude::*;

use crate::compute::{Compute, ComputeError};
use crate::score::embed::recover_gradients;
use crate::score::inputs::{RESIDUE_CHANNELS, encode_inputs, residue_features};
use crate::score::network::{NormMode, Numerics, ScoreNet};

/// One perturbed protein (or crop of one) in a loss batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DsmExample {
    /// Sequence of the whole chain (one letter a residue).
    pub sequence: String,
    /// Clean C-alpha coordinates of the whole chain.
    pub clean: Vec<[f32; 3]>,
    /// Perturbed coordinates X̃ of the whole chain.
    pub noisy: Vec<[f32; 3]>,
    /// Which residues count in the loss (missing C-alpha: false).
    pub mask: Vec<bool>,
    /// Noise-level index.
    pub level: usize,
    /// First row residue of the crop.
    pub row_start: usize,
    /// First column residue of the crop.
    pub col_start: usize,
    /// Crop size (rows and columns); the chain length for the full map.
    pub crop: usize,
}

impl DsmExample {
    /// A full-map example (no crop).
    pub fn full(sequence: &str, clean: Vec<[f32; 3]>, noisy: Vec<[f32; 3]>, level: usize) -> Self {
        let n = clean.len();
        Self {
            sequence: sequence.to_string(),
            mask: vec![true; n],
            clean,
            noisy,
            level,
            row_start: 0,
            col_start: 0,
            crop: n,
        }
    }
}

/// Perturb coordinates as the reference does: `X̃ = f32(f64(X) + f64(Z)·f64(σ))`.
pub fn perturb(clean: &[[f32; 3]], z: &[[f32; 3]], sigma: f32) -> Vec<[f32; 3]> {
    clean
        .iter()
        .zip(z)
        .map(|(x, z)| std::array::from_fn(|k| (x[k] as f64 + z[k] as f64 * sigma as f64) as f32))
        .collect()
}

/// Why a loss batch could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// The examples are inconsistent.
    #[error("invalid loss batch: {0}")]
    Batch(String),
    /// The device failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
}

/// The loss and what it was computed from.
#[derive(Debug, Clone)]
pub struct DsmOutput {
    /// Mean loss over the batch, `[1]`.
    pub loss: Tensor<1>,
    /// Loss of each example, `[B]`.
    pub per_example: Tensor<1>,
    /// Predicted gradients `[g_p ; g_s] / σ`, `[B, H + W, 3]`.
    pub predicted: Tensor<3>,
    /// True score `(X − X̃)/σ²` of the same rows, `[B, H + W, 3]`.
    pub truth: Tensor<3>,
    /// The model's score map, `[B, 1, H, W]`.
    pub score: Tensor<4>,
}

fn window<T: Copy>(v: &[T], start: usize, len: usize, what: &str) -> Result<Vec<T>, LossError> {
    v.get(start..start + len).map(<[T]>::to_vec).ok_or_else(|| {
        LossError::Batch(format!(
            "{what} crop {start}..{} is outside the chain ({})",
            start + len,
            v.len()
        ))
    })
}

/// DSM loss of a batch of equally sized crops (docs/score-model.md §5).
pub async fn dsm_loss(
    model: &ScoreNet,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    mode: NormMode,
) -> Result<DsmOutput, LossError> {
    dsm_loss_with(model, compute, sigmas, examples, mode, Numerics::Exact).await
}

/// A loss batch on the device: the network's inputs and what the loss compares its output with.
struct Prepared {
    /// `[B, 149, n, n]`.
    inputs: Tensor<4>,
    /// `[B]`.
    levels: Tensor<1, Int>,
    /// Perturbed row / column coordinates, `[B, n, 3]` each.
    xp: Tensor<3>,
    xs: Tensor<3>,
    /// True scores of the rows / columns, `[B, n, 3]` each.
    tp: Tensor<3>,
    ts: Tensor<3>,
    /// Row / column masks, `[B, n, 1]` each.
    mp: Tensor<3>,
    ms: Tensor<3>,
    /// σ per example, `[B, 1, 1]`.
    sigma: Tensor<3>,
}

/// The network's inputs `[B, 149, n, n]` and noise-level indices `[B]` for a loss batch, as
/// [`dsm_loss`] feeds them to the network.
pub async fn network_inputs(
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
) -> Result<(Tensor<4>, Tensor<1, Int>), LossError> {
    let p = prepare(compute, sigmas, examples).await?;
    Ok((p.inputs, p.levels))
}

/// [`dsm_loss`] with a choice of arithmetic ([`Numerics::Fast`] in training steps).
pub async fn dsm_loss_with(
    model: &ScoreNet,
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
    mode: NormMode,
    numerics: Numerics,
) -> Result<DsmOutput, LossError> {
    let p = prepare(compute, sigmas, examples).await?;
    let [b, _, n, _] = p.inputs.dims();
    let out = model.forward_with(p.inputs, p.levels, mode, numerics);
    let g = out.score.clone().reshape([b, n, n]) * p.mp.clone() * p.ms.clone().swap_dims(1, 2);
    let (gp, gs) = recover_gradients(g, p.xp, p.xs);
    let predicted = Tensor::cat(vec![gp, gs], 1) / p.sigma.clone();
    let truth = Tensor::cat(vec![p.tp, p.ts], 1);
    let mask = Tensor::cat(vec![p.mp, p.ms], 1);
    let diff = (predicted.clone() - truth.clone()) * p.sigma;
    let per_example = (diff.powi_scalar(2).sum_dim(2) * mask)
        .mean_dim(1)
        .reshape([b]);
    Ok(DsmOutput {
        loss: per_example.clone().mean(),
        per_example,
        predicted,
        truth,
        score: out.score,
    })
}

async fn prepare(
    compute: &Compute,
    sigmas: &[f32],
    examples: &[DsmExample],
) -> Result<Prepared, LossError> {
    let first = examples
        .first()
        .ok_or_else(|| LossError::Batch("the batch is empty".into()))?;
    let (b, n) = (examples.len(), first.crop);
    let device = &compute.device;
    let (mut dist, mut rf, mut cf) = (Vec::new(), Vec::new(), Vec::new());
    let (mut xp, mut xs, mut tp, mut ts, mut mp, mut ms) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut levels, mut sig) = (Vec::new(), Vec::new());
    for e in examples {
        let l = e.clean.len();
        if e.crop != n || e.noisy.len() != l || e.mask.len() != l || e.sequence.chars().count() != l
        {
            return Err(LossError::Batch(
                "every example needs the same crop size and matching lengths".into(),
            ));
        }
        let sigma = *sigmas.get(e.level).ok_or_else(|| {
            LossError::Batch(format!("noise level {} is outside the ladder", e.level))
        })?;
        let rows = window(&e.noisy, e.row_start, n, "row")?;
        let cols = window(&e.noisy, e.col_start, n, "column")?;
        dist.extend(compute.distance_map(&rows, &cols).await?);
        let feats = residue_features(&e.sequence);
        rf.extend(window(&feats, e.row_start, n, "row")?.into_iter().flatten());
        cf.extend(
            window(&feats, e.col_start, n, "column")?
                .into_iter()
                .flatten(),
        );
        let truth = |start: usize| -> Result<Vec<f32>, LossError> {
            let c = window(&e.clean, start, n, "row")?;
            let t = window(&e.noisy, start, n, "row")?;
            Ok(c.iter()
                .zip(&t)
                .flat_map(|(c, t)| {
                    std::array::from_fn::<f32, 3, _>(|k| (c[k] - t[k]) / (sigma * sigma))
                })
                .collect())
        };
        tp.extend(truth(e.row_start)?);
        ts.extend(truth(e.col_start)?);
        xp.extend(rows.into_iter().flatten());
        xs.extend(cols.into_iter().flatten());
        let m = |start| -> Result<Vec<f32>, LossError> {
            Ok(window(&e.mask, start, n, "mask")?
                .into_iter()
                .map(|v| if v { 1.0 } else { 0.0 })
                .collect())
        };
        mp.extend(m(e.row_start)?);
        ms.extend(m(e.col_start)?);
        levels.push(e.level as i64);
        sig.push(sigma);
    }
    let t3 = |v: Vec<f32>, d: [usize; 3]| Tensor::<3>::from_data(TensorData::new(v, d), device);
    let inputs = encode_inputs(
        t3(dist, [b, n, n]),
        t3(rf, [b, n, RESIDUE_CHANNELS]),
        t3(cf, [b, n, RESIDUE_CHANNELS]),
    );
    let levels = Tensor::<1, Int>::from_data(TensorData::new(levels, [b]), device);
    Ok(Prepared {
        inputs,
        levels,
        xp: t3(xp, [b, n, 3]),
        xs: t3(xs, [b, n, 3]),
        tp: t3(tp, [b, n, 3]),
        ts: t3(ts, [b, n, 3]),
        mp: t3(mp, [b, n, 1]),
        ms: t3(ms, [b, n, 1]),
        sigma: t3(sig, [b, 1, 1]),
    })
}
