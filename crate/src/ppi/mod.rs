//! Protein–protein interaction site prediction on the GraphPPIS benchmark, with and without the
//! score model's embeddings: data and features ([`data`]), classifiers ([`model`]) and their
//! training ([`training`], native only). `foldspace eval-ppi` runs it.

pub mod data;
#[cfg(feature = "model")]
pub mod model;
#[cfg(all(feature = "model", not(target_arch = "wasm32")))]
pub mod training;
