//! The score model (docs/score-model.md): a conditional residual network on the C-alpha pair map
//! that predicts the score of noise-perturbed coordinates, trained by denoising score matching.
//! Data flows one way through these modules:
//!
//! - [`inputs`]: the noise ladder and the 149-channel pair input (§2–§3; also without burn).
//! - [`network`]: the network's configuration and modules (§4), on any burn device.
//! - [`weights`]: the published checkpoint and our own safetensors, checked key for key (§7).
//! - [`data`]: training chains (gap and length filters) and the deterministic DSM draws (§3).
//! - [`dataset`]: training and validation chains read from disk (chain files, structure folders).
//! - [`loss`]: the denoising score matching loss (§5).
//! - [`recipe`]: what defines a training run (stages, schedules, optimiser; the reference and ours).
//! - [`training`]: the optimiser step, data-parallel gradients, schedules, weight averaging and
//!   recalibrated batch-norm statistics, the DSM evaluation per noise band.
//!
//! Training (`recipe`, `training`, `run`, `dataset`) is native only: the page runs inference, and
//! its build leaves burn's `autodiff` and `optim` out.
//!
//! - [`fused`]: training-mode conditional batch norm and ELU as one operation on the CPU.
//! - [`run`]: a training run on disk: checkpoints, exact resume, data threads and the loop.
//! - [`embed`]: inference: score map, coordinate score, pair / residue / protein embeddings.
//! - [`refine`]: annealed Langevin dynamics on the coordinates (§6).

pub mod inputs;

#[cfg(all(feature = "model", not(target_family = "wasm")))]
pub mod conv;
#[cfg(feature = "model")]
pub mod data;
#[cfg(all(feature = "model", not(target_arch = "wasm32")))]
pub mod dataset;
#[cfg(feature = "model")]
pub mod embed;
#[cfg(all(feature = "model", not(target_family = "wasm")))]
pub mod fused;
#[cfg(feature = "model")]
pub mod loss;
#[cfg(feature = "model")]
pub mod network;
#[cfg(all(feature = "model", not(target_arch = "wasm32")))]
pub mod recipe;
#[cfg(feature = "model")]
pub mod refine;
#[cfg(all(feature = "model", not(target_arch = "wasm32")))]
pub mod run;
#[cfg(all(feature = "model", not(target_arch = "wasm32")))]
pub mod training;
#[cfg(feature = "model")]
pub mod weights;
