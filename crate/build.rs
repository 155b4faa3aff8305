//! Finds the shared reference data for the browser tests, which cannot read files at run time:
//! they embed the checkpoint and golden vectors with `include_bytes!`. Sets
//! `FOLDSPACE_SHARED_DIR` and the cfg `foldspace_shared` when `$FOLDSPACE_SHARED` or `../shared`
//! (beside the repository) holds `reference/`.
fn main() {
    println!("cargo::rerun-if-env-changed=FOLDSPACE_SHARED");
    println!("cargo::rustc-check-cfg=cfg(foldspace_shared)");
    let manifest =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = std::env::var_os("FOLDSPACE_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared"));
    if dir.join("reference/model_trgt_opt.safetensors").is_file() {
        let dir = dir.canonicalize().unwrap_or(dir);
        println!("cargo::rustc-env=FOLDSPACE_SHARED_DIR={}", dir.display());
        println!("cargo::rustc-cfg=foldspace_shared");
        println!(
            "cargo::rerun-if-changed={}",
            dir.join("reference").display()
        );
    }
}
