//! What every subcommand shares: the backend choice, where the shipped assets and the cache are,
//! reading files with their name in the error, messages beside a progress bar, and the
//! allocator set-up of the process.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::ValueEnum;
use foldspace::compute::Compute;
use indicatif::ProgressBar;

/// Where a model runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// burn's flex backend on the CPU (pure Rust).
    Cpu,
    /// burn's wgpu backend: Vulkan, Metal or DX12, whichever the machine has.
    Wgpu,
    /// burn's LibTorch backend on the CPU (only in a build with the `tch` feature).
    #[cfg(feature = "tch")]
    Libtorch,
}

/// The device of a backend.
pub(crate) fn compute(backend: Backend) -> Result<Compute> {
    Ok(match backend {
        Backend::Cpu => Compute::cpu(),
        Backend::Wgpu => Compute::wgpu().context("setting up the wgpu backend")?,
        #[cfg(feature = "tch")]
        Backend::Libtorch => Compute::libtorch(),
    })
}

/// A file or folder shipped in the repository (`assets/…`): looked for in the working directory,
/// then in the repository this executable was built from.
pub(crate) fn shipped(relative: &str) -> Option<PathBuf> {
    [
        PathBuf::from(relative),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(relative),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The score-network weights shipped with foldspace.
pub(crate) const SHIPPED_WEIGHTS: &str = "assets/weights/foldspace-score.safetensors";

/// The weights given, else the shipped ones.
pub(crate) fn weights_path(path: Option<&Path>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => shipped(SHIPPED_WEIGHTS).ok_or_else(|| {
            anyhow!(
                "the shipped weights {SHIPPED_WEIGHTS} were not found (run from the repository, \
                 or make them with `foldspace export`); pass --weights, e.g. the published \
                 model_trgt_opt.pth or .safetensors"
            )
        }),
    }
}

/// foldspace's cache folder: `$FOLDSPACE_CACHE`, else `~/.cache/foldspace` (downloaded
/// models, cached tower outputs, evaluation caches).
pub(crate) fn cache_dir() -> PathBuf {
    std::env::var_os("FOLDSPACE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(".cache/foldspace")
        })
}

/// A whole file, with its path in the error.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Print a line above the progress bar. (`ProgressBar::println` prints nothing when the bar is
/// hidden, as it is when stderr is not a terminal; messages must never be lost.)
pub(crate) fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| eprintln!("{line}"));
}

/// Keep freed memory in the process: the score network allocates and frees the same large
/// tensors every training step, and glibc's defaults return each one to the kernel (an mmap per
/// allocation above 128 KiB, then page faults and zeroing on reuse).
///
/// `FOLDSPACE_MALLOC=default` leaves glibc's defaults (to measure the difference).
pub(crate) fn tune_allocator() {
    ALLOCATOR_TUNED.get_or_init(|| {
        if std::env::var("FOLDSPACE_MALLOC").is_ok_and(|v| v == "default") {
            return false;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes glibc's allocation thresholds; it is called before any
        // other thread exists. It returns 1 on success, 0 for a value glibc does not accept.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TOP_PAD, 256 << 20) == 1
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        false
    });
}

/// Whether [`tune_allocator`] took effect (for benchmark reports).
static ALLOCATOR_TUNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// How the allocator is set up, for benchmark reports.
pub(crate) fn allocator_note() -> &'static str {
    if ALLOCATOR_TUNED.get().copied().unwrap_or(false) {
        "glibc, mallopt: no mmap below 1 GiB, no trimming"
    } else {
        "the allocator's defaults"
    }
}
