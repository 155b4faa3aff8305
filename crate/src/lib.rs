//! # foldspace
//!
//! Protein structure embeddings by denoising score matching (Guo et al., AAAI 2022), the same
//! code natively and in the browser. The modules, in the direction data flows:
//!
//! - [`io`]: small shared helpers (gzip, JSON lines, SHA-256, safetensors writing).
//! - [`structure`]: PDB / mmCIF (plain or gzip) and the training JSON lines, from bytes.
//! - [`compute`]: the device (CPU or wgpu/WebGPU) and the WGSL distance-map shader.
//! - [`score`]: the score model (docs/score-model.md): inputs, network, weights, data, loss,
//!   training, embedding and refinement.
//! - [`text`]: the MiniLM sentence encoder for function text, with its tokenizer.
//! - [`align`]: the tri-modal alignment model (docs/alignment.md), its training and the search
//!   bank.
//! - [`ppi`]: the interface-site benchmark, its classifiers and their training.
//! - [`quality`]: model-vs-reference scores (RMSD, TM-score, GDT_TS/HA, C-alpha lDDT).
//! - [`geometry`]: superposition and RMSD.
//! - [`profile`]: sequence profiles from a local homology search (PSI-BLAST-like).
//! - [`sequence`]: local alignment identity and a k-mer index (homology checks, nearest sequence).
//! - [`stats`]: classification metrics and correlations for the evaluations.
//! - [`export`]: NumPy `.npy` / `.npz` files built in memory.
//!
//! Without the default `model` feature only the burn-free parts (structure reading and the
//! score model's CPU inputs) are built, which is what the fuzz target uses.

pub mod export;
pub mod geometry;
pub mod io;
pub mod ppi;
pub mod profile;
pub mod quality;
pub mod score;
pub mod sequence;
pub mod stats;
pub mod structure;

#[cfg(feature = "model")]
pub mod align;
#[cfg(feature = "model")]
pub mod compute;
#[cfg(feature = "text")]
pub mod text;

/// The crate version (recorded in exported metadata).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
