//! Model inputs (docs/score-model.md §2–§3): the noise ladder, per-residue features (one-hot and
//! positional encoding, 44 values), C-alpha distance maps as torch computes them, and the
//! 61-channel RBF distance encoding, assembled into the 149-channel pair map.
//!
//! The plain-Rust functions here are the reference (and the fuzz target's path); the burn
//! version in [`encode_inputs`] builds the same map on any device.

use crate::structure::residues::amino_acid_index;

/// Channels of the one-hot sequence encoding.
pub const ONE_HOT: usize = 20;
/// Channels of the positional encoding.
pub const POSITIONAL: usize = 24;
/// Per-residue channels: one-hot then positional encoding.
pub const RESIDUE_CHANNELS: usize = ONE_HOT + POSITIONAL;
/// Channels of the distance encoding.
pub const DISTANCE_CHANNELS: usize = 61;
/// Input channels of the score network: column residue (44), row residue (44), distance (61).
pub const INPUT_CHANNELS: usize = 2 * RESIDUE_CHANNELS + DISTANCE_CHANNELS;
/// Width of the RBF kernels (Å).
pub const RBF_SIGMA: f32 = 3.0;
/// Distances are clamped to this (Å) before encoding.
pub const MAX_DISTANCE: f32 = 100.0;
/// Above this many points on either side torch's `cdist` switches to the matmul form.
pub const CDIST_MM_THRESHOLD: usize = 25;

/// The 61 RBF anchors (Å): 0..=30 by 1, 32..=70 by 2, 73..=100 by 3.
pub fn rbf_anchors() -> [f32; DISTANCE_CHANNELS] {
    let mut out = [0.0; DISTANCE_CHANNELS];
    let values = (0..=30)
        .chain((32..=70).step_by(2))
        .chain((73..=100).step_by(3));
    for (slot, v) in out.iter_mut().zip(values) {
        *slot = v as f32;
    }
    out
}

/// The geometric noise ladder `float32(logspace(log2 max, log2 min, n, base 2))`, decreasing:
/// index 0 is `max` (10 Å), the last is `min` (0.01 Å).
pub fn noise_levels(max: f64, min: f64, n: usize) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![max as f32];
    }
    let (start, stop) = (max.log2(), min.log2());
    let step = (stop - start) / (n - 1) as f64;
    (0..n)
        .map(|k| {
            let e = if k == n - 1 {
                stop
            } else {
                start + step * k as f64
            };
            2f64.powf(e) as f32
        })
        .collect()
}

/// Per-residue features (L × 44): one-hot over `ACDEFGHIKLMNPQRSTVWY` (all zeros for `X`),
/// then 12 sines and 12 cosines of `i / 1000^(k/11)` computed in f64 as the reference does.
pub fn residue_features(sequence: &str) -> Vec<[f32; RESIDUE_CHANNELS]> {
    let n_freq = POSITIONAL / 2;
    sequence
        .chars()
        .enumerate()
        .map(|(i, letter)| {
            let mut row = [0f32; RESIDUE_CHANNELS];
            if let Some(a) = amino_acid_index(letter) {
                row[a] = 1.0;
            }
            for k in 0..n_freq {
                let div = 1000f64.powf(k as f64 / (n_freq - 1) as f64);
                let angle = i as f64 / div;
                row[ONE_HOT + k] = angle.sin() as f32;
                row[ONE_HOT + n_freq + k] = angle.cos() as f32;
            }
            row
        })
        .collect()
}

/// Distance between two points the way `torch.cdist` computes it in f32: exact differences
/// for small sets, otherwise the matmul form `sqrt(max(a·b, 1e-30))` with
/// `a = [−2x, |x|², 1]`, `b = [y, 1, |y|²]`, the dot product accumulated by fused multiply-adds
/// in order, as BLAS sgemm does (this reproduces the reference inputs bit for bit).
#[inline]
pub fn torch_distance(x: [f32; 3], y: [f32; 3], matmul_form: bool) -> f32 {
    torch_squared_distance(x, y, matmul_form).sqrt()
}

/// The value [`torch_distance`] takes the square root of (clamped to 1e-30 in the matmul form).
#[inline]
pub fn torch_squared_distance(x: [f32; 3], y: [f32; 3], matmul_form: bool) -> f32 {
    if matmul_form {
        let xn = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        let yn = y[0] * y[0] + y[1] * y[1] + y[2] * y[2];
        let a = [-2.0 * x[0], -2.0 * x[1], -2.0 * x[2], xn, 1.0];
        let b = [y[0], y[1], y[2], 1.0, yn];
        let mut acc = a[0] * b[0];
        for k in 1..5 {
            acc = a[k].mul_add(b[k], acc);
        }
        acc.max(1e-30)
    } else {
        let d = [x[0] - y[0], x[1] - y[1], x[2] - y[2]];
        d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    }
}

/// Whether torch would use the matmul form for these two point sets.
pub fn uses_matmul_form(rows: usize, cols: usize) -> bool {
    rows > CDIST_MM_THRESHOLD || cols > CDIST_MM_THRESHOLD
}

/// Distance map (rows × cols, row-major) between two sets of C-alpha coordinates, on the CPU.
pub fn distance_map(rows: &[[f32; 3]], cols: &[[f32; 3]]) -> Vec<f32> {
    let mm = uses_matmul_form(rows.len(), cols.len());
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &x in rows {
        out.extend(cols.iter().map(|&y| torch_distance(x, y, mm)));
    }
    out
}

/// The 61-channel soft binning of one distance: Gaussian RBFs (σ = 3 Å) normalised to sum 1.
pub fn rbf_encode(distance: f32, anchors: &[f32; DISTANCE_CHANNELS]) -> [f32; DISTANCE_CHANNELS] {
    let d = distance.clamp(0.0, MAX_DISTANCE);
    let mut s = [0f32; DISTANCE_CHANNELS];
    let two_var = 2.0 * RBF_SIGMA * RBF_SIGMA;
    let mut sum = 0f32;
    for (v, a) in s.iter_mut().zip(anchors) {
        *v = (-((d - a) * (d - a)) / two_var).exp();
        sum += *v;
    }
    for v in &mut s {
        *v /= sum + 1e-6;
    }
    s
}

/// The full 149 × H × W input map on the CPU (channel-major): channels 0–43 the column
/// residue's features, 44–87 the row residue's, 88–148 the distance encoding.
pub fn pair_features(
    row_features: &[[f32; RESIDUE_CHANNELS]],
    col_features: &[[f32; RESIDUE_CHANNELS]],
    distances: &[f32],
) -> Vec<f32> {
    let (h, w) = (row_features.len(), col_features.len());
    let hw = h * w;
    let anchors = rbf_anchors();
    let mut out = vec![0f32; INPUT_CHANNELS * hw];
    for (i, row) in row_features.iter().enumerate() {
        for (j, col) in col_features.iter().enumerate() {
            let p = i * w + j;
            for c in 0..RESIDUE_CHANNELS {
                out[c * hw + p] = col[c];
                out[(RESIDUE_CHANNELS + c) * hw + p] = row[c];
            }
            let enc = rbf_encode(distances.get(p).copied().unwrap_or(0.0), &anchors);
            for (k, v) in enc.iter().enumerate() {
                out[(2 * RESIDUE_CHANNELS + k) * hw + p] = *v;
            }
        }
    }
    out
}

#[cfg(feature = "model")]
pub use tensor::encode_inputs;

#[cfg(feature = "model")]
mod tensor {
    use burn::prelude::*;

    use super::*;

    /// The 149-channel input map on the device.
    ///
    /// # Shapes
    /// - `distances`: `[B, H, W]`
    /// - `row_features`: `[B, H, 44]`, `col_features`: `[B, W, 44]`
    /// - output: `[B, 149, H, W]`
    pub fn encode_inputs(
        distances: Tensor<3>,
        row_features: Tensor<3>,
        col_features: Tensor<3>,
    ) -> Tensor<4> {
        let device = distances.device();
        let [b, h, w] = distances.dims();
        let anchors =
            Tensor::<1>::from_floats(rbf_anchors(), &device).reshape([1, DISTANCE_CHANNELS, 1, 1]);
        let d = distances.clamp(0.0, MAX_DISTANCE).unsqueeze_dim::<4>(1);
        let s = (d - anchors)
            .powi_scalar(2)
            .div_scalar(2.0 * RBF_SIGMA * RBF_SIGMA)
            .neg()
            .exp();
        let denc = s.clone() / (s.sum_dim(1) + 1e-6);
        // Subnormal encodings (far from their anchor, ~1 % of them) to zero: a change below
        // 1.2e-38 that spares the CPU a microcode assist on every product that reads one.
        let denc = denc
            .clone()
            .mask_fill(denc.lower_elem(f32::MIN_POSITIVE), 0.0);
        let cols =
            col_features
                .swap_dims(1, 2)
                .unsqueeze_dim::<4>(2)
                .expand([b, RESIDUE_CHANNELS, h, w]);
        let rows =
            row_features
                .swap_dims(1, 2)
                .unsqueeze_dim::<4>(3)
                .expand([b, RESIDUE_CHANNELS, h, w]);
        Tensor::cat(vec![cols, rows, denc], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_ladder_matches_reference() {
        let s = noise_levels(10.0, 0.01, 61);
        assert_eq!(s.len(), 61);
        assert_eq!(s[0], 10.0);
        assert_eq!(s[20], 1.0);
        assert_eq!(s[40], 0.1);
        assert_eq!(s[60], 0.01);
        assert_eq!(s[30], 0.316_227_76);
        // Golden meta.json: noise index 4 has sigma 6.309573650360107 (float32).
        assert_eq!(s[4], 6.309_573_650_360_107_f64 as f32);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn residue_features_layout() {
        let f = residue_features("AYX");
        assert_eq!(f[0][0], 1.0);
        assert_eq!(f[1][19], 1.0);
        assert!(f[2][..ONE_HOT].iter().all(|&v| v == 0.0));
        // i = 0: sines 0, cosines 1.
        assert!(f[0][ONE_HOT..ONE_HOT + 12].iter().all(|&v| v == 0.0));
        assert!(f[0][ONE_HOT + 12..].iter().all(|&v| v == 1.0));
        assert_eq!(f[1][ONE_HOT], 1f64.sin() as f32);
        assert_eq!(f[1][ONE_HOT + 11], (1.0f64 / 1000.0).sin() as f32);
    }

    #[test]
    fn rbf_sums_to_one_and_peaks_at_anchor() {
        let a = rbf_anchors();
        assert_eq!(a[30], 30.0);
        assert_eq!(a[31], 32.0);
        assert_eq!(a[50], 70.0);
        assert_eq!(a[51], 73.0);
        assert_eq!(a[60], 100.0);
        let e = rbf_encode(12.0, &a);
        let sum: f32 = e.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        let argmax = e
            .iter()
            .enumerate()
            .fold(0, |best, (k, v)| if *v > e[best] { k } else { best });
        assert_eq!(argmax, 12);
        // Clamped above 100 Å.
        assert_eq!(rbf_encode(250.0, &a), rbf_encode(100.0, &a));
    }

    #[test]
    fn distance_forms() {
        let p = [[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]];
        assert_eq!(distance_map(&p, &p), vec![0.0, 5.0, 5.0, 0.0]);
        // The matmul form leaves a small positive diagonal for points far from the origin.
        let far = [50.0f32, -40.0, 30.0];
        let d = torch_distance(far, far, true);
        assert!((0.0..0.1).contains(&d));
        assert!((torch_distance([1.0, 2.0, 3.0], [4.0, 6.0, 3.0], true) - 5.0).abs() < 1e-4);
        assert!(uses_matmul_form(26, 3) && !uses_matmul_form(25, 25));
    }
}
