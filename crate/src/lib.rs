//! # foldspace
//!
//! Protein structure embeddings by denoising score matching (Guo et al., AAAI 2022), the same
//! code natively and in the browser:
//!
//! - [`structure`]: PDB / mmCIF (plain or gzip) and the training JSON lines, from bytes.
//! - [`features`]: the 149-channel pair input, the noise ladder.
//! - [`model`]: the conditional residual score network (burn, any device).
//! - [`weights`]: published and our own weights, checked key for key.
//! - [`compute`]: the device (CPU or wgpu/WebGPU) and the WGSL distance-map shader.
//! - [`embed`]: score map, coordinate gradient, pair / residue / protein embeddings.
//! - [`loss`]: the DSM training loss.
//! - [`refine`]: annealed Langevin dynamics on the coordinates.
//! - [`geometry`]: superposition and RMSD.
//! - [`quality`]: model-vs-reference scores (RMSD, TM-score, GDT_TS/HA, C-alpha lDDT).
//! - [`ppi`]: the interface-site benchmark, its classifiers and their training.
//! - [`profile`]: sequence profiles from a local homology search (PSI-BLAST-like).
//! - [`sequence`]: local alignment identity and a k-mer index (homology checks, nearest sequence).
//! - [`stats`]: classification metrics and correlations for the evaluations.
//! - [`data`]: training chains (gap and length filters) and deterministic DSM draws.
//! - [`training`]: the optimiser step, weight averaging, DSM evaluation per σ band.
//! - [`text`]: the MiniLM sentence encoder for function text, with its tokenizer.
//!
//! Without the default `model` feature only the burn-free parts (structure reading and the CPU
//! features) are built, which is what the fuzz target uses.

pub mod export;
pub mod features;
pub mod geometry;
pub mod ppi;
pub mod profile;
pub mod quality;
pub mod sequence;
pub mod stats;
pub mod structure;

#[cfg(feature = "model")]
pub mod align;
#[cfg(feature = "model")]
pub mod compute;
#[cfg(feature = "model")]
pub mod data;
#[cfg(feature = "model")]
pub mod embed;
#[cfg(feature = "model")]
pub mod loss;
#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "model")]
pub mod refine;
#[cfg(feature = "text")]
pub mod text;
#[cfg(feature = "model")]
pub mod training;
#[cfg(feature = "model")]
pub mod weights;

/// The crate version (recorded in exported metadata).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
