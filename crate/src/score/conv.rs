//! The network's convolutions (stride 1, "same" padding, any dilation) as one autodiff operation
//! with its own backward pass, on matrix products, for training on burn's flex CPU backend
//! (issue 19, BENCHMARKS.md "Training speed").
//!
//! burn computes a convolution's input gradient as a transposed convolution, which burn-flex runs
//! as a direct per-element loop, and its weight gradient as another convolution with the batch in
//! the channels' place, which burn-flex runs through a channels-last copy of the input and a
//! tiled im2col: together about a third of a training step (`perf`). Here every part is a
//! product on an example's `[C, H·W]` planes, parallel over examples with rayon:
//!
//! - forward: `Y_b = W · col(X_b) + bias`, `W` as `[C_out, C_in·k²]`;
//! - weight: `dW = Σ_b dY_b · col(X_b)ᵀ`, bias: `Σ_b Σ_p dY_b`;
//! - input: `dX_b = col⁻¹(Wᵀ · dY_b)`, the k² shifted planes added back (only when the input
//!   needs a gradient: `conv_in`'s features do not).
//!
//! `col(X_b)` (im2col) is `X_b` itself for 1×1 kernels; for k×k ones it is rebuilt per example in
//! the backward pass instead of kept (it is k² times the input), with subnormal inputs flushed to
//! zero (`flush_subnormal`: they made `conv_in`'s products ten times slower). The arithmetic
//! differs from burn's `conv2d` by float32 summation order; a unit test compares the output and
//! every gradient.
//! [`conv2d_same`] returns `None` where the tensors are not float32 autodiff tensors on flex
//! without checkpointing (wgpu, inference, the browser): the caller uses `conv2d` there.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::score::fused::{f32_slice, f32_values, flex_parts};

type AutodiffFlex = Autodiff<Flex, NoCheckpointing>;

/// A stride-1 convolution with padding `dilation·⌊k/2⌋` on every side (the map keeps its size)
/// and bias, where the tensors live on burn-flex with autodiff (see the module docs); `None`
/// elsewhere, or for an even kernel, a non-square one, or shapes that do not fit together.
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`, `weight`: `[C_out, C_in, k, k]`, `bias`: `[C_out]`
/// - output: `[B, C_out, H, W]`
pub fn conv2d_same(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: &Tensor<1>,
    dilation: usize,
) -> Option<Tensor<4>> {
    let [b, c_in, h, w] = x.dims();
    let [c_out, weight_in, k, kw] = weight.dims();
    if weight_in != c_in || kw != k || k % 2 == 0 || bias.dims() != [c_out] || dilation == 0 {
        return None;
    }
    let geometry = Geometry {
        c_in,
        c_out,
        h,
        w,
        k,
        d: dilation,
    };
    let (x_flex, x_node) = flex_parts(x)?;
    let (w_flex, w_node) = flex_parts(weight)?;
    let (b_flex, b_node) = flex_parts(bias)?;
    let xs = f32_slice(&x_flex)?;
    let weights = f32_slice(&w_flex)?.to_vec();
    let biases = f32_slice(&b_flex)?.to_vec();
    if xs.len() != b * geometry.input_len() || weights.len() != c_out * geometry.col_rows() {
        return None;
    }

    let y = forward(xs, &weights, &biases, geometry);
    let y = FlexTensor::from_data(TensorData::new(y, [b, c_out, h, w]));
    let output = match SameConv
        .prepare::<NoCheckpointing>([x_node, w_node, b_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                x: x_flex,
                weights,
                geometry,
                batch: b,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<AutodiffFlex>(output))
}

/// The operation's autodiff node.
#[derive(Debug)]
struct SameConv;

/// What the backward pass needs: the input (shared, not copied) and the weights.
#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    weights: Vec<f32>,
    geometry: Geometry,
    batch: usize,
}

/// One example's convolution: channels, map size, kernel size and dilation.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    d: usize,
}

impl Geometry {
    fn hw(self) -> usize {
        self.h * self.w
    }

    /// Rows of the im2col matrix (and columns of the weight matrix): `C_in·k²`.
    fn col_rows(self) -> usize {
        self.c_in * self.k * self.k
    }

    fn input_len(self) -> usize {
        self.c_in * self.hw()
    }

    fn output_len(self) -> usize {
        self.c_out * self.hw()
    }

    /// For a kernel offset (in taps, centre 0) along a row of `n` pixels: the output pixels
    /// `lo..hi` whose input pixel `j + offset·d` lies inside the row.
    fn valid(self, tap: usize, n: usize) -> (isize, usize, usize) {
        let shift = (tap as isize - (self.k / 2) as isize) * self.d as isize;
        let lo = (-shift).clamp(0, n as isize) as usize;
        let hi = (n as isize - shift).clamp(0, n as isize) as usize;
        (shift, lo, hi.max(lo))
    }
}

/// `dst (m×n, row-major) = lhs (m×k) · rhs (k×n)`, plus `dst` when `accumulate`. An operand is
/// its values with its row and column strides. Panics if an operand's strides reach outside
/// its slice (a bug in this module: every call below passes whole planes).
struct Operand<'a> {
    values: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

fn product(
    dst: &mut [f32],
    [m, n, k]: [usize; 3],
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |o: &Operand<'_>, rows: usize, cols: usize| {
        (rows - 1) * o.row_stride + (cols - 1) * o.col_stride
    };
    assert!(dst.len() >= m * n, "product: destination too small");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        last(&lhs, m, k) < lhs.values.len() && last(&rhs, k, n) < rhs.values.len(),
        "product: operand strides outside their values"
    );
    // SAFETY: the destination holds m×n values in row-major order, and every index the product
    // reads is inside the operands' slices (checked above); the slices do not overlap (one is
    // borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A row-major matrix of `cols` columns.
fn rows(values: &[f32], cols: usize) -> Operand<'_> {
    Operand {
        values,
        row_stride: cols,
        col_stride: 1,
    }
}

/// The transpose of a row-major matrix of `cols` columns.
fn transposed(values: &[f32], cols: usize) -> Operand<'_> {
    Operand {
        values,
        row_stride: 1,
        col_stride: cols,
    }
}

/// One example's im2col matrix `[C_in·k², H·W]`: row `(c, ky, kx)` holds the input plane `c`
/// shifted by the tap's offset times the dilation, zero outside the map.
fn im2col(x: &[f32], g: Geometry, col: &mut [f32]) {
    let (hw, w) = (g.hw(), g.w);
    for (row, out) in col.chunks_exact_mut(hw).enumerate().take(g.col_rows()) {
        let (c, ky, kx) = (row / (g.k * g.k), row / g.k % g.k, row % g.k);
        let plane = &x[c * hw..][..hw];
        let (dy, y_lo, y_hi) = g.valid(ky, g.h);
        let (dx, x_lo, x_hi) = g.valid(kx, w);
        out[..y_lo * w].fill(0.0);
        out[y_hi * w..].fill(0.0);
        for i in y_lo..y_hi {
            let line = &mut out[i * w..][..w];
            line[..x_lo].fill(0.0);
            line[x_hi..].fill(0.0);
            if x_lo == x_hi {
                continue;
            }
            let source = (i as isize + dy) as usize * w;
            let from = (source as isize + x_lo as isize + dx) as usize;
            for (o, &v) in line[x_lo..x_hi]
                .iter_mut()
                .zip(&plane[from..from + (x_hi - x_lo)])
            {
                *o = flush_subnormal(v);
            }
        }
    }
}

/// `v`, or zero where it is subnormal (below `f32::MIN_POSITIVE` in magnitude).
///
/// The input features (Gaussian distance encodings) hold ~1 % subnormal values; every product
/// that reads one takes a microcode assist on x86 CPUs, which made `conv_in`'s products run at a
/// tenth of their speed (BENCHMARKS.md). Zeroing them changes no sum they enter by more than
/// 1.2e-38 times a weight.
#[inline]
fn flush_subnormal(v: f32) -> f32 {
    if v.abs() < f32::MIN_POSITIVE { 0.0 } else { v }
}

/// The adjoint of [`im2col`]: each row of `col` added into its input plane at its shift (`x`
/// holds zeros or what the sum starts from).
fn col2im(col: &[f32], g: Geometry, x: &mut [f32]) {
    let (hw, w) = (g.hw(), g.w);
    for (row, values) in col.chunks_exact(hw).enumerate().take(g.col_rows()) {
        let (c, ky, kx) = (row / (g.k * g.k), row / g.k % g.k, row % g.k);
        let plane = &mut x[c * hw..][..hw];
        let (dy, y_lo, y_hi) = g.valid(ky, g.h);
        let (dx, x_lo, x_hi) = g.valid(kx, w);
        if x_lo == x_hi {
            continue;
        }
        for i in y_lo..y_hi {
            let line = &values[i * w..][..w];
            let target = (i as isize + dy) as usize * w;
            let from = (target as isize + x_lo as isize + dx) as usize;
            for (t, &v) in plane[from..from + (x_hi - x_lo)]
                .iter_mut()
                .zip(&line[x_lo..x_hi])
            {
                *t += v;
            }
        }
    }
}

/// `Y_b = W · col(X_b) + bias` for every example.
fn forward(xs: &[f32], weights: &[f32], biases: &[f32], g: Geometry) -> Vec<f32> {
    let (hw, rows_k) = (g.hw(), g.col_rows());
    // Each output plane starts as its bias (written once: no zeroing first), then the products
    // add into it.
    let examples = xs.len() / g.input_len().max(1);
    let mut y = Vec::with_capacity(examples * g.output_len());
    for _ in 0..examples {
        for &bias in biases {
            y.extend(std::iter::repeat_n(bias, hw));
        }
    }
    y.par_chunks_mut(g.output_len())
        .zip(xs.par_chunks(g.input_len()))
        .for_each(|(out, x)| {
            with_scratch(|col, _| {
                let col = columns(x, g, col);
                product(
                    out,
                    [g.c_out, hw, rows_k],
                    rows(weights, rows_k),
                    rows(col, hw),
                    true,
                );
            })
        });
    y
}

/// An example's im2col matrix: the input itself for a 1×1 kernel, else built in `buffer`
/// (every value written: the buffer's old contents do not matter).
fn columns<'a>(x: &'a [f32], g: Geometry, buffer: &'a mut Vec<f32>) -> &'a [f32] {
    if g.k == 1 {
        return x;
    }
    let len = g.col_rows() * g.hw();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    im2col(x, g, &mut buffer[..len]);
    &buffer[..len]
}

thread_local! {
    /// Per thread, an im2col buffer and one for its gradient, kept between examples and calls
    /// (`conv_in`'s is 5 MB an example: allocating and zeroing one per example cost more than
    /// filling it).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = Default::default();
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are in use: `f` never
/// re-enters, but a thread could in principle run another example inside it).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => {
            let (col, d_col) = &mut *buffers;
            f(col, d_col)
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

impl Backward<Flex, 3> for SameConv {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let State {
            x,
            weights,
            geometry: g,
            batch,
        } = ops.state;
        let (dy, xs) = (f32_values(&grad), f32_values(&x));
        let (hw, rows_k) = (g.hw(), g.col_rows());

        // Per example: its share of dW, and dX_b when the input needs a gradient.
        let mut dx = x_node.as_ref().map(|_| vec![0.0f32; batch * g.input_len()]);
        let slots: Vec<Option<&mut [f32]>> = match dx.as_mut() {
            Some(values) => values.chunks_mut(g.input_len()).map(Some).collect(),
            None => (0..batch).map(|_| None).collect(),
        };
        let d_weight = slots
            .into_par_iter()
            .enumerate()
            .fold(
                || vec![0.0f32; g.c_out * rows_k],
                |mut d_weight, (i, dx_b)| {
                    with_scratch(|col, d_col| {
                        let dy_b = &dy[i * g.output_len()..][..g.output_len()];
                        let col_b = columns(&xs[i * g.input_len()..][..g.input_len()], g, col);
                        product(
                            &mut d_weight,
                            [g.c_out, rows_k, hw],
                            rows(dy_b, hw),
                            transposed(col_b, hw),
                            true,
                        );
                        if let Some(dx_b) = dx_b {
                            let w_t = transposed(&weights, rows_k);
                            let dy_b = rows(dy_b, hw);
                            if g.k == 1 {
                                product(dx_b, [rows_k, hw, g.c_out], w_t, dy_b, false);
                            } else {
                                let len = rows_k * hw;
                                if d_col.len() < len {
                                    d_col.resize(len, 0.0);
                                }
                                let d_col = &mut d_col[..len];
                                product(d_col, [rows_k, hw, g.c_out], w_t, dy_b, false);
                                // dx_b is zeros (allocated so): col2im adds into it.
                                col2im(d_col, g, dx_b);
                            }
                        }
                    });
                    d_weight
                },
            )
            .reduce(
                || vec![0.0f32; g.c_out * rows_k],
                |mut a, b| {
                    for (a, b) in a.iter_mut().zip(&b) {
                        *a += b;
                    }
                    a
                },
            );

        if let (Some(node), Some(dx)) = (x_node, dx) {
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(dx, [batch, g.c_in, g.h, g.w])),
            );
        }
        if let Some(node) = w_node {
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(d_weight, [g.c_out, g.c_in, g.k, g.k])),
            );
        }
        if let Some(node) = b_node {
            let d_bias: Vec<f32> = (0..g.c_out)
                .into_par_iter()
                .map(|c| {
                    (0..batch)
                        .map(|i| {
                            let plane = &dy[(i * g.c_out + c) * hw..][..hw];
                            plane.iter().map(|&v| f64::from(v)).sum::<f64>()
                        })
                        .sum::<f64>() as f32
                })
                .collect();
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(d_bias, [g.c_out])),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col and col2im are adjoint (⟨col(x), c⟩ = ⟨x, col⁻¹(c)⟩) and im2col's centre tap is
    /// the input, for dilations that reach past the map's edge.
    #[test]
    fn im2col_and_its_adjoint() {
        for (k, d, h, w) in [(3, 1, 5, 4), (3, 3, 5, 7), (3, 9, 4, 4), (5, 2, 6, 3)] {
            let g = Geometry {
                c_in: 2,
                c_out: 1,
                h,
                w,
                k,
                d,
            };
            let x: Vec<f32> = (0..g.input_len())
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let c: Vec<f32> = (0..g.col_rows() * g.hw())
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let mut col = vec![f32::NAN; c.len()];
            im2col(&x, g, &mut col);
            let mut back = vec![0.0; x.len()];
            col2im(&c, g, &mut back);
            let left: f64 = col.iter().zip(&c).map(|(a, b)| f64::from(a * b)).sum();
            let right: f64 = x.iter().zip(&back).map(|(a, b)| f64::from(a * b)).sum();
            assert!(
                (left - right).abs() < 1e-4,
                "k {k} d {d}: {left} vs {right}"
            );
            let centre = (k * k) / 2;
            assert_eq!(&col[centre * g.hw()..][..g.hw()], &x[..g.hw()]);
            // Subnormal inputs come out as zeros, the smallest normal float as itself.
            let mut tiny = x.clone();
            tiny[0] = f32::MIN_POSITIVE / 4.0;
            tiny[1] = -f32::MIN_POSITIVE;
            im2col(&tiny, g, &mut col);
            assert_eq!(col[centre * g.hw()], 0.0);
            assert_eq!(col[centre * g.hw() + 1], -f32::MIN_POSITIVE);
        }
    }
}
