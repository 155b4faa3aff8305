//! Tri-modal alignment of sequence, structure and function text (docs/alignment.md).
//!
//! - [`structure`]: the structure tower's input, pooled from the frozen score network.
//! - [`descriptions`]: function descriptions built from GO terms and EC numbers, with varied phrasings.
//! - [`data`]: the function annotations, the GO term table and Swiss-Prot pairs.
//! - [`model`]: the sequence encoder, the projection heads, the shared space and the trained
//!   model with its manifest.
//! - [`loss`]: symmetric InfoNCE with a learnable temperature.
//! - [`search`]: the search bank (f16 vectors + metadata) and ranking.
//! - [`query`]: the loaded assets and the query vectors both shells use (search, likely function).
//! - [`dataset`]: the training set assembled from the corpus (native only).
//! - [`training`]: contrastive training on mixed batches, stage 2 included (native only).
//! - [`metrics`]: retrieval (R@k, MAP), Fmax and a neighbour probe of raw vectors.
//! - [`evaluation`]: the function predictors and baselines that `eval-retrieval` scores.

pub mod collection;
pub mod data;
#[cfg(not(target_arch = "wasm32"))]
pub mod dataset;
pub mod descriptions;
pub mod evaluation;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod query;
pub mod search;
pub mod structure;
#[cfg(not(target_arch = "wasm32"))]
pub mod training;
