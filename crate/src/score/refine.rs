//! Annealed Langevin dynamics on C-alpha coordinates with the score network
//! (docs/score-model.md §6), one step at a time so that a page can animate it and stop it.
//!
//! For level l: `α_l = ε·(σ_l/σ_last)²`, `c_l = noise_mult·√α_l`, and `n` times
//! `X ← X + (α_l/2)·g(X, σ_l) + c_l·z`, with `g` the estimated score of the coordinates
//! (the chain-rule gradient of §5 divided by σ_l). The reference runs all 61 levels × 64
//! iterations from `X ~ N(0, I)`; a [`Schedule`] may start lower, skip levels and iterate less.
//! The reference's handedness check (mirror when the pseudo-dihedral histogram fits better
//! mirrored) needs its reference histogram, which is not available here, so it is not done.

use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::compute::read_f32;
use crate::score::embed::{EmbedError, Embedder, recover_gradients};

/// Which levels to visit and how many iterations at each.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// First noise level (0 = largest σ).
    pub start_level: usize,
    /// Visit every `stride`-th level from `start_level` on; the last level is always visited.
    pub stride: usize,
    /// Iterations per level (the reference: 64).
    pub iterations: usize,
    /// Step size at the smallest σ (the reference: 1e-5).
    pub step_size: f32,
    /// Noise multiplier (the reference: 0.1).
    pub noise_mult: f32,
}

impl Schedule {
    /// The reference schedule (61 levels × 64 iterations) from `start_level`.
    pub fn reference(start_level: usize) -> Self {
        Self {
            start_level,
            stride: 1,
            iterations: 64,
            step_size: 1e-5,
            noise_mult: 0.1,
        }
    }

    /// The levels visited, in order, for a ladder of `levels` noise levels.
    pub fn levels(&self, levels: usize) -> Vec<usize> {
        if levels == 0 || self.start_level >= levels {
            return Vec::new();
        }
        let last = levels - 1;
        let mut out: Vec<usize> = (self.start_level..=last)
            .step_by(self.stride.max(1))
            .collect();
        if out.last() != Some(&last) {
            out.push(last);
        }
        out
    }

    /// Total number of network evaluations.
    pub fn total_steps(&self, levels: usize) -> usize {
        self.levels(levels).len() * self.iterations.max(1)
    }
}

/// One finished step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Steps done so far (1-based).
    pub done: usize,
    /// Of how many.
    pub total: usize,
    /// The level of this step.
    pub level: usize,
    /// Its σ.
    pub sigma: f32,
    /// Root-mean-square length of the score step `(α/2)·g` over residues, Å.
    pub drift: f32,
}

/// A Langevin run in progress.
pub struct Langevin<'a> {
    embedder: &'a Embedder,
    sequence: String,
    x: Vec<[f32; 3]>,
    schedule: Schedule,
    levels: Vec<usize>,
    done: usize,
    rng: StdRng,
}

/// `n` points drawn from N(0, I), seeded: the reference's starting cloud.
pub fn random_cloud(n: usize, seed: u64) -> Vec<[f32; 3]> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            [
                StandardNormal.sample(&mut rng),
                StandardNormal.sample(&mut rng),
                StandardNormal.sample(&mut rng),
            ]
        })
        .collect()
}

impl<'a> Langevin<'a> {
    /// Start from `x` (one C-alpha per residue of `sequence`).
    pub fn new(
        embedder: &'a Embedder,
        sequence: &str,
        x: Vec<[f32; 3]>,
        schedule: Schedule,
        seed: u64,
    ) -> Result<Self, EmbedError> {
        let levels = schedule.levels(embedder.sigmas().len());
        if levels.is_empty() {
            return Err(EmbedError::BadLevel {
                level: schedule.start_level,
                levels: embedder.sigmas().len(),
            });
        }
        if x.len() < 2 {
            return Err(EmbedError::TooShort {
                chain: String::new(),
                residues: x.len(),
            });
        }
        Ok(Self {
            embedder,
            sequence: sequence.to_string(),
            x,
            schedule,
            levels,
            done: 0,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The current coordinates.
    pub fn coords(&self) -> &[[f32; 3]] {
        &self.x
    }

    /// Total number of steps.
    pub fn total(&self) -> usize {
        self.levels.len() * self.schedule.iterations.max(1)
    }

    /// Run one step; `None` when the schedule is finished.
    pub async fn step(&mut self) -> Result<Option<Step>, EmbedError> {
        let total = self.total();
        if self.done >= total {
            return Ok(None);
        }
        let level = self.levels[self.done / self.schedule.iterations.max(1)];
        let sigmas = self.embedder.sigmas();
        let sigma = sigmas[level];
        let sigma_last = sigmas[sigmas.len() - 1];
        let alpha = self.schedule.step_size * (sigma / sigma_last).powi(2);
        let c = self.schedule.noise_mult * alpha.sqrt();
        let g = coordinate_score(self.embedder, &self.x, &self.sequence, level).await?;
        let mut drift = 0.0f64;
        for (x, g) in self.x.iter_mut().zip(g.chunks_exact(3)) {
            for k in 0..3 {
                let step = alpha / 2.0 * g[k];
                drift += (step as f64).powi(2);
                let z: f32 = StandardNormal.sample(&mut self.rng);
                x[k] += step + c * z;
            }
        }
        self.done += 1;
        Ok(Some(Step {
            done: self.done,
            total,
            level,
            sigma,
            drift: (drift / self.x.len() as f64).sqrt() as f32,
        }))
    }
}

/// The estimated score of the coordinates at a level, `[L·3]` (§5: `(g_p + g_s)/(2σ)`).
pub async fn coordinate_score(
    embedder: &Embedder,
    x: &[[f32; 3]],
    sequence: &str,
    level: usize,
) -> Result<Vec<f32>, EmbedError> {
    let l = x.len();
    let sigma = embedder
        .sigmas()
        .get(level)
        .copied()
        .ok_or(EmbedError::BadLevel {
            level,
            levels: embedder.sigmas().len(),
        })?;
    let (_, out) = embedder.forward(x, sequence, level).await?;
    let device = &embedder.compute.device;
    let flat: Vec<f32> = x.iter().flatten().copied().collect();
    let xt = Tensor::<3>::from_data(TensorData::new(flat, [1, l, 3]), device);
    let (gp, gs) = recover_gradients(out.score.reshape([1, l, l]), xt.clone(), xt);
    Ok(read_f32((gp + gs).div_scalar(2.0 * sigma)).await?)
}

/// Radius (Å) of the neighbourhood over which [`residue_plausibility`] averages ‖g_i‖: lDDT's
/// inclusion radius, fixed before it was evaluated (EVALUATION.md).
pub const PLAUSIBILITY_RADIUS: f32 = 15.0;

/// Per-residue implausibility at noise level `level`: ‖g_i‖ (1/Å), the magnitude of the score on
/// each C-alpha, or with `radius` its mean over the residues within `radius` Å
/// ([`crate::quality::neighbourhood_mean`]; the page uses [`PLAUSIBILITY_RADIUS`]). Larger is
/// less plausible.
pub async fn residue_plausibility(
    embedder: &Embedder,
    x: &[[f32; 3]],
    sequence: &str,
    level: usize,
    radius: Option<f32>,
) -> Result<Vec<f32>, EmbedError> {
    let g = coordinate_score(embedder, x, sequence, level).await?;
    let norms: Vec<f32> = g
        .chunks_exact(3)
        .map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt())
        .collect();
    Ok(match radius {
        Some(r) => crate::quality::neighbourhood_mean(x, &norms, r),
        None => norms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_levels() {
        let s = Schedule {
            start_level: 50,
            stride: 4,
            iterations: 2,
            step_size: 1e-5,
            noise_mult: 0.1,
        };
        assert_eq!(s.levels(61), vec![50, 54, 58, 60]);
        assert_eq!(s.total_steps(61), 8);
        assert_eq!(Schedule::reference(0).levels(61).len(), 61);
        assert!(Schedule::reference(61).levels(61).is_empty());
    }

    #[test]
    fn cloud_is_seeded() {
        assert_eq!(random_cloud(5, 7), random_cloud(5, 7));
        assert_ne!(random_cloud(5, 7), random_cloud(5, 8));
    }
}
