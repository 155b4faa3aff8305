//! Data for training and evaluating the score model: chains cleaned of C-alpha gaps and filtered
//! by length, and the deterministic draws of DSM examples (noise level, Gaussian noise, crop).
//!
//! Every draw is a pure function of a seed and the example's position (training step, or chain
//! and level for evaluation), so a resumed run sees exactly the batches it would have seen, and
//! two evaluations with the same seed agree to the bit, whatever the threading.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::score::loss::{DsmExample, perturb};

/// A chain ready for the score model: one letter and one C-alpha per residue, no gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainChain {
    /// Name (e.g. `12AS_A_4`, or `file:chain` for structure files).
    pub name: String,
    /// One-letter sequence.
    pub sequence: String,
    /// C-alpha coordinates (Å).
    pub ca: Vec<[f32; 3]>,
}

impl TrainChain {
    /// Number of residues.
    pub fn len(&self) -> usize {
        self.ca.len()
    }

    /// Whether the chain has no residue.
    pub fn is_empty(&self) -> bool {
        self.ca.is_empty()
    }
}

/// What to do with a chain whose consecutive C-alpha atoms are further apart than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapPolicy {
    /// Cut the chain at each gap and keep the pieces that pass the length filter.
    Cut,
    /// Drop the whole chain.
    Drop,
}

/// Which chains are used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainFilter {
    /// Fewest residues a (piece of a) chain may have.
    pub min_length: usize,
    /// Most residues; longer chains are dropped.
    pub max_length: usize,
    /// Largest distance (Å) between consecutive C-alpha atoms that is not a gap.
    pub max_ca_gap: f32,
    /// What to do at a gap.
    pub gap_policy: GapPolicy,
}

impl Default for ChainFilter {
    fn default() -> Self {
        Self {
            min_length: 32,
            max_length: 1000,
            max_ca_gap: 4.2,
            gap_policy: GapPolicy::Cut,
        }
    }
}

/// Counts of what a filter kept and why it dropped the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterReport {
    /// Chains offered.
    pub chains_in: usize,
    /// Chains (or pieces) kept.
    pub kept: usize,
    /// Chains that had at least one gap.
    pub with_gaps: usize,
    /// Chains or pieces below `min_length`.
    pub too_short: usize,
    /// Chains above `max_length`.
    pub too_long: usize,
}

impl ChainFilter {
    /// Apply the filter to one chain, returning what is kept (several pieces when gaps are cut).
    pub fn apply(&self, chain: TrainChain, report: &mut FilterReport) -> Vec<TrainChain> {
        report.chains_in += 1;
        if chain.len() > self.max_length {
            report.too_long += 1;
            return Vec::new();
        }
        let limit = f64::from(self.max_ca_gap);
        let breaks: Vec<usize> = (1..chain.len())
            .filter(|&i| {
                let (a, b) = (chain.ca[i - 1], chain.ca[i]);
                let d2: f64 = (0..3).map(|k| f64::from(a[k] - b[k]).powi(2)).sum();
                d2.sqrt() > limit
            })
            .collect();
        if !breaks.is_empty() {
            report.with_gaps += 1;
            if self.gap_policy == GapPolicy::Drop {
                return Vec::new();
            }
        }
        let letters: Vec<char> = chain.sequence.chars().collect();
        let mut bounds = vec![0];
        bounds.extend(&breaks);
        bounds.push(chain.len());
        let mut out = Vec::new();
        for (piece, w) in bounds.windows(2).enumerate() {
            let (start, end) = (w[0], w[1]);
            if end - start < self.min_length {
                report.too_short += 1;
                continue;
            }
            let name = if breaks.is_empty() {
                chain.name.clone()
            } else {
                format!("{}#{}", chain.name, piece + 1)
            };
            out.push(TrainChain {
                name,
                sequence: letters[start..end].iter().collect(),
                ca: chain.ca[start..end].to_vec(),
            });
        }
        report.kept += out.len();
        out
    }
}

/// SplitMix64: a well-mixed 64-bit hash of a few integers, used to derive independent seeds.
pub fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, &p| {
        let mut z = h ^ p.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn gaussian(rng: &mut StdRng, n: usize) -> Vec<[f32; 3]> {
    (0..n)
        .map(|_| {
            std::array::from_fn(|_| {
                let z: f64 = rng.sample(StandardNormal);
                z as f32
            })
        })
        .collect()
}

/// One DSM example of `chain` at noise `level` (σ = `sigmas[level]`), with fresh noise and, for
/// `crop = Some(n)` with `n` < L, independent random row and column windows of `n` residues
/// (the reference's "multi" crop). `None` (or `n` ≥ L) is the full map.
pub fn draw_example(
    chain: &TrainChain,
    level: usize,
    sigma: f32,
    crop: Option<usize>,
    rng: &mut StdRng,
) -> DsmExample {
    let l = chain.len();
    let z = gaussian(rng, l);
    let noisy = perturb(&chain.ca, &z, sigma);
    let mut example = DsmExample::full(&chain.sequence, chain.ca.clone(), noisy, level);
    if let Some(n) = crop.filter(|&n| n < l) {
        example.crop = n;
        example.row_start = rng.random_range(0..=l - n);
        example.col_start = rng.random_range(0..=l - n);
    }
    example
}

/// How the noise levels of a batch are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelSampling {
    /// Each example's level uniformly and independently (the reference).
    #[default]
    Independent,
    /// Stratified: the ladder cut into `batch_size` equal strata, one level drawn uniformly in
    /// each, so every batch spans the whole ladder evenly (same marginal, less variance, and
    /// batch statistics that always see every band).
    Stratified,
}

/// The training batch of step `step`: `batch_size` examples from `proteins` chains drawn
/// uniformly (with replacement) from `chains`, each example at a level drawn as `levels` says,
/// with its own noise and crop. The reference recipe is one protein a batch (`proteins = 1`)
/// and independent levels.
///
/// Chains shorter than the crop must have been filtered out; with `crop = None` (full maps) all
/// examples of a batch must come from one chain, so `proteins` is taken as 1.
#[allow(clippy::too_many_arguments)]
pub fn training_batch(
    chains: &[TrainChain],
    sigmas: &[f32],
    seed: u64,
    step: u64,
    batch_size: usize,
    proteins: usize,
    crop: Option<usize>,
    levels: LevelSampling,
) -> Vec<DsmExample> {
    if chains.is_empty() || sigmas.is_empty() {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(mix(&[seed, step, 1]));
    let proteins = if crop.is_none() {
        1
    } else {
        proteins.clamp(1, batch_size.max(1))
    };
    let picked: Vec<&TrainChain> = (0..proteins)
        .map(|_| &chains[rng.random_range(0..chains.len())])
        .collect();
    let n = sigmas.len();
    (0..batch_size)
        .map(|k| {
            let level = match levels {
                LevelSampling::Independent => rng.random_range(0..n),
                LevelSampling::Stratified => {
                    let u: f64 = rng.random();
                    (((k as f64 + u) * n as f64 / batch_size as f64) as usize).min(n - 1)
                }
            };
            draw_example(picked[k % proteins], level, sigmas[level], crop, &mut rng)
        })
        .collect()
}

/// The evaluation example of chain number `chain_index` at `level`: noise and crop depend only
/// on `(seed, chain_index, level)`. Chains shorter than the crop give `None`.
pub fn evaluation_example(
    chain: &TrainChain,
    chain_index: usize,
    level: usize,
    sigma: f32,
    seed: u64,
    crop: Option<usize>,
) -> Option<DsmExample> {
    if crop.is_some_and(|n| chain.len() < n) || chain.len() < 2 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(mix(&[seed, chain_index as u64, level as u64, 2]));
    Some(draw_example(chain, level, sigma, crop, &mut rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, step: f32) -> TrainChain {
        TrainChain {
            name: "t".into(),
            sequence: "A".repeat(n),
            ca: (0..n).map(|i| [i as f32 * step, 0.0, 0.0]).collect(),
        }
    }

    #[test]
    fn gaps_are_cut_or_dropped() {
        let mut c = line(100, 3.8);
        for p in &mut c.ca[60..] {
            p[0] += 5.0; // a 8.8 Å gap between residues 59 and 60
        }
        let filter = ChainFilter {
            min_length: 30,
            ..Default::default()
        };
        let mut report = FilterReport::default();
        let pieces = filter.apply(c.clone(), &mut report);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].len(), pieces[1].len()), (60, 40));
        assert_eq!(pieces[1].name, "t#2");
        assert_eq!(report.with_gaps, 1);
        let drop = ChainFilter {
            gap_policy: GapPolicy::Drop,
            ..filter.clone()
        };
        assert!(drop.apply(c, &mut report).is_empty());
        let long = ChainFilter {
            max_length: 50,
            ..filter
        };
        assert!(long.apply(line(60, 3.8), &mut report).is_empty());
        assert_eq!(report.too_long, 1);
    }

    #[test]
    fn draws_are_deterministic_and_in_range() {
        let chains = vec![line(40, 3.8), line(70, 3.8)];
        let sigmas = crate::score::inputs::noise_levels(10.0, 0.01, 61);
        let a = training_batch(
            &chains,
            &sigmas,
            7,
            3,
            8,
            1,
            Some(31),
            LevelSampling::Independent,
        );
        let b = training_batch(
            &chains,
            &sigmas,
            7,
            3,
            8,
            1,
            Some(31),
            LevelSampling::Independent,
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            training_batch(
                &chains,
                &sigmas,
                7,
                4,
                8,
                1,
                Some(31),
                LevelSampling::Independent
            )
        );
        for e in &a {
            assert_eq!(e.crop, 31);
            assert!(e.row_start + 31 <= e.clean.len() && e.col_start + 31 <= e.clean.len());
            assert!(e.level < 61);
        }
        // Stratified: one level in each of the 8 strata of the 61-level ladder.
        let s = training_batch(
            &chains,
            &sigmas,
            7,
            3,
            8,
            2,
            Some(31),
            LevelSampling::Stratified,
        );
        for (k, e) in s.iter().enumerate() {
            let stratum = (k as f64 * 61.0 / 8.0, (k + 1) as f64 * 61.0 / 8.0);
            assert!(
                (e.level as f64) >= stratum.0.floor() && (e.level as f64) < stratum.1,
                "example {k}: level {} outside {stratum:?}",
                e.level
            );
        }
        let e1 = evaluation_example(&chains[1], 1, 30, sigmas[30], 5, None).expect("long enough");
        let e2 = evaluation_example(&chains[1], 1, 30, sigmas[30], 5, None).expect("long enough");
        assert_eq!(e1, e2);
        assert_eq!(e1.crop, 70);
        assert!(evaluation_example(&chains[0], 0, 30, sigmas[30], 5, Some(64)).is_none());
    }
}
