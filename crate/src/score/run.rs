//! A training run of the score model on disk (what `foldspace pretrain` drives): the run
//! directory (config, metrics, validation log, checkpoints), fresh start and exact resume, the
//! data threads, and the loop around [`train_step`] — weight average, validation, recalibrated
//! checkpoints, pruning, and a clean stop on request. Native only (files and threads).
//!
//! A run directory holds `config.json` (the [`TrainConfig`]), `metrics.csv` (one row a step),
//! `val.jsonl` (one validation report a line) and `checkpoints/step-N/` (`model.safetensors`,
//! `ema.safetensors` with recalibrated statistics, `optimizer.bpk`, `state.json`), with
//! `checkpoints/LATEST` naming the newest. Batches are pure functions of (seed, step), so no RNG
//! state is saved and a resumed run continues bit for bit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use burn::optim::{AdamConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use crate::compute::{Compute, ComputeError};
use crate::io::sha256_hex;
use crate::score::data::{TrainChain, evaluation_example, mix, training_batch};
use crate::score::dataset::Dataset;
use crate::score::loss::{DsmExample, LossError};
use crate::score::network::ScoreNet;
use crate::score::recipe::{RecipeError, Stage, TrainConfig};
use crate::score::training::{
    DsmReport, Ema, EvalItem, RecalibrateError, StepReport, evaluate_items, recalibrate_norms,
    report, train_step,
};
use crate::score::weights::{
    Precision, WeightMap, WeightsError, load_model, to_safetensors_with, weight_map,
};

/// Why a run could not start, continue or save.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file of the run could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (with the path).
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file of the run is not what it should be.
    #[error("{what}: {source}")]
    Json {
        /// Which file.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The configuration cannot train.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// Weights that do not fit the configuration.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A training or evaluation batch failed.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// Batch-norm recalibration failed.
    #[error(transparent)]
    Recalibrate(#[from] RecalibrateError),
    /// The device failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// The optimiser state could not be saved or loaded.
    #[error("{0}")]
    Optimizer(String),
    /// The run cannot go on as asked (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Json { what, source }
}

/// Write a file through a temporary beside it, so a crash never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}

/// Trainer state beside each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps done.
    pub step: u64,
    /// Wall seconds the run has trained, over all its sessions.
    pub elapsed_s: f64,
    /// Training chains after filtering.
    pub train_chains: usize,
    /// Validation chains after filtering.
    pub val_chains: usize,
    /// SHA-256 of the run's `config.json` (a resumed run refuses a changed config).
    pub config_sha256: String,
}

impl CheckpointState {
    /// Write the state file of a checkpoint directory.
    pub fn write(&self, checkpoint: &Path) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(self).map_err(json("the checkpoint state"))?;
        write_atomic(&checkpoint.join("state.json"), text.as_bytes())
    }

    /// The state file of a checkpoint directory.
    pub fn read(checkpoint: &Path) -> Result<Self, RunError> {
        let path = checkpoint.join("state.json");
        let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(json(format!("{}", path.display())))
    }
}

const LATEST: &str = "LATEST";

/// The files of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (nothing is read or created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `metrics.csv`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// `val.jsonl`.
    pub fn val_path(&self) -> PathBuf {
        self.root.join("val.jsonl")
    }

    /// The checkpoint directory of step `step`.
    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("step-{step:08}"))
    }

    /// Whether the directory already holds a run (a checkpoint).
    pub fn has_run(&self) -> bool {
        self.root.join("checkpoints").join(LATEST).exists()
    }

    /// Start a new run: refuse a directory that holds one, write `config` (validated).
    pub fn create(&self, config: &TrainConfig) -> Result<(), RunError> {
        if self.has_run() {
            return Err(RunError::Refused(format!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                self.root.display()
            )));
        }
        config.validate()?;
        std::fs::create_dir_all(&self.root)
            .map_err(io(format!("creating {}", self.root.display())))?;
        let text = serde_json::to_string_pretty(config).map_err(json("the training config"))?;
        write_atomic(&self.config_path(), text.as_bytes())
    }

    /// The run's configuration (to resume it).
    pub fn read_config(&self) -> Result<TrainConfig, RunError> {
        let path = self.config_path();
        let bytes =
            std::fs::read(&path).map_err(io(format!("--resume: reading {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(json(format!("{}", path.display())))
    }

    /// SHA-256 of `config.json` as it is on disk.
    pub fn config_sha256(&self) -> Result<String, RunError> {
        let path = self.config_path();
        let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        Ok(sha256_hex(&bytes))
    }

    /// The newest checkpoint directory (named by `checkpoints/LATEST`).
    pub fn latest_checkpoint(&self) -> Result<PathBuf, RunError> {
        let latest = self.root.join("checkpoints").join(LATEST);
        let name = std::fs::read_to_string(&latest).map_err(io(format!(
            "--resume: {} not found (no checkpoint in this run directory)",
            latest.display()
        )))?;
        Ok(self.root.join("checkpoints").join(name.trim()))
    }

    /// A run directory's newest checkpoint, or `path` itself if it is a checkpoint directory.
    pub fn checkpoint_of(path: &Path) -> Result<PathBuf, RunError> {
        if path.join("state.json").is_file() {
            Ok(path.to_path_buf())
        } else {
            Self::new(path).latest_checkpoint()
        }
    }

    /// Start this (new) run from another run's checkpoint under a new configuration `config`
    /// (same network; e.g. other crops for the rest of a stage): the checkpoint's weights,
    /// weight average, optimiser state and step are copied, with the source run's logs up to that
    /// step, and `fork.json` says where they came from. The run then continues as a resumed one.
    /// Returns the step it starts from.
    pub fn fork(&self, checkpoint: &Path, config: &TrainConfig) -> Result<u64, RunError> {
        let state = CheckpointState::read(checkpoint)?;
        let source = checkpoint
            .parent()
            .and_then(Path::parent)
            .map(Self::new)
            .ok_or_else(|| {
                RunError::Refused(format!(
                    "{} is not inside a run directory",
                    checkpoint.display()
                ))
            })?;
        let before = source.read_config()?;
        if before.model != config.model {
            return Err(RunError::Refused(
                "a fork keeps the network: its config's \"model\" must equal the source run's"
                    .into(),
            ));
        }
        if config.total_steps() <= state.step {
            return Err(RunError::Refused(format!(
                "the new config ends at step {}, not after the checkpoint's step {}",
                config.total_steps(),
                state.step
            )));
        }
        self.create(config)?;
        let target = self.checkpoint_dir(state.step);
        std::fs::create_dir_all(&target).map_err(io(format!("creating {}", target.display())))?;
        for file in ["model.safetensors", "ema.safetensors", "optimizer.bpk"] {
            let from = checkpoint.join(file);
            std::fs::copy(&from, target.join(file))
                .map_err(io(format!("copying {}", from.display())))?;
        }
        let forked = CheckpointState {
            config_sha256: self.config_sha256()?,
            ..state.clone()
        };
        forked.write(&target)?;
        for (from, to) in [
            (source.metrics_path(), self.metrics_path()),
            (source.val_path(), self.val_path()),
        ] {
            if from.is_file() {
                std::fs::copy(&from, &to).map_err(io(format!("copying {}", from.display())))?;
            }
        }
        self.truncate_logs(state.step)?;
        self.mark_latest(&target)?;
        let record = serde_json::json!({
            "from": source.root.display().to_string(),
            "checkpoint": checkpoint.display().to_string(),
            "step": state.step,
            "source_config_sha256": state.config_sha256,
        });
        write_atomic(
            &self.root.join("fork.json"),
            format!("{record:#}\n").as_bytes(),
        )?;
        Ok(state.step)
    }

    /// Name `checkpoint` (a directory of `checkpoints/`) in `checkpoints/LATEST`.
    fn mark_latest(&self, checkpoint: &Path) -> Result<(), RunError> {
        let name = checkpoint
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        write_atomic(&self.root.join("checkpoints").join(LATEST), name.as_bytes())
    }

    /// Remove all but the newest `keep` checkpoints (by step; 0 keeps all).
    pub fn prune_checkpoints(&self, keep: usize) -> Result<(), RunError> {
        if keep == 0 {
            return Ok(());
        }
        let root = self.root.join("checkpoints");
        let listing = format!("listing {}", root.display());
        let mut steps: Vec<PathBuf> = std::fs::read_dir(&root)
            .map_err(io(listing))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("step-"))
            })
            .collect();
        steps.sort();
        let excess = steps.len().saturating_sub(keep);
        for old in &steps[..excess] {
            std::fs::remove_dir_all(old).map_err(io(format!("removing {}", old.display())))?;
        }
        Ok(())
    }

    /// Keep only log rows up to `step` in `metrics.csv` and `val.jsonl` (a run that crashed
    /// after its last checkpoint wrote rows that the resumed run will write again).
    pub fn truncate_logs(&self, step: u64) -> Result<(), RunError> {
        truncate_log(&self.metrics_path(), step)?;
        truncate_log(&self.val_path(), step)
    }
}

/// Keep only log rows up to `step`: CSV rows by their first field, JSON lines by `step`.
fn truncate_log(path: &Path, step: u64) -> Result<(), RunError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let row_step = |line: &str| -> Option<u64> {
        if line.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()?
                .get("step")?
                .as_u64()
        } else {
            line.split(',').next()?.trim().parse().ok()
        }
    };
    let mut body: String = text
        .lines()
        .filter(|line| row_step(line).is_none_or(|s| s <= step))
        .collect::<Vec<_>>()
        .join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    write_atomic(path, body.as_bytes())
}

/// Read the weights of a checkpoint file.
pub fn read_weights(path: &Path) -> Result<WeightMap, RunError> {
    Ok(WeightMap::from_file(path)?.0)
}

/// The chains a stage draws from: long enough for its largest crop, not above its length limit.
pub fn stage_pool(stage: &Stage, chains: &[TrainChain]) -> Vec<TrainChain> {
    let crop = stage.longest_crop();
    chains
        .iter()
        .filter(|t| {
            crop.is_none_or(|c| t.len() >= c) && stage.max_length.is_none_or(|m| t.len() <= m)
        })
        .cloned()
        .collect()
}

/// `weights` with batch-norm statistics recalibrated on `batches` fixed training batches of the
/// first stage's shape from `pool` (their own seed stream: the same batches at every call), each
/// split over the run's shards as training splits it.
pub fn recalibrated(
    config: &TrainConfig,
    weights: &WeightMap,
    pool: &[TrainChain],
    compute: &Compute,
    batches: usize,
) -> Result<WeightMap, RunError> {
    let stage = config
        .stages
        .first()
        .ok_or_else(|| RunError::Refused("the run has no stage".into()))?;
    let sigmas = config.model.sigmas();
    let seed = mix(&[config.seed, 0x5ca1_ab1e]);
    let batches: Vec<Vec<DsmExample>> = (1..=batches as u64)
        .map(|i| {
            let shape = stage.shape(seed, i);
            training_batch(
                pool,
                &sigmas,
                seed,
                i,
                shape.batch_size,
                shape.proteins,
                shape.crop,
                stage.levels,
            )
        })
        .collect();
    Ok(pollster::block_on(recalibrate_norms(
        weights,
        &config.model,
        compute,
        &sigmas,
        &batches,
        config.shards,
    ))?)
}

/// The evaluation examples of `chains` at `levels` (one per chain and level; chains too short
/// for `crop` give none), in chain order.
pub fn eval_items<'a>(
    chains: impl Iterator<Item = &'a TrainChain>,
    levels: &[usize],
    sigmas: &[f32],
    seed: u64,
    crop: Option<usize>,
) -> Vec<EvalItem> {
    let mut items = Vec::new();
    for (index, chain) in chains.enumerate() {
        for &level in levels {
            if let Some(example) =
                evaluation_example(chain, index, level, sigmas[level], seed, crop)
            {
                items.push(EvalItem {
                    chain: index,
                    example,
                });
            }
        }
    }
    items
}

/// How a session of [`TrainingRun::train`] runs.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Threads drawing batches ahead of the step.
    pub workers: usize,
    /// Stop after this many steps in this session (`None`: at the end of the run).
    pub stop_after: Option<u64>,
    /// Checkpoints kept on disk (0: all).
    pub keep_checkpoints: usize,
}

/// What a session reports while it trains.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// A step is done.
    Step {
        /// The step (1-based).
        step: u64,
        /// Its report (loss before the update, gradient norm, clipping).
        report: StepReport,
        /// Running average of the loss over this session (weight 0.02 a step).
        average_loss: f64,
    },
    /// The weight average was validated (`val.jsonl` has the line).
    Validated {
        /// The step.
        step: u64,
        /// The report.
        report: &'a DsmReport,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Its directory.
        dir: &'a Path,
    },
    /// The stop request was honoured: the step was saved and the session ends.
    Interrupted {
        /// The step saved.
        step: u64,
    },
}

/// A run in memory: the network, the optimiser, the weight average and where it stands.
pub struct TrainingRun {
    /// The run's configuration.
    pub config: TrainConfig,
    /// `None` only while a step holds it.
    model: Option<ScoreNet>,
    optimizer: ModuleOptimizer,
    /// The weight average (its running statistics are the raw model's until recalibrated).
    pub ema: Ema,
    /// Steps done.
    pub step: u64,
    /// Wall seconds trained, over all sessions.
    pub elapsed_s: f64,
    /// SHA-256 of the run's `config.json`.
    config_sha256: String,
}

/// The run's optimiser (Adam with the config's β and ε), with no state yet.
pub fn new_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(config.adam[0] as f32)
        .with_beta_2(config.adam[1] as f32)
        .with_epsilon(config.adam[2] as f32)
        .init()
}

impl TrainingRun {
    /// A fresh network initialised from the config's seed on `compute`'s device (an autodiff
    /// one, [`Compute::autodiff`]), taken through the weight map so that parameter ids are
    /// stable. `dir` is the run's directory (its `config.json` written by [`RunDir::create`]).
    pub fn fresh(dir: &RunDir, config: TrainConfig, compute: &Compute) -> Result<Self, RunError> {
        let config_sha256 = dir.config_sha256()?;
        compute.device.seed(config.seed);
        let fresh = config.model.init(&compute.device);
        let map = pollster::block_on(weight_map(&fresh, &config.model, 0))?;
        let model = load_model(&map, &config.model, &compute.device)?;
        Ok(Self {
            optimizer: new_optimizer(&config),
            ema: Ema::new(config.ema_decay, map),
            config,
            model: Some(model),
            step: 0,
            elapsed_s: 0.0,
            config_sha256,
        })
    }

    /// The run of `dir` at its newest checkpoint, on `compute`'s (autodiff) device; its logs are
    /// cut back to that step. Refuses a `config.json` changed since the checkpoint.
    pub fn resume(dir: &RunDir, compute: &Compute) -> Result<(Self, PathBuf), RunError> {
        let config = dir.read_config()?;
        let config_sha256 = dir.config_sha256()?;
        let checkpoint = dir.latest_checkpoint()?;
        let state = CheckpointState::read(&checkpoint)?;
        if state.config_sha256 != config_sha256 {
            return Err(RunError::Refused(format!(
                "{} changed since the checkpoint was written; restore it to resume",
                dir.config_path().display()
            )));
        }
        let model_map = read_weights(&checkpoint.join("model.safetensors"))?;
        let model = load_model(&model_map, &config.model, &compute.device)?;
        let optimizer = new_optimizer(&config)
            .load(checkpoint.join("optimizer.bpk"))
            .map_err(|e| RunError::Optimizer(format!("loading the optimiser state: {e:?}")))?;
        let ema = Ema::new(
            config.ema_decay,
            read_weights(&checkpoint.join("ema.safetensors"))?,
        );
        dir.truncate_logs(state.step)?;
        Ok((
            Self {
                config,
                model: Some(model),
                optimizer,
                ema,
                step: state.step,
                elapsed_s: state.elapsed_s,
                config_sha256,
            },
            checkpoint,
        ))
    }

    /// The last step of a session that may run `stop_after` more steps.
    pub fn end_step(&self, stop_after: Option<u64>) -> u64 {
        let total = self.config.total_steps();
        stop_after.map_or(total, |n| (self.step + n).min(total))
    }

    /// The weight average as it is validated and exported: its batch-norm statistics
    /// recalibrated on `recalibrate_batches` fixed training batches of the first stage's shape
    /// (drawn from their own seed stream, the same at every call), or as the average holds them
    /// when that is 0.
    pub fn averaged_weights(
        &self,
        pool: &[TrainChain],
        compute: &Compute,
    ) -> Result<WeightMap, RunError> {
        let config = &self.config;
        if config.recalibrate_batches == 0 || pool.is_empty() {
            return Ok(self.ema.weights.clone());
        }
        recalibrated(
            config,
            &self.ema.weights,
            pool,
            compute,
            config.recalibrate_batches,
        )
    }

    /// The DSM report of `averaged` on the first `val_chains` of `val` at the config's levels
    /// and crop (evaluation mode).
    pub fn validate(
        &self,
        averaged: &WeightMap,
        val: &[TrainChain],
        compute: &Compute,
    ) -> Result<DsmReport, RunError> {
        let sigmas = self.config.model.sigmas();
        let model = load_model(averaged, &self.config.model, &compute.device)?;
        let levels: Vec<usize> = if self.config.val_levels.is_empty() {
            (0..sigmas.len()).collect()
        } else {
            self.config.val_levels.clone()
        };
        let items = eval_items(
            val.iter().take(self.config.val_chains),
            &levels,
            &sigmas,
            self.config.seed,
            self.config.val_crop,
        );
        let losses = pollster::block_on(evaluate_items(&model, compute, &sigmas, &items, 1 << 18))?;
        Ok(report(&items, &losses, &sigmas))
    }

    /// Write the checkpoint of the current step (`averaged`: the weight average as exported).
    pub fn save_checkpoint(
        &self,
        dir: &RunDir,
        averaged: &WeightMap,
        data: &Dataset,
    ) -> Result<PathBuf, RunError> {
        let path = dir.checkpoint_dir(self.step);
        std::fs::create_dir_all(&path).map_err(io(format!("creating {}", path.display())))?;
        let net = self
            .model
            .as_ref()
            .ok_or_else(|| RunError::Refused("no model to save".into()))?;
        let model = pollster::block_on(weight_map(net, &self.config.model, self.step))?;
        write_atomic(
            &path.join("model.safetensors"),
            &to_safetensors_with(&model, Precision::F32)?,
        )?;
        write_atomic(
            &path.join("ema.safetensors"),
            &to_safetensors_with(averaged, Precision::F32)?,
        )?;
        self.optimizer
            .save(path.join("optimizer.bpk"))
            .map_err(|e| RunError::Optimizer(format!("saving the optimiser state: {e:?}")))?;
        let state = CheckpointState {
            step: self.step,
            elapsed_s: self.elapsed_s,
            train_chains: data.train.len(),
            val_chains: data.val.len(),
            config_sha256: self.config_sha256.clone(),
        };
        state.write(&path)?;
        dir.mark_latest(&path)?;
        Ok(path)
    }

    /// Train on `data` until [`Self::end_step`] of `options.stop_after`, on `base`'s device
    /// (training on its autodiff twin; validation and recalibration on `base`): batches drawn
    /// ahead on `options.workers` threads, a row of `metrics.csv` a step, the weight average
    /// validated every `eval_every` steps (a line of `val.jsonl`) and checkpointed every
    /// `checkpoint_every` steps and at the end. When `stop` becomes true the current step is
    /// finished, saved, and the session ends. `on_event` hears about each of these.
    pub fn train(
        &mut self,
        dir: &RunDir,
        data: &Dataset,
        base: &Compute,
        options: &SessionOptions,
        stop: &AtomicBool,
        mut on_event: impl FnMut(RunEvent<'_>),
    ) -> Result<(), RunError> {
        let config = self.config.clone();
        let sigmas = config.model.sigmas();
        let compute = base.autodiff();
        let end = self.end_step(options.stop_after);
        // Each stage samples from the chains long enough for its crop.
        let pools: Arc<Vec<Vec<TrainChain>>> = Arc::new(
            config
                .stages
                .iter()
                .map(|st| stage_pool(st, &data.train))
                .collect(),
        );
        let mut batches =
            BatchStream::spawn(&config, pools.clone(), self.step + 1, end, options.workers);

        let metrics_path = dir.metrics_path();
        let new_file = !metrics_path.exists();
        let mut metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(io(format!("opening {}", metrics_path.display())))?;
        let writing = |e| RunError::Io {
            what: format!("writing {}", dir.metrics_path().display()),
            source: e,
        };
        if new_file {
            writeln!(
                metrics,
                "step,stage,loss,learning_rate,batch_size,crop,step_s,samples_per_s,elapsed_s,grad_norm,clipped"
            )
            .map_err(writing)?;
        }
        let mut loss_avg: Option<f64> = None;
        let session = Instant::now();
        let elapsed_before = self.elapsed_s;
        while self.step < end {
            let step = self.step + 1;
            let batch = batches.next(step)?;
            let stage_index = config
                .stage_index(step)
                .ok_or_else(|| RunError::Refused(format!("step {step} is past the last stage")))?;
            let stage = config.stages[stage_index].clone();
            let shape = stage.shape(config.seed, step);
            if batch.is_empty() {
                return Err(RunError::Refused(format!(
                    "no training chain fits stage {} (crop {:?}, max_length {:?})",
                    stage_index + 1,
                    stage.crop,
                    stage.max_length
                )));
            }
            let t = Instant::now();
            let model = self
                .model
                .take()
                .ok_or_else(|| RunError::Refused("the model was lost in a failed step".into()))?;
            let rate = stage.rate(step - 1 - config.stage_start(stage_index));
            let (model, report) = pollster::block_on(train_step(
                model,
                &mut self.optimizer,
                &compute,
                &sigmas,
                &batch,
                rate,
                config.max_grad_norm,
                config.shards,
            ))?;
            let loss = report.loss;
            let current = pollster::block_on(weight_map(&model, &config.model, step))?;
            self.model = Some(model);
            if !loss.is_finite() {
                return Err(RunError::Refused(format!(
                    "the loss is not finite at step {step}; stopping (the last checkpoint is intact)"
                )));
            }
            self.ema.update(&current, step);
            self.step = step;
            let dt = t.elapsed().as_secs_f64();
            self.elapsed_s = elapsed_before + session.elapsed().as_secs_f64();
            let avg = loss_avg.map_or(f64::from(loss), |a| 0.98 * a + 0.02 * f64::from(loss));
            loss_avg = Some(avg);
            writeln!(
                metrics,
                "{step},{stage_index},{loss},{rate:.6e},{},{},{dt:.4},{:.2},{:.1},{},{}",
                shape.batch_size,
                shape.crop.map_or("full".to_string(), |c| c.to_string()),
                shape.batch_size as f64 / dt,
                self.elapsed_s,
                report.grad_norm,
                u8::from(report.clipped)
            )
            .and_then(|()| metrics.flush())
            .map_err(writing)?;
            on_event(RunEvent::Step {
                step,
                report,
                average_loss: avg,
            });

            let stopping = stop.load(Ordering::SeqCst);
            let evaluating = step.is_multiple_of(config.eval_every) || step == end;
            let saving = step.is_multiple_of(config.checkpoint_every) || step == end || stopping;
            let averaged = if evaluating || saving {
                Some(self.averaged_weights(&pools[0], base)?)
            } else {
                None
            };
            if let (true, Some(averaged)) = (evaluating, &averaged) {
                let report = self.validate(averaged, &data.val, base)?;
                let line = serde_json::json!({"step": step, "elapsed_s": self.elapsed_s, "report": report});
                let val_path = dir.val_path();
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&val_path)
                    .and_then(|mut f| writeln!(f, "{line}"))
                    .map_err(io(format!("writing {}", val_path.display())))?;
                on_event(RunEvent::Validated {
                    step,
                    report: &report,
                });
            }
            if let (true, Some(averaged)) = (saving, &averaged) {
                let path = self.save_checkpoint(dir, averaged, data)?;
                dir.prune_checkpoints(options.keep_checkpoints)?;
                on_event(RunEvent::Checkpoint { dir: &path });
            }
            if stopping {
                on_event(RunEvent::Interrupted { step });
                break;
            }
        }
        batches.finish();
        Ok(())
    }
}

/// Threads drawing the training batches of steps `first..=end` ahead of the loop. Batches are
/// pure functions of (seed, step), so the threads change nothing but the waiting.
struct BatchStream {
    rx: mpsc::Receiver<(u64, Vec<DsmExample>)>,
    pending: BTreeMap<u64, Vec<DsmExample>>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl BatchStream {
    fn spawn(
        config: &TrainConfig,
        pools: Arc<Vec<Vec<TrainChain>>>,
        first: u64,
        end: u64,
        workers: usize,
    ) -> Self {
        let (tx, rx) = mpsc::sync_channel::<(u64, Vec<DsmExample>)>(workers.max(1) * 2);
        let stop = Arc::new(AtomicBool::new(false));
        let n_workers = workers.max(1) as u64;
        let sigmas = config.model.sigmas();
        let workers = (0..n_workers)
            .map(|k| {
                let (tx, pools, config, sigmas, stop) = (
                    tx.clone(),
                    pools.clone(),
                    config.clone(),
                    sigmas.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let mut step = first + k;
                    while step <= end && !stop.load(Ordering::Relaxed) {
                        let Some(index) = config.stage_index(step) else {
                            break;
                        };
                        let stage = &config.stages[index];
                        let shape = stage.shape(config.seed, step);
                        let batch = training_batch(
                            &pools[index],
                            &sigmas,
                            config.seed,
                            step,
                            shape.batch_size,
                            shape.proteins,
                            shape.crop,
                            stage.levels,
                        );
                        if tx.send((step, batch)).is_err() {
                            break;
                        }
                        step += n_workers;
                    }
                })
            })
            .collect();
        Self {
            rx,
            pending: BTreeMap::new(),
            stop,
            workers,
        }
    }

    /// The batch of `step` (the threads may deliver out of order).
    fn next(&mut self, step: u64) -> Result<Vec<DsmExample>, RunError> {
        loop {
            if let Some(b) = self.pending.remove(&step) {
                return Ok(b);
            }
            let (s, b) = self.rx.recv().map_err(|_| {
                RunError::Refused(format!("the data threads stopped before step {step}"))
            })?;
            self.pending.insert(s, b);
        }
    }

    /// Stop the threads and wait for them.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx);
        for w in self.workers {
            // A thread that panicked drew no batch the loop still needs.
            let _ = w.join();
        }
    }
}
