//! The structure tower's input: residue embeddings of the frozen score network, pooled.
//!
//! The score network's cost grows with L², so a chain is embedded on windows of at most
//! [`STRUCTURE_WINDOW`] residues (the same in training, in the bank and in the page): one central
//! window ([`StructureWindows::Central`]), or windows tiling the whole chain
//! ([`StructureWindows::Tiled`]), as the alignment model names. The input is the mean and the
//! standard deviation over those residues of the residue embedding (`2 × C` values, C = 64 for
//! the shipped network), at the noise level the alignment model names
//! (`AlignConfig::structure_level`; the embedder's smallest σ for older models).

use burn::prelude::*;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

use crate::compute::{ComputeError, read_f32};
use crate::score::embed::{EmbedError, Embedder, chain_inputs};
use crate::score::network::NormMode;
use crate::structure::Chain;

/// Residues of the window the structure tower sees.
pub const STRUCTURE_WINDOW: usize = 64;

/// The central window of at most `window` residues of a chain of `len`.
pub fn central_window(len: usize, window: usize) -> Range<usize> {
    let w = len.min(window);
    let start = (len - w) / 2;
    start..start + w
}

/// Which residues of a chain the structure tower reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StructureWindows {
    /// One central window of [`STRUCTURE_WINDOW`] residues (every model before the tiling).
    #[default]
    Central,
    /// ⌈L / [`STRUCTURE_WINDOW`]⌉ windows of [`STRUCTURE_WINDOW`] residues, evenly spaced from
    /// the first residue to the last, so every residue is read (neighbouring windows overlap by
    /// less than a window); pooled over all of them. Costs about L / 64 network passes a chain.
    Tiled,
}

impl StructureWindows {
    /// The windows of a chain of `len` residues.
    pub fn ranges(self, len: usize) -> Vec<Range<usize>> {
        match self {
            Self::Central => std::iter::once(central_window(len, STRUCTURE_WINDOW)).collect(),
            Self::Tiled => tiles(len, STRUCTURE_WINDOW),
        }
    }

    /// The tag of this layout in a cache file's name (`w64`, `t64`).
    pub fn tag(self) -> String {
        match self {
            Self::Central => format!("w{STRUCTURE_WINDOW}"),
            Self::Tiled => format!("t{STRUCTURE_WINDOW}"),
        }
    }

    /// Whether this is the default layout (manifests leave it out then).
    pub fn is_central(&self) -> bool {
        *self == Self::Central
    }
}

/// ⌈len / window⌉ windows of `window` residues (one of `len` if shorter), the first at 0, the
/// last ending at `len`, the starts evenly spaced between.
pub fn tiles(len: usize, window: usize) -> Vec<Range<usize>> {
    let w = len.min(window);
    if w == 0 || len <= w {
        return std::iter::once(0..len).collect();
    }
    let n = len.div_ceil(w);
    let span = (len - w) as f64;
    (0..n)
        .map(|k| {
            let start = (span * k as f64 / (n - 1) as f64).round() as usize;
            start..start + w
        })
        .collect()
}

/// Pooled vectors of several windows of one chain (each `[2C]`: mean then standard deviation of
/// its residues, as [`pool_residues`]) as one over all their residues, each window weighted by
/// its `lengths` entry (a residue in two windows counts twice).
pub fn combine_pooled(pooled: &[&[f32]], lengths: &[usize], channels: usize) -> Vec<f32> {
    let total: f64 = lengths.iter().map(|&n| n as f64).sum::<f64>().max(1.0);
    let mut mean = vec![0f64; channels];
    let mut square = vec![0f64; channels];
    for (p, &n) in pooled.iter().zip(lengths) {
        let share = n as f64 / total;
        for c in 0..channels {
            let (m, s) = (
                f64::from(p.get(c).copied().unwrap_or(0.0)),
                f64::from(p.get(channels + c).copied().unwrap_or(0.0)),
            );
            mean[c] += share * m;
            square[c] += share * (s * s + m * m);
        }
    }
    let mut out = Vec::with_capacity(2 * channels);
    out.extend(mean.iter().map(|&m| m as f32));
    out.extend(
        mean.iter()
            .zip(&square)
            .map(|(m, s)| (s - m * m).max(0.0).sqrt() as f32),
    );
    out
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
pub fn window_chain(chain: &Chain, range: Range<usize>) -> Chain {
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
fn part<T: Clone>(v: &[T], range: &Range<usize>) -> Vec<T> {
    v.get(range.clone()).map(<[T]>::to_vec).unwrap_or_default()
}

/// The structure tower's input for a chain (`[2C]`): pooled residue embeddings of its `windows`
/// at noise level `level` (the alignment model's [`super::model::AlignConfig::level`] and
/// `structure_windows`).
pub async fn structure_features(
    embedder: &Embedder,
    chain: &Chain,
    level: usize,
    windows: StructureWindows,
) -> Result<Vec<f32>, EmbedError> {
    let mut out = structure_features_batch(embedder, &[chain], &[level], windows, 1).await?;
    out.pop()
        .and_then(|mut chains| chains.pop())
        .ok_or_else(|| ComputeError::Read("no pooled vector came back".into()).into())
}

/// The structure tower's inputs of many chains at several noise levels:
/// `[levels.len()][chains.len()][2C]`. The chains' windows (`windows`) of one length go through
/// the network together, `batch` windows at a time, each at every level in the same forward pass
/// (the inputs are built once); a chain's windows are pooled together ([`combine_pooled`]).
pub async fn structure_features_batch(
    embedder: &Embedder,
    chains: &[&Chain],
    levels: &[usize],
    windows: StructureWindows,
    batch: usize,
) -> Result<Vec<Vec<Vec<f32>>>, EmbedError> {
    for &level in levels {
        embedder.sigma(level)?;
    }
    // Every window of every chain: (chain, residues), grouped by length.
    let mut jobs: Vec<(usize, Range<usize>)> = Vec::new();
    for (k, chain) in chains.iter().enumerate() {
        if chain.len() < 2 {
            return Err(EmbedError::TooShort {
                chain: chain.id.clone(),
                residues: chain.len(),
            });
        }
        jobs.extend(windows.ranges(chain.len()).into_iter().map(|r| (k, r)));
    }
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (j, (_, range)) in jobs.iter().enumerate() {
        by_length.entry(range.len()).or_default().push(j);
    }
    let channels = embedder.config.hidden_channels;
    // Pooled vector of each window at each level: [levels][jobs][2C].
    let mut pooled_windows = vec![vec![Vec::new(); jobs.len()]; levels.len()];
    let device = &embedder.compute.device;
    for group in by_length.values() {
        for part in group.chunks(batch.max(1)) {
            let mut inputs = Vec::with_capacity(part.len());
            for &j in part {
                let (k, range) = &jobs[j];
                let window = window_chain(chains[*k], range.clone());
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
                pooled_windows[row / part.len()][part[row % part.len()]] = values.to_vec();
            }
        }
    }
    // A chain's windows are consecutive in `jobs`.
    let mut out = vec![Vec::with_capacity(chains.len()); levels.len()];
    for (by_chain, windows) in out.iter_mut().zip(&pooled_windows) {
        let mut j = 0;
        while j < jobs.len() {
            let k = jobs[j].0;
            let end = j + jobs[j..].iter().take_while(|(c, _)| *c == k).count();
            let vectors = windows[j..end]
                .iter()
                .map(Vec::as_slice)
                .collect::<Vec<_>>();
            let lengths = jobs[j..end]
                .iter()
                .map(|(_, r)| r.len())
                .collect::<Vec<_>>();
            by_chain.push(if vectors.len() == 1 {
                vectors[0].to_vec()
            } else {
                combine_pooled(&vectors, &lengths, channels)
            });
            j = end;
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
    fn tiles_cover_the_chain_evenly() {
        assert_eq!(tiles(10, 64), std::iter::once(0..10).collect::<Vec<_>>());
        assert_eq!(tiles(64, 64), std::iter::once(0..64).collect::<Vec<_>>());
        assert_eq!(tiles(65, 64), vec![0..64, 1..65]);
        assert_eq!(tiles(200, 64), vec![0..64, 45..109, 91..155, 136..200]);
        for len in [2, 63, 64, 65, 127, 128, 129, 500] {
            let t = tiles(len, 64);
            assert_eq!(t.len(), len.div_ceil(64).max(1));
            assert_eq!(t.first().map(|r| r.start), Some(0));
            assert_eq!(t.last().map(|r| r.end), Some(len));
            let mut covered = vec![false; len];
            for r in &t {
                assert_eq!(r.len(), len.min(64));
                covered[r.clone()].iter_mut().for_each(|c| *c = true);
            }
            assert!(covered.iter().all(|&c| c), "{len}: {t:?}");
        }
        assert_eq!(
            StructureWindows::Central.ranges(200).first(),
            Some(&(68..132))
        );
        assert_eq!(StructureWindows::Tiled.ranges(200).len(), 4);
    }

    #[test]
    fn combined_windows_pool_as_all_their_residues() {
        // Two windows of 3 residues and one of 2, 2 channels: pooled together = pooled over the
        // 8 rows.
        let a = [1.0, 2.0, 3.0, 6.0, -1.0, 0.5];
        let b = [4.0, 4.0, 0.0, -2.0, 2.5, 1.0];
        let c = [7.0, 1.0, 2.0, 3.0];
        let all: Vec<f32> = a.iter().chain(&b).chain(&c).copied().collect();
        let got = combine_pooled(
            &[
                &pool_residues(&a, 2),
                &pool_residues(&b, 2),
                &pool_residues(&c, 2),
            ],
            &[3, 3, 2],
            2,
        );
        let expected = pool_residues(&all, 2);
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
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
