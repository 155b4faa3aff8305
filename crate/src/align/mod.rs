//! Tri-modal alignment of sequence, structure and function text (Align-Pro, MISSION.md "Model 2").
//!
//! - [`structure`]: the structure tower's input, pooled from the frozen score network.
//! - [`text`]: function descriptions built from GO terms and EC numbers, with varied phrasings.
//! - [`data`]: the function annotations, the GO term table and Swiss-Prot pairs.
//! - [`model`]: the sequence encoder, the projection heads and the shared space.
//! - [`loss`]: symmetric InfoNCE with a learnable temperature.
//! - [`search`]: the search bank (f16 vectors + metadata) and ranking.
//! - [`metrics`]: retrieval (R@k, MAP) and Fmax.

pub mod data;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod search;
pub mod structure;
pub mod text;
pub mod train;
