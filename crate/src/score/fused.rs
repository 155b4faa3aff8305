//! Conditional batch norm and ELU as one operation with its own backward pass, for training on
//! burn's flex CPU backend (issue 19, BENCHMARKS.md "Training speed").
//!
//! In training mode a block's `CBN → ELU` is, composed from tensor operations, about ten passes
//! over a `[B, C, H, W]` tensor forward and twice that backward, most of them single-threaded in
//! burn-flex (its element-wise operations have no rayon). This computes the same function in
//! three passes forward (statistics, then the output) and two backward, each parallel over
//! channels or rows with rayon, and registers one autodiff node for it.
//!
//! It applies where the tensors are float32 autodiff tensors on flex without gradient
//! checkpointing (the trainer's `Compute::autodiff` on the CPU); [`cbn_elu`] returns `None`
//! elsewhere (wgpu, inference, the browser), and the caller composes the operation from tensor
//! operations as before. The arithmetic differs from the composed form by float32 rounding
//! (statistics are accumulated in f64 here); a unit test compares the outputs, the statistics and
//! every gradient.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::DType;
use std::borrow::Cow;

use burn_flex::FlexTensor;
use rayon::prelude::*;

type AutodiffFlex = Autodiff<Flex, NoCheckpointing>;

/// What [`cbn_elu`] gives: the activation and the batch statistics it normalised with.
#[derive(Debug, Clone)]
pub struct CbnElu {
    /// `ELU((x − mean)·γ/√(var + ε) + β)`, `[B, C, H, W]`.
    pub output: Tensor<4>,
    /// The batch mean per channel over (B, H, W), `[C]`, no gradient.
    pub mean: Tensor<1>,
    /// The biased batch variance per channel, `[C]`, no gradient.
    pub var: Tensor<1>,
}

/// Training-mode conditional batch norm followed by ELU (α = 1), fused, where the tensors live on
/// burn-flex with autodiff (see the module docs); `None` elsewhere.
///
/// Gradients flow to `x`, `gamma` and `beta` (through the batch statistics too, as in the
/// composed form); `mean` and `var` carry none (the running statistics take them detached).
///
/// # Shapes
/// - `x`: `[B, C, H, W]`; `gamma`, `beta`: `[B, C]` (each example's scale and shift)
/// - output: `[B, C, H, W]`; `mean`, `var`: `[C]`
pub fn cbn_elu(x: &Tensor<4>, gamma: &Tensor<2>, beta: &Tensor<2>, epsilon: f64) -> Option<CbnElu> {
    let device = x.device();
    let [b, c, h, w] = x.dims();
    if gamma.dims() != [b, c] || beta.dims() != [b, c] || b * h * w == 0 {
        return None;
    }
    let (x_flex, x_node) = flex_parts(x)?;
    let (gamma_flex, gamma_node) = flex_parts(gamma)?;
    let (beta_flex, beta_node) = flex_parts(beta)?;
    let xs = f32_slice(&x_flex)?;
    let gammas = f32_slice(&gamma_flex)?.to_vec();
    let betas = f32_slice(&beta_flex)?.to_vec();

    let shape = Shape { b, c, hw: h * w };
    let (mean, var) = channel_statistics(xs, shape);
    let rstd: Vec<f32> = var
        .iter()
        .map(|&v| (1.0 / (v + epsilon).sqrt()) as f32)
        .collect();
    let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let var: Vec<f32> = var.iter().map(|&v| v as f32).collect();
    let y = forward(xs, &gammas, &betas, &mean, &rstd, shape);
    let y = FlexTensor::from_data(TensorData::new(y, [b, c, h, w]));

    let output = match FusedCbnElu
        .prepare::<NoCheckpointing>([x_node, gamma_node, beta_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = State {
                x: x_flex,
                y: y.clone(),
                gamma: gammas,
                mean: mean.clone(),
                rstd,
                shape,
                dims: [b, c, h, w],
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(CbnElu {
        output: Tensor::from_primitive::<AutodiffFlex>(output),
        mean: Tensor::from_data(TensorData::new(mean, [c]), &device),
        var: Tensor::from_data(TensorData::new(var, [c]), &device),
    })
}

/// The operation's autodiff node.
#[derive(Debug)]
struct FusedCbnElu;

/// What the backward pass needs: the input and output (shared, not copied) and the per-channel
/// and per-example factors.
#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    y: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    shape: Shape,
    dims: [usize; 4],
}

/// `[B, C, H·W]`.
#[derive(Debug, Clone, Copy)]
struct Shape {
    b: usize,
    c: usize,
    hw: usize,
}

impl Backward<Flex, 3> for FusedCbnElu {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let (g, xs, ys) = (
            f32_values(&grad),
            f32_values(&state.x),
            f32_values(&state.y),
        );
        let (b, c) = (state.shape.b, state.shape.c);
        let (d_gamma, d_beta) = affine_gradients(&g, &xs, &ys, &state);
        if let Some(node) = x_node {
            let dx = input_gradient(&g, &xs, &ys, &state, &d_gamma, &d_beta);
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(dx, state.dims)),
            );
        }
        if let Some(node) = gamma_node {
            let dg: Vec<f32> = d_gamma.iter().map(|&v| v as f32).collect();
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dg, [b, c])));
        }
        if let Some(node) = beta_node {
            let db: Vec<f32> = d_beta.iter().map(|&v| v as f32).collect();
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [b, c])));
        }
    }
}

/// A tensor's flex primitive (made contiguous) and its autodiff node, where it is an autodiff
/// tensor on flex without checkpointing; `None` on any other backend.
pub(crate) fn flex_parts<const D: usize>(t: &Tensor<D>) -> Option<(FlexTensor, NodeGuard)> {
    let (primitive, node) = t
        .clone()
        .try_into_primitive::<AutodiffFlex>()
        .ok()?
        .into_parts();
    Some((primitive.to_contiguous(), node))
}

/// A tensor's values as float32: borrowed when it is contiguous float32 (every tensor this module
/// saves, and the gradients flex computes in float32 training), else copied and converted.
pub(crate) fn f32_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match f32_slice(t) {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(t.clone().into_data().iter::<f32>().collect()),
    }
}

/// A contiguous float32 tensor's values.
pub(crate) fn f32_slice(t: &FlexTensor) -> Option<&[f32]> {
    if t.dtype() != DType::F32 {
        return None;
    }
    t.as_slice::<f32>()
}

/// Independent partial sums per row: float sums in this many lanes, added in f64 at the end,
/// so the compiler can vectorise the loops (a single running sum is one long dependency chain).
const LANES: usize = 16;

/// A row's sum from its [`LANES`] float32 partial sums and the remainder's, added up in f64 (each
/// lane sums at most ⌈n / 16⌉ values: 61 for a 31² crop, 1,600 for a 160² map).
#[inline(always)]
fn lane_sum(lanes: [f32; LANES], tail: f32) -> f64 {
    lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(tail)
}

/// Per channel, the mean and the biased variance over (B, H·W), two-pass.
fn channel_statistics(xs: &[f32], s: Shape) -> (Vec<f64>, Vec<f64>) {
    let n = (s.b * s.hw) as f64;
    (0..s.c)
        .into_par_iter()
        .map(|ch| {
            let rows = || (0..s.b).map(move |bi| &xs[(bi * s.c + ch) * s.hw..][..s.hw]);
            let mean = rows()
                .map(|row| {
                    let mut acc = [0.0f32; LANES];
                    let chunks = row.chunks_exact(LANES);
                    let tail = chunks.remainder().iter().sum::<f32>();
                    for chunk in chunks {
                        for (a, &v) in acc.iter_mut().zip(chunk) {
                            *a += v;
                        }
                    }
                    lane_sum(acc, tail)
                })
                .sum::<f64>()
                / n;
            let m = mean as f32;
            let var = rows()
                .map(|row| {
                    let mut acc = [0.0f32; LANES];
                    let chunks = row.chunks_exact(LANES);
                    let tail = chunks.remainder().iter().map(|&v| (v - m) * (v - m)).sum();
                    for chunk in chunks {
                        for (a, &v) in acc.iter_mut().zip(chunk) {
                            *a += (v - m) * (v - m);
                        }
                    }
                    lane_sum(acc, tail)
                })
                .sum::<f64>()
                / n;
            (mean, var)
        })
        .unzip()
}

/// `exp(z)` for `z ≤ 0` (Cephes' `expf`: `z = n·ln 2 + r`, a degree-7 polynomial in `r`, then
/// `2ⁿ` built in the exponent bits), relative error below 4e-7 (a test checks it), and below
/// −87 the smallest normal float. Branch-free arithmetic, so the compiler vectorises the loops
/// that call it; the C library's scalar `expm1f` took 11 % of a training step (`perf`).
#[inline]
fn exp_nonpositive(z: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding 1.5·2²³ rounds to an integer in the low mantissa bits (round to nearest).
    const ROUND: f32 = 12_582_912.0;
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let z = if z < -87.0 { -87.0 } else { z };
    let t = z * LOG2E + ROUND;
    let n = t - ROUND;
    let r = z - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n = t's low mantissa bits minus ROUND's; 2ⁿ = (n + 127) in the exponent field.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    e * f32::from_bits(n_bits << 23)
}

/// ELU(α = 1): `z` above zero, `exp(z) − 1` at or below (burn's form; branch-free).
#[inline]
fn elu(z: f32) -> f32 {
    let e = exp_nonpositive(if z < 0.0 { z } else { 0.0 }) - 1.0;
    if z > 0.0 { z } else { e }
}

/// `y = ELU(x·a + s)` per row `(b, c)` with `a = γ_bc·rstd_c`, `s = β_bc − mean_c·a`.
fn forward(
    xs: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    rstd: &[f32],
    s: Shape,
) -> Vec<f32> {
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(s.hw)
        .zip(xs.par_chunks(s.hw))
        .enumerate()
        .for_each(|(row, (out, x))| {
            let ch = row % s.c;
            let a = gamma[row] * rstd[ch];
            let shift = beta[row] - mean[ch] * a;
            for (o, &v) in out.iter_mut().zip(x) {
                *o = elu(v * a + shift);
            }
        });
    y
}

/// The gradient at the ELU's input from the gradient at its output, written with the output:
/// 1 above zero, `exp(z) = y + 1` at or below.
#[inline]
fn through_elu(g: f32, y: f32) -> f32 {
    if y > 0.0 { g } else { g * (y + 1.0) }
}

/// Per row `(b, c)`: `dβ = Σ g_z` and `dγ = Σ g_z·x̂` over the row's pixels (f64 sums).
fn affine_gradients(g: &[f32], xs: &[f32], ys: &[f32], st: &State) -> (Vec<f64>, Vec<f64>) {
    let s = st.shape;
    let (d_beta, d_gamma): (Vec<f64>, Vec<f64>) = g
        .par_chunks(s.hw)
        .zip(xs.par_chunks(s.hw))
        .zip(ys.par_chunks(s.hw))
        .enumerate()
        .map(|(row, ((g, x), y))| {
            let ch = row % s.c;
            let (m, r) = (st.mean[ch], st.rstd[ch]);
            let (mut sum, mut dot) = ([0.0f32; LANES], [0.0f32; LANES]);
            let (gc, xc, yc) = (
                g.chunks_exact(LANES),
                x.chunks_exact(LANES),
                y.chunks_exact(LANES),
            );
            let (mut sum_tail, mut dot_tail) = (0.0f32, 0.0f32);
            for ((&g, &x), &y) in gc
                .remainder()
                .iter()
                .zip(xc.remainder())
                .zip(yc.remainder())
            {
                let gz = through_elu(g, y);
                sum_tail += gz;
                dot_tail += gz * ((x - m) * r);
            }
            for ((g, x), y) in gc.zip(xc).zip(yc) {
                for l in 0..LANES {
                    let gz = through_elu(g[l], y[l]);
                    sum[l] += gz;
                    dot[l] += gz * ((x[l] - m) * r);
                }
            }
            (lane_sum(sum, sum_tail), lane_sum(dot, dot_tail))
        })
        .unzip();
    (d_gamma, d_beta)
}

/// `dx = rstd·(γ·g_z − S1/N − x̂·S2/N)` with, per channel, `S1 = Σ_b γ·dβ` and `S2 = Σ_b γ·dγ`
/// (the batch statistics' part of the chain rule), `N = B·H·W`.
fn input_gradient(
    g: &[f32],
    xs: &[f32],
    ys: &[f32],
    st: &State,
    d_gamma: &[f64],
    d_beta: &[f64],
) -> Vec<f32> {
    let s = st.shape;
    let n = (s.b * s.hw) as f64;
    let mut s1 = vec![0.0f64; s.c];
    let mut s2 = vec![0.0f64; s.c];
    for row in 0..s.b * s.c {
        let ch = row % s.c;
        s1[ch] += f64::from(st.gamma[row]) * d_beta[row];
        s2[ch] += f64::from(st.gamma[row]) * d_gamma[row];
    }
    let mut dx = vec![0.0f32; xs.len()];
    dx.par_chunks_mut(s.hw)
        .zip(g.par_chunks(s.hw))
        .zip(xs.par_chunks(s.hw))
        .zip(ys.par_chunks(s.hw))
        .enumerate()
        .for_each(|(row, (((out, g), x), y))| {
            let ch = row % s.c;
            let (m, r, gamma) = (st.mean[ch], st.rstd[ch], st.gamma[row]);
            let mean_term = (s1[ch] / n) as f32;
            let slope = (s2[ch] / n) as f32;
            for (((o, &g), &x), &y) in out.iter_mut().zip(g).zip(x).zip(y) {
                let xhat = (x - m) * r;
                *o = r * (gamma * through_elu(g, y) - mean_term - xhat * slope);
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable `exp` is within 4e-7 relative of f64's over ELU's whole negative range.
    #[test]
    fn exp_is_accurate_below_zero() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let z = (-87.0 * f64::from(i) / 200_000.0) as f32;
            let exact = f64::from(z).exp();
            let ours = f64::from(exp_nonpositive(z));
            worst = worst.max(((ours - exact) / exact).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) > 0.0 && exp_nonpositive(-1000.0) < 1e-37);
        assert_eq!(elu(2.5), 2.5);
        assert!((elu(-1e-3) - (-1e-3f32).exp_m1()).abs() < 1e-7);
    }
}
