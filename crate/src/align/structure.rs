//! The structure tower's input: residue embeddings of the frozen score network, pooled.
//!
//! The score network's cost grows with L², so every chain is embedded on one central window of at
//! most [`STRUCTURE_WINDOW`] residues (the same in training, in the bank and in the page); the
//! input is the mean and the standard deviation over those residues of the residue embedding
//! (`2 × C` values, C = 64 for the shipped network), at the noise level the alignment model
//! names (`AlignConfig::structure_level`; the embedder's smallest σ for older models).

use burn::prelude::*;

use std::collections::BTreeMap;

use crate::compute::{ComputeError, read_f32};
use crate::score::embed::{EmbedError, Embedder, chain_inputs};
use crate::score::network::NormMode;
use crate::structure::Chain;

/// Residues of the window the structure tower sees.
pub const STRUCTURE_WINDOW: usize = 64;

/// The central window of at most `window` residues of a chain of `len`.
pub fn central_window(len: usize, window: usize) -> std::ops::Range<usize> {
    let w = len.min(window);
    let start = (len - w) / 2;
    start..start + w
}

/// Mean and standard deviation over residues of a `[L, C]` residue embedding: `[2C]`.
pub fn pool_residues(residue: &[f32], channels: usize) -> Vec<f32> {
    let l = residue.len().checked_div(channels).unwrap_or(0);
    let mut mean = vec![0f64; channels];
    let mut square = vec![0f64; channels];
    for row in residue.chunks_exact(channels.max(1)) {
        for (c, &v) in row.iter().enumerate() {
            mean[c] += v as f64;
            square[c] += (v as f64) * (v as f64);
        }
    }
    let n = l.max(1) as f64;
    let mut out = Vec::with_capacity(2 * channels);
    out.extend(mean.iter().map(|m| (m / n) as f32));
    out.extend(
        mean.iter()
            .zip(&square)
            .map(|(m, s)| ((s / n - (m / n) * (m / n)).max(0.0)).sqrt() as f32),
    );
    out
}

/// The residues `range` of a chain, as a chain of their own.
pub fn window_chain(chain: &Chain, range: std::ops::Range<usize>) -> Chain {
    Chain {
        id: chain.id.clone(),
        residue_names: part(&chain.residue_names, &range),
        sequence: chain
            .sequence
            .chars()
            .skip(range.start)
            .take(range.len())
            .collect(),
        ca: part(&chain.ca, &range),
        residue_numbers: part(&chain.residue_numbers, &range),
        b_factors: part(&chain.b_factors, &range),
    }
}

/// `v[range]` as a vector (empty where `v` does not reach that far: an optional column).
fn part<T: Clone>(v: &[T], range: &std::ops::Range<usize>) -> Vec<T> {
    v.get(range.clone()).map(<[T]>::to_vec).unwrap_or_default()
}

/// The structure tower's input for a chain (`[2C]`): pooled residue embeddings of its central
/// window at noise level `level` (the alignment model's [`super::model::AlignConfig::level`]).
pub async fn structure_features(
    embedder: &Embedder,
    chain: &Chain,
    level: usize,
) -> Result<Vec<f32>, EmbedError> {
    let mut out = structure_features_batch(embedder, &[chain], &[level], 1).await?;
    out.pop()
        .and_then(|mut chains| chains.pop())
        .ok_or_else(|| ComputeError::Read("no pooled vector came back".into()).into())
}

/// The structure tower's inputs of many chains at several noise levels:
/// `[levels.len()][chains.len()][2C]`. Central windows of one length go through the network
/// together, `batch` windows at a time, each at every level in the same forward pass (the inputs
/// are built once).
pub async fn structure_features_batch(
    embedder: &Embedder,
    chains: &[&Chain],
    levels: &[usize],
    batch: usize,
) -> Result<Vec<Vec<Vec<f32>>>, EmbedError> {
    for &level in levels {
        embedder.sigma(level)?;
    }
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (k, chain) in chains.iter().enumerate() {
        if chain.len() < 2 {
            return Err(EmbedError::TooShort {
                chain: chain.id.clone(),
                residues: chain.len(),
            });
        }
        by_length
            .entry(chain.len().min(STRUCTURE_WINDOW))
            .or_default()
            .push(k);
    }
    let channels = embedder.config.hidden_channels;
    let mut out = vec![vec![Vec::new(); chains.len()]; levels.len()];
    let device = &embedder.compute.device;
    for group in by_length.values() {
        for part in group.chunks(batch.max(1)) {
            let mut inputs = Vec::with_capacity(part.len());
            for &k in part {
                let c = chains[k];
                let window = window_chain(c, central_window(c.len(), STRUCTURE_WINDOW));
                inputs.push(chain_inputs(&embedder.compute, &window.ca, &window.sequence).await?);
            }
            let inputs = Tensor::cat(inputs, 0);
            let rows = levels.len() * part.len();
            let level_ids: Vec<i64> = levels
                .iter()
                .flat_map(|&l| std::iter::repeat_n(l as i64, part.len()))
                .collect();
            let level_ids = Tensor::<1, Int>::from_data(TensorData::new(level_ids, [rows]), device);
            let features = embedder
                .model
                .forward(
                    Tensor::cat(vec![inputs; levels.len()], 0),
                    level_ids,
                    NormMode::Eval,
                )
                .features;
            let pooled = read_f32(pool_features(features)).await?;
            if pooled.len() != rows * 2 * channels {
                return Err(ComputeError::Read(format!(
                    "{} pooled values for {rows} windows of {channels} channels",
                    pooled.len()
                ))
                .into());
            }
            for (row, values) in pooled.chunks_exact(2 * channels).enumerate() {
                out[row / part.len()][part[row % part.len()]] = values.to_vec();
            }
        }
    }
    Ok(out)
}

/// [`pool_residues`] on the device, differentiable (stage 2 trains the network through it): the
/// residue embedding is the pair embedding averaged over its column axis, then its mean and
/// standard deviation over residues.
///
/// - `features`: `[B, C, L, L]` (the score network's pair embedding)
/// - output: `[B, 2C]`
pub fn pool_features(features: Tensor<4>) -> Tensor<2> {
    let [b, c, l, _] = features.dims();
    let residue = features.mean_dim(3).reshape([b, c, l]);
    let mean = residue.clone().mean_dim(2);
    // The square root's gradient is unbounded at 0: a flat channel gets a tiny floor.
    let std = (residue - mean.clone())
        .powi_scalar(2)
        .mean_dim(2)
        .clamp_min(1e-10)
        .sqrt();
    Tensor::cat(vec![mean.reshape([b, c]), std.reshape([b, c])], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_central_and_bounded() {
        assert_eq!(central_window(10, 64), 0..10);
        assert_eq!(central_window(100, 64), 18..82);
        assert_eq!(central_window(65, 64), 0..64);
    }

    #[test]
    fn pooling_is_mean_and_std() {
        // Two residues, two channels: [1, 2], [3, 6].
        let p = pool_residues(&[1.0, 2.0, 3.0, 6.0], 2);
        assert_eq!(p, vec![2.0, 4.0, 1.0, 2.0]);
    }

    #[test]
    fn pooling_on_the_device_is_the_same() {
        // A [1, C=3, L=4, L=4] map; its residue embedding is the mean over the last axis.
        let (c, l) = (3, 4);
        let values: Vec<f32> = (0..c * l * l)
            .map(|k| ((k * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let mut residue = vec![0f32; l * c];
        for ch in 0..c {
            for i in 0..l {
                let row = &values[(ch * l + i) * l..(ch * l + i + 1) * l];
                residue[i * c + ch] = row.iter().sum::<f32>() / l as f32;
            }
        }
        let expected = pool_residues(&residue, c);
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, c, l, l]), &device);
        let got: Vec<f32> =
            pollster::block_on(crate::compute::read_f32(pool_features(x))).expect("f32 values");
        assert_eq!(got.len(), 2 * c);
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
    }
}
