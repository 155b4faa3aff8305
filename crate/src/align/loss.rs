//! Contrastive losses: symmetric InfoNCE with a learnable temperature, in-batch negatives and
//! several positives where items share a label (two proteins with the same function text are
//! not each other's negatives).

use burn::prelude::*;

/// log Σ_j exp(x_ij) over the last axis, stable.
///
/// - `x`: `[B, N]` → `[B]`
pub fn log_sum_exp(x: Tensor<2>) -> Tensor<1> {
    let [b, _] = x.dims();
    let m = x.clone().max_dim(1).detach();
    ((x - m.clone()).exp().sum_dim(1).log() + m).reshape([b])
}

/// Added to the logits of non-positives to remove them from the positive sum.
const EXCLUDE: f32 = 1e4;

/// Symmetric InfoNCE between two sets of unit vectors.
///
/// Row i of `a` and row j of `b` are a positive pair where `positives[i][j] = 1` (the diagonal at
/// least); every other pair in the batch is a negative. For each row:
/// `−log(Σ_pos exp(s·a_i·b_j) / Σ_all exp(s·a_i·b_j))`, then the same for the columns; the result is
/// the mean of both directions.
///
/// - `a`, `b`: `[B, D]` (L2-normalised), `scale`: `[1]` (1/τ), `positives`: `[B, B]` of 0/1
/// - output: `[1]`
pub fn info_nce(a: Tensor<2>, b: Tensor<2>, scale: Tensor<1>, positives: Tensor<2>) -> Tensor<1> {
    let logits = a.matmul(b.transpose()) * scale.unsqueeze::<2>();
    let off = (positives.clone() - 1.0) * EXCLUDE;
    let rows = log_sum_exp(logits.clone()) - log_sum_exp(logits.clone() + off.clone());
    let t = logits.transpose();
    let columns = log_sum_exp(t.clone()) - log_sum_exp(t + off.transpose());
    (rows.mean() + columns.mean()) / 2.0
}

/// The positive mask of a batch whose items carry group labels (equal labels are positives;
/// `None` is a group of its own). `[B, B]` row-major.
pub fn positive_mask(groups: &[Option<u64>]) -> Vec<f32> {
    let n = groups.len();
    let mut m = vec![0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let same = i == j || matches!((groups[i], groups[j]), (Some(x), Some(y)) if x == y);
            m[i * n + j] = if same { 1.0 } else { 0.0 };
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::read_f32;

    fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        pollster::block_on(read_f32(t)).expect("read back")
    }

    fn device() -> Device {
        Device::flex()
    }

    fn tensor(values: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
    }

    /// The loss by hand, in f64.
    fn reference(a: &[[f64; 2]], b: &[[f64; 2]], s: f64, pos: &[f32]) -> f64 {
        let n = a.len();
        let l = |i: usize, j: usize| s * (a[i][0] * b[j][0] + a[i][1] * b[j][1]);
        let dir = |f: &dyn Fn(usize, usize) -> f64, p: &dyn Fn(usize, usize) -> bool| {
            (0..n)
                .map(|i| {
                    let all: f64 = (0..n).map(|j| f(i, j).exp()).sum();
                    let good: f64 = (0..n).filter(|&j| p(i, j)).map(|j| f(i, j).exp()).sum();
                    -(good / all).ln()
                })
                .sum::<f64>()
                / n as f64
        };
        let rows = dir(&|i, j| l(i, j), &|i, j| pos[i * n + j] > 0.5);
        let cols = dir(&|i, j| l(j, i), &|i, j| pos[j * n + i] > 0.5);
        (rows + cols) / 2.0
    }

    #[test]
    fn matches_the_formula_with_and_without_shared_positives() {
        let d = device();
        let a = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]];
        let b = [[0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]];
        let flat = |x: &[[f64; 2]; 3]| x.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>();
        for groups in [vec![None, None, None], vec![Some(1), Some(1), None]] {
            let pos = positive_mask(&groups);
            let got = info_nce(
                tensor(&flat(&a), [3, 2], &d),
                tensor(&flat(&b), [3, 2], &d),
                Tensor::from_floats([5.0], &d),
                tensor(&pos, [3, 3], &d),
            );
            let got = read(got)[0] as f64;
            let want = reference(&a, &b, 5.0, &pos);
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert_eq!(
            positive_mask(&[Some(2), None, Some(2)]),
            vec![1., 0., 1., 0., 1., 0., 1., 0., 1.]
        );
    }

    #[test]
    fn perfect_alignment_wins_as_the_temperature_falls() {
        let d = device();
        let e = [1.0, 0.0, 0.0, 1.0];
        let pos = positive_mask(&[None, None]);
        let loss = |s: f32| {
            read(info_nce(
                tensor(&e, [2, 2], &d),
                tensor(&e, [2, 2], &d),
                Tensor::from_floats([s], &d),
                tensor(&pos, [2, 2], &d),
            ))[0]
        };
        // Two orthogonal pairs: loss = ln(1 + e^{−s}).
        for s in [1.0f32, 10.0, 50.0] {
            assert!((loss(s) - (1.0 + (-s).exp()).ln()).abs() < 1e-5);
        }
        assert!(loss(50.0) < loss(10.0) && loss(10.0) < loss(1.0));
    }

    // Gradients need burn's autodiff, which the wasm32 build leaves out (the page only infers).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn gradients_match_finite_differences_and_move_the_temperature() {
        let d = device().autodiff();
        let a0 = [0.3f32, -0.2, 0.9, 0.4, -0.5, 0.1];
        let b0 = [0.2f32, 0.1, -0.3, 0.7, 0.6, -0.8];
        let pos = positive_mask(&[None, Some(1), Some(1)]);
        let eval = |a: &[f32], log_s: f32| -> f32 {
            let p = device();
            read(info_nce(
                tensor(a, [3, 2], &p),
                tensor(&b0, [3, 2], &p),
                Tensor::<1>::from_floats([log_s], &p).exp(),
                tensor(&pos, [3, 3], &p),
            ))[0]
        };
        let a = tensor(&a0, [3, 2], &d).require_grad();
        let log_s = Tensor::<1>::from_floats([1.5], &d).require_grad();
        let loss = info_nce(
            a.clone(),
            tensor(&b0, [3, 2], &d),
            log_s.clone().exp(),
            tensor(&pos, [3, 3], &d),
        );
        let grads = loss.backward();
        let ga = read(a.grad(&grads).expect("gradient of a"));
        let gs = read(log_s.grad(&grads).expect("gradient of the scale"))[0];
        let h = 1e-2f32;
        for k in 0..a0.len() {
            let (mut up, mut down) = (a0, a0);
            up[k] += h;
            down[k] -= h;
            let numeric = (eval(&up, 1.5) - eval(&down, 1.5)) / (2.0 * h);
            assert!(
                (numeric - ga[k]).abs() < 2e-3,
                "a[{k}]: {numeric} vs {}",
                ga[k]
            );
        }
        let numeric = (eval(&a0, 1.5 + h) - eval(&a0, 1.5 - h)) / (2.0 * h);
        assert!((numeric - gs).abs() < 2e-3, "scale: {numeric} vs {gs}");

        // Aligned pairs: a sharper temperature lowers the loss (negative gradient on log 1/τ).
        let e = tensor(&[1.0, 0.0, 0.0, 1.0], [2, 2], &d);
        let log_s = Tensor::<1>::from_floats([0.0], &d).require_grad();
        let pos2 = positive_mask(&[None, None]);
        let loss = info_nce(e.clone(), e, log_s.clone().exp(), tensor(&pos2, [2, 2], &d));
        let g = read(log_s.grad(&loss.backward()).expect("gradient"))[0];
        assert!(g < 0.0, "{g}");
    }
}
