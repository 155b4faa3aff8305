//! `foldspace pretrain`, `foldspace export` and `foldspace eval-dsm`: the training loop around
//! `foldspace::score::training` (data threads, checkpoints, resume, Ctrl-C, logs) and the evaluation.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::optim::{AdamConfig, ModuleOptimizer};
use foldspace::compute::Compute;
use foldspace::io::sha256_hex;
use foldspace::score::data::{
    ChainFilter, FilterReport, LevelSampling, TrainChain, evaluation_example, mix, training_batch,
};
use foldspace::score::loss::DsmExample;
use foldspace::score::network::{Numerics, ScoreNet, ScoreNetConfig};
use foldspace::score::recipe::{Stage, TrainConfig};
use foldspace::score::training::{
    DsmReport, Ema, EvalItem, evaluate_items, recalibrate_norms, report, train_step,
    train_step_with,
};
use foldspace::score::weights::{
    CONFIG_METADATA_KEY, Precision, WeightMap, load_model, to_safetensors_with, weight_map,
};
use foldspace::structure::{ReadOptions, read_chains_jsonl, read_structure};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::common::{Backend, allocator_note, compute, file_stem, say, weights_path};

/// Where training and validation chains come from.
pub struct Dataset {
    /// Training chains after filtering.
    pub train: Vec<TrainChain>,
    /// Validation chains after filtering.
    pub val: Vec<TrainChain>,
    /// What the filter did.
    pub report: FilterReport,
    /// Chains set aside (e.g. `ppi_test_like`).
    pub excluded: usize,
}

/// Read `chains.jsonl(.gz)` files (their `split` field: train / val; anything else, such as
/// `ppi_test_like`, is left out) and directories of PDB / mmCIF files (every protein chain of the
/// first model; 5% of chains, chosen by a hash of their name, go to validation).
pub fn load_dataset(sources: &[PathBuf], filter: &ChainFilter) -> Result<Dataset> {
    let mut data = Dataset {
        train: Vec::new(),
        val: Vec::new(),
        report: FilterReport::default(),
        excluded: 0,
    };
    for source in sources {
        if source.is_dir() {
            load_directory(source, filter, &mut data)?;
        } else {
            let bytes =
                std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
            let chains = read_chains_jsonl(&bytes, 8 << 30)
                .with_context(|| format!("reading {}", source.display()))?;
            for c in chains {
                let target = match c.split.as_str() {
                    "train" => &mut data.train,
                    "val" => &mut data.val,
                    _ => {
                        data.excluded += 1;
                        continue;
                    }
                };
                let chain = TrainChain {
                    name: c.name,
                    sequence: c.chain.sequence,
                    ca: c.chain.ca,
                };
                target.extend(filter.apply(chain, &mut data.report));
            }
        }
    }
    Ok(data)
}

fn is_structure_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".pdb", ".ent", ".cif", ".mmcif"]
        .iter()
        .any(|e| name.ends_with(e))
}

fn load_directory(dir: &Path, filter: &ChainFilter, data: &mut Dataset) -> Result<()> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_structure_file(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "{} holds no .pdb/.ent/.cif/.mmcif(.gz) files",
            dir.display()
        );
    }
    // Parse on all cores; the order of the result does not depend on the threads.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = files.len().div_ceil(threads);
    type FileChains = (String, Result<Vec<TrainChain>, String>);
    let parsed: Vec<Vec<FileChains>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|f| (f.display().to_string(), read_file_chains(f)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (file, result) in parsed.into_iter().flatten() {
        match result {
            Ok(chains) => {
                for chain in chains {
                    let to_val = mix(&chain.name.bytes().map(u64::from).collect::<Vec<_>>())
                        .is_multiple_of(20);
                    let pieces = filter.apply(chain, &mut data.report);
                    if to_val {
                        data.val.extend(pieces);
                    } else {
                        data.train.extend(pieces);
                    }
                }
            }
            Err(e) => eprintln!("warning: skipping {file}: {e}"),
        }
    }
    Ok(())
}

fn read_file_chains(path: &Path) -> Result<Vec<TrainChain>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str());
    let parsed =
        read_structure(&bytes, name, &ReadOptions::default()).map_err(|e| e.to_string())?;
    let stem = file_stem(path);
    let model = parsed
        .structure
        .models
        .first()
        .ok_or_else(|| "no model".to_string())?;
    Ok(model
        .chains
        .iter()
        .map(|c| TrainChain {
            name: format!("{stem}:{}", c.id),
            sequence: c.sequence.clone(),
            ca: c.ca.clone(),
        })
        .collect())
}

/// `foldspace pretrain` options (see its help).
#[derive(clap::Args)]
pub(crate) struct PretrainArgs {
    /// Training data: chains.jsonl(.gz) files (train / val by their `split` field; other
    /// splits such as ppi_test_like are left out) and/or directories of PDB / mmCIF files.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Run directory (config, checkpoints, logs).
    #[arg(long)]
    pub out: PathBuf,
    /// Training configuration (JSON); default: the recipe named by --recipe.
    #[arg(long, conflicts_with_all = ["resume", "recipe"])]
    pub config: Option<PathBuf>,
    /// Built-in recipe: ours (TRAINING.md) or the published reference's (docs/score-model.md
    /// §3–§5: one protein a batch, constant 1e-3, no clipping).
    #[arg(long, value_enum)]
    pub recipe: Option<Recipe>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Steps of the first stage (default: the recipe's).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Examples per step in the first stage.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Crop of the first stage: residues, or `full`.
    #[arg(long)]
    pub crop: Option<String>,
    /// Distinct chains per step in the first stage.
    #[arg(long)]
    pub proteins_per_batch: Option<usize>,
    /// Peak learning rate of the first stage.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Warm-up steps of the first stage.
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// Final learning rate of the first stage's cosine decay, or `none` (constant).
    #[arg(long)]
    pub final_learning_rate: Option<String>,
    /// Noise levels of a batch in the first stage: independent or stratified.
    #[arg(long, value_enum)]
    pub levels: Option<Levels>,
    /// Global gradient-norm clip, or `none`.
    #[arg(long)]
    pub max_grad_norm: Option<String>,
    /// The score map's training-time scale (folded into conv_out on export).
    #[arg(long)]
    pub output_scale: Option<f64>,
    /// Batches for the weight average's batch-norm recalibration (0: none).
    #[arg(long)]
    pub recalibrate_batches: Option<usize>,
    /// Threads a step's batch is split over (each part with its own batch statistics).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Seed of all draws.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps between checkpoints.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Steps between validations.
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Validation chains.
    #[arg(long)]
    pub val_chains: Option<usize>,
    /// Shortest chain (or gap-free piece) used.
    #[arg(long)]
    pub min_length: Option<usize>,
    /// Longest chain used.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Chains with C-alpha gaps above 4.2 Å: cut at the gaps, or drop.
    #[arg(long, value_enum)]
    pub gaps: Option<Gaps>,
    /// Data threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Stop (with a checkpoint) after this many steps in this session.
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Where training runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Keep only the newest N checkpoints (0: all). A run directory kept in the repository
    /// needs only its last one to resume.
    #[arg(long, default_value_t = 0)]
    pub keep_checkpoints: usize,
}

/// `foldspace eval-dsm` options.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// Weights (ours or the published .pth / .safetensors); default: the shipped weights.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The chains.
    #[arg(long)]
    pub data: PathBuf,
    /// Only the chains of this split (the `split` field of chains.jsonl, e.g. `val`).
    #[arg(long)]
    pub split: Option<String>,
    /// Use at most this many chains (in file order, after the length filter).
    #[arg(long)]
    pub max_chains: Option<usize>,
    /// Shortest chain used.
    #[arg(long, default_value_t = 2)]
    pub min_length: usize,
    /// Longest chain used (full maps grow with the square of the length).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Seed of the noise and crop draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `full` maps or crops of N residues (chains shorter than N are skipped).
    #[arg(long, default_value = "full")]
    pub crop: String,
    /// `all` or noise-level indices, e.g. 0,30,60.
    #[arg(long, default_value = "all")]
    pub levels: String,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// One JSON object: {"chains", "levels", "bands", "mean"}.
    #[arg(long)]
    pub json: bool,
}

/// `foldspace export` options.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// A run directory (its last checkpoint) or one checkpoint directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Export the raw weights instead of the weight average.
    #[arg(long)]
    pub raw: bool,
    /// Output directory.
    #[arg(long, default_value = "assets/weights")]
    pub out: PathBuf,
    /// File name stem.
    #[arg(long, default_value = "foldspace-score")]
    pub name: String,
    /// `eval-dsm --json` outputs of these weights (e.g. on val at crop 64): their bands go
    /// into the weights' description (shown by the page) and the manifest, with the file name.
    #[arg(long, num_args = 1..)]
    pub eval: Vec<PathBuf>,
    /// Recalibrate the batch-norm statistics on this many training batches drawn from --data
    /// before export (checkpoints written by this version already hold recalibrated ones).
    #[arg(long, default_value_t = 0)]
    pub recalibrate: usize,
    /// Chains for --recalibrate (the run's training data).
    #[arg(long)]
    pub data: Vec<PathBuf>,
}

/// A built-in training recipe.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Recipe {
    /// `TrainConfig::recipe()`.
    Foldspace,
    /// `TrainConfig::reference()`.
    Reference,
}

/// How the noise levels of a batch are drawn (see `foldspace::score::data::LevelSampling`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Levels {
    /// Uniformly and independently.
    Independent,
    /// One level in each of `batch_size` equal strata of the ladder.
    Stratified,
}

/// `none` or a number.
fn optional_number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<Option<T>> {
    if s == "none" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| anyhow!("{flag} takes a number or `none`, not `{s}`"))
}

/// What to do with chains that have a C-alpha gap.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Gaps {
    /// Cut chains at C-alpha gaps and keep the long-enough pieces.
    Cut,
    /// Drop chains with a C-alpha gap.
    Drop,
}

/// Trainer state beside each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    step: u64,
    elapsed_s: f64,
    train_chains: usize,
    val_chains: usize,
    config_sha256: String,
}

fn parse_crop(s: &str) -> Result<Option<usize>> {
    if s == "full" {
        return Ok(None);
    }
    let n: usize = s
        .parse()
        .map_err(|_| anyhow!("--crop takes `full` or a number of residues, not `{s}`"))?;
    if n < 2 {
        bail!("--crop must be at least 2 residues");
    }
    Ok(Some(n))
}

fn config_for(args: &PretrainArgs) -> Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a training config", path.display()))?,
        None => match args.recipe.unwrap_or(Recipe::Foldspace) {
            Recipe::Foldspace => TrainConfig::recipe(),
            Recipe::Reference => TrainConfig::reference(),
        },
    };
    if let Some(stage) = config.stages.first_mut() {
        if let Some(s) = args.steps {
            stage.steps = s;
        }
        if let Some(b) = args.batch_size {
            stage.batch_size = b;
        }
        if let Some(c) = &args.crop {
            stage.crop = parse_crop(c)?;
        }
        if let Some(p) = args.proteins_per_batch {
            stage.proteins_per_batch = p;
        }
        if let Some(r) = args.learning_rate {
            stage.learning_rate = r;
        }
        if let Some(w) = args.warmup_steps {
            stage.warmup_steps = w;
        }
        if let Some(f) = &args.final_learning_rate {
            stage.final_learning_rate = optional_number(f, "--final-learning-rate")?;
        }
        if let Some(l) = args.levels {
            stage.levels = match l {
                Levels::Independent => LevelSampling::Independent,
                Levels::Stratified => LevelSampling::Stratified,
            };
        }
    }
    if let Some(n) = &args.max_grad_norm {
        config.max_grad_norm = optional_number(n, "--max-grad-norm")?;
    }
    if let Some(s) = args.output_scale {
        config.model.output_scale = s;
    }
    if let Some(n) = args.recalibrate_batches {
        config.recalibrate_batches = n;
    }
    if let Some(n) = args.shards {
        config.shards = n;
    }
    if let Some(s) = args.seed {
        config.seed = s;
    }
    if let Some(n) = args.checkpoint_every {
        config.checkpoint_every = n;
    }
    if let Some(n) = args.eval_every {
        config.eval_every = n;
    }
    if let Some(n) = args.val_chains {
        config.val_chains = n;
    }
    if let Some(n) = args.min_length {
        config.filter.min_length = n;
    }
    if let Some(n) = args.max_length {
        config.filter.max_length = n;
    }
    if let Some(g) = args.gaps {
        config.filter.gap_policy = match g {
            Gaps::Cut => foldspace::score::data::GapPolicy::Cut,
            Gaps::Drop => foldspace::score::data::GapPolicy::Drop,
        };
    }
    config.validate()?;
    Ok(config)
}

const LATEST: &str = "LATEST";

fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:08}"))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

struct Run {
    config: TrainConfig,
    /// `None` only while a step holds it.
    model: Option<ScoreNet>,
    optimizer: ModuleOptimizer,
    ema: Ema,
    step: u64,
    elapsed_s: f64,
}

/// The weight average as it is validated and exported: its batch-norm statistics recalibrated
/// on `recalibrate_batches` fixed training batches of the first stage's shape (drawn from their
/// own seed stream, the same at every call), or as the average holds them when that is 0.
fn averaged_weights(
    run: &Run,
    pool: &[TrainChain],
    sigmas: &[f32],
    compute: &Compute,
) -> Result<WeightMap> {
    let config = &run.config;
    if config.recalibrate_batches == 0 || pool.is_empty() {
        return Ok(run.ema.weights.clone());
    }
    recalibrated(
        config,
        &run.ema.weights,
        pool,
        sigmas,
        compute,
        config.recalibrate_batches,
    )
}

/// `weights` with batch-norm statistics recalibrated on `batches` fixed training batches of the
/// first stage's shape from `pool` (their own seed stream: the same batches at every call), each
/// split over the run's shards as training splits it.
fn recalibrated(
    config: &TrainConfig,
    weights: &WeightMap,
    pool: &[TrainChain],
    sigmas: &[f32],
    compute: &Compute,
    batches: usize,
) -> Result<WeightMap> {
    let stage = config
        .stages
        .first()
        .ok_or_else(|| anyhow!("the run has no stage"))?;
    let seed = mix(&[config.seed, 0x5ca1_ab1e]);
    let batches: Vec<Vec<DsmExample>> = (1..=batches as u64)
        .map(|i| {
            training_batch(
                pool,
                sigmas,
                seed,
                i,
                stage.batch_size,
                stage.proteins_per_batch,
                stage.crop,
                stage.levels,
            )
        })
        .collect();
    Ok(pollster::block_on(recalibrate_norms(
        weights,
        &config.model,
        compute,
        sigmas,
        &batches,
        config.shards,
    ))?)
}

/// The chains a stage draws from: long enough for its crop, not above its length limit.
fn stage_pool(stage: &Stage, chains: &[TrainChain]) -> Vec<TrainChain> {
    chains
        .iter()
        .filter(|t| {
            stage.crop.is_none_or(|c| t.len() >= c) && stage.max_length.is_none_or(|m| t.len() <= m)
        })
        .cloned()
        .collect()
}

fn save_checkpoint(
    out: &Path,
    run: &Run,
    averaged: &WeightMap,
    data: &Dataset,
    config_sha: &str,
) -> Result<PathBuf> {
    let dir = checkpoint_dir(out, run.step);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let net = run
        .model
        .as_ref()
        .ok_or_else(|| anyhow!("no model to save"))?;
    let model = pollster::block_on(weight_map(net, &run.config.model, run.step))?;
    write_atomic(
        &dir.join("model.safetensors"),
        &to_safetensors_with(&model, Precision::F32)?,
    )?;
    write_atomic(
        &dir.join("ema.safetensors"),
        &to_safetensors_with(averaged, Precision::F32)?,
    )?;
    run.optimizer
        .save(dir.join("optimizer.bpk"))
        .map_err(|e| anyhow!("saving the optimiser state: {e:?}"))?;
    let state = CheckpointState {
        step: run.step,
        elapsed_s: run.elapsed_s,
        train_chains: data.train.len(),
        val_chains: data.val.len(),
        config_sha256: config_sha.to_string(),
    };
    write_atomic(
        &dir.join("state.json"),
        serde_json::to_string_pretty(&state)?.as_bytes(),
    )?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    write_atomic(&out.join("checkpoints").join(LATEST), name.as_bytes())?;
    Ok(dir)
}

/// Remove all but the newest `keep` checkpoints (by step; 0 keeps all).
fn prune_checkpoints(out: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let root = out.join("checkpoints");
    let mut steps: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("listing {}", root.display()))?
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
        std::fs::remove_dir_all(old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

fn latest_checkpoint(out: &Path) -> Result<PathBuf> {
    let latest = out.join("checkpoints").join(LATEST);
    let name = std::fs::read_to_string(&latest).with_context(|| {
        format!(
            "--resume: {} not found (no checkpoint in this run directory)",
            latest.display()
        )
    })?;
    Ok(out.join("checkpoints").join(name.trim()))
}

fn new_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(config.adam[0] as f32)
        .with_beta_2(config.adam[1] as f32)
        .with_epsilon(config.adam[2] as f32)
        .init()
}

/// Read the weights of a checkpoint file.
fn read_weights(path: &Path) -> Result<WeightMap> {
    let (map, _) =
        WeightMap::from_file(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(map)
}

/// Keep only log rows up to `step` (a run that crashed after its last checkpoint wrote rows
/// that the resumed run will write again): CSV rows by their first field, JSON lines by `step`.
fn truncate_log(path: &Path, step: u64) -> Result<()> {
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

/// Train (or resume) and write checkpoints, logs and validation reports under `args.out`.
pub fn pretrain(args: PretrainArgs) -> Result<()> {
    let base = compute(args.backend)?;
    let out = args.out.clone();
    let config_path = out.join("config.json");
    let config: TrainConfig = if args.resume {
        let config: TrainConfig = serde_json::from_slice(
            &std::fs::read(&config_path)
                .with_context(|| format!("--resume: reading {}", config_path.display()))?,
        )?;
        config
    } else {
        if out.join("checkpoints").join(LATEST).exists() {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                out.display()
            );
        }
        let config = config_for(&args)?;
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        write_atomic(
            &config_path,
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        config
    };
    let config_sha = sha256_hex(&std::fs::read(&config_path)?);
    let sigmas = config.model.sigmas();

    let started = Instant::now();
    let data = load_dataset(&args.data, &config.filter)?;
    let r = &data.report;
    eprintln!(
        "data: {} train / {} val chains kept of {} ({} with C-alpha gaps > {} Å {}, {} pieces too short, \
         {} too long, {} excluded by split) in {:.1} s",
        data.train.len(),
        data.val.len(),
        r.chains_in,
        r.with_gaps,
        config.filter.max_ca_gap,
        match config.filter.gap_policy {
            foldspace::score::data::GapPolicy::Cut => "cut",
            foldspace::score::data::GapPolicy::Drop => "dropped",
        },
        r.too_short,
        r.too_long,
        data.excluded,
        started.elapsed().as_secs_f64()
    );
    if data.train.is_empty() {
        bail!("no training chain is left after filtering");
    }

    let compute = base.autodiff();
    let device = compute.device.clone();
    let mut run = if args.resume {
        let dir = latest_checkpoint(&out)?;
        let state: CheckpointState = serde_json::from_slice(
            &std::fs::read(dir.join("state.json"))
                .with_context(|| format!("reading {}", dir.join("state.json").display()))?,
        )?;
        if state.config_sha256 != config_sha {
            bail!(
                "{} changed since the checkpoint was written; restore it to resume",
                config_path.display()
            );
        }
        let model_map = read_weights(&dir.join("model.safetensors"))?;
        let model = load_model(&model_map, &config.model, &device)?;
        let optimizer = new_optimizer(&config)
            .load(dir.join("optimizer.bpk"))
            .map_err(|e| anyhow!("loading the optimiser state: {e:?}"))?;
        let ema = Ema::new(
            config.ema_decay,
            read_weights(&dir.join("ema.safetensors"))?,
        );
        eprintln!("resuming at step {} from {}", state.step, dir.display());
        truncate_log(&out.join("metrics.csv"), state.step)?;
        truncate_log(&out.join("val.jsonl"), state.step)?;
        Run {
            config: config.clone(),
            model: Some(model),
            optimizer,
            ema,
            step: state.step,
            elapsed_s: state.elapsed_s,
        }
    } else {
        // A fresh network (initialised from the seed), taken through the weight map so that
        // parameter ids are stable.
        compute.device.seed(config.seed);
        let fresh = config.model.init(&compute.device);
        let map = pollster::block_on(weight_map(&fresh, &config.model, 0))?;
        let model = load_model(&map, &config.model, &device)?;
        Run {
            config: config.clone(),
            model: Some(model),
            optimizer: new_optimizer(&config),
            ema: Ema::new(config.ema_decay, map),
            step: 0,
            elapsed_s: 0.0,
        }
    };

    let total = config.total_steps();
    let end = args.stop_after.map_or(total, |n| (run.step + n).min(total));
    if run.step >= end {
        eprintln!("nothing to do: step {} of {total}", run.step);
        return Ok(());
    }

    // Ctrl-C: finish the step, save, stop.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second handler cannot be installed in the same process (tests): ignore that.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }

    // Data threads: batches are pure functions of (seed, step), so threads change nothing.
    // Each stage samples from the chains long enough for its crop.
    let pools: Arc<Vec<Vec<TrainChain>>> = Arc::new(
        config
            .stages
            .iter()
            .map(|st| stage_pool(st, &data.train))
            .collect(),
    );
    let (tx, rx) = mpsc::sync_channel::<(u64, Vec<DsmExample>)>(args.workers.max(1) * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let n_workers = args.workers.max(1) as u64;
    let workers: Vec<_> = (0..n_workers)
        .map(|k| {
            let (tx, pools, config, sigmas, stop) = (
                tx.clone(),
                pools.clone(),
                config.clone(),
                sigmas.clone(),
                stop.clone(),
            );
            let first = run.step + 1;
            std::thread::spawn(move || {
                let mut step = first + k;
                while step <= end && !stop.load(Ordering::Relaxed) {
                    let Some(index) = config.stage_index(step) else {
                        break;
                    };
                    let stage = &config.stages[index];
                    let batch = training_batch(
                        &pools[index],
                        &sigmas,
                        config.seed,
                        step,
                        stage.batch_size,
                        stage.proteins_per_batch,
                        stage.crop,
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
    drop(tx);

    let metrics_path = out.join("metrics.csv");
    let new_file = !metrics_path.exists();
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    if new_file {
        writeln!(
            metrics,
            "step,stage,loss,learning_rate,batch_size,crop,step_s,samples_per_s,elapsed_s,grad_norm,clipped"
        )?;
    }

    let bar = ProgressBar::new(end);
    bar.set_position(run.step);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {per_sec} eta {eta} loss {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut pending: BTreeMap<u64, Vec<DsmExample>> = BTreeMap::new();
    let mut loss_avg: Option<f64> = None;
    let session = Instant::now();
    let elapsed_before = run.elapsed_s;
    while run.step < end {
        let step = run.step + 1;
        let batch = loop {
            if let Some(b) = pending.remove(&step) {
                break b;
            }
            let (s, b) = rx
                .recv()
                .map_err(|_| anyhow!("the data threads stopped before step {step}"))?;
            pending.insert(s, b);
        };
        let stage_index = config
            .stage_index(step)
            .ok_or_else(|| anyhow!("step {step} is past the last stage"))?;
        let stage = config.stages[stage_index].clone();
        if batch.is_empty() {
            bail!(
                "no training chain fits stage {} (crop {:?}, max_length {:?})",
                stage_index + 1,
                stage.crop,
                stage.max_length
            );
        }
        let t = Instant::now();
        let model = run
            .model
            .take()
            .ok_or_else(|| anyhow!("the model was lost in a failed step"))?;
        let rate = stage.rate(step - 1 - config.stage_start(stage_index));
        let (model, report) = pollster::block_on(train_step(
            model,
            &mut run.optimizer,
            &compute,
            &sigmas,
            &batch,
            rate,
            config.max_grad_norm,
            config.shards,
        ))?;
        let loss = report.loss;
        let current = pollster::block_on(weight_map(&model, &config.model, step))?;
        run.model = Some(model);
        if !loss.is_finite() {
            bail!(
                "the loss is not finite at step {step}; stopping (the last checkpoint is intact)"
            );
        }
        run.ema.update(&current, step);
        run.step = step;
        let dt = t.elapsed().as_secs_f64();
        run.elapsed_s = elapsed_before + session.elapsed().as_secs_f64();
        let avg = loss_avg.map_or(f64::from(loss), |a| 0.98 * a + 0.02 * f64::from(loss));
        loss_avg = Some(avg);
        writeln!(
            metrics,
            "{step},{stage_index},{loss},{rate:.6e},{},{},{dt:.4},{:.2},{:.1},{},{}",
            stage.batch_size,
            stage.crop.map_or("full".to_string(), |c| c.to_string()),
            stage.batch_size as f64 / dt,
            run.elapsed_s,
            report.grad_norm,
            u8::from(report.clipped)
        )?;
        metrics.flush()?;
        bar.set_message(format!("{loss:.4} (avg {avg:.4})"));
        bar.set_position(step);

        let stopping = interrupted.load(Ordering::SeqCst);
        let evaluating = step.is_multiple_of(config.eval_every) || step == end;
        let saving = step.is_multiple_of(config.checkpoint_every) || step == end || stopping;
        let averaged = if evaluating || saving {
            Some(averaged_weights(&run, &pools[0], &sigmas, &base)?)
        } else {
            None
        };
        if let (true, Some(averaged)) = (evaluating, &averaged) {
            let rep = validate(&run, averaged, &data.val, &sigmas, &base)?;
            say(
                &bar,
                format!(
                    "step {step}: val loss {:.4} (high {:.4}, mid {:.4}, low {:.4})",
                    rep.mean,
                    rep.bands.get("high").copied().unwrap_or(f64::NAN),
                    rep.bands.get("mid").copied().unwrap_or(f64::NAN),
                    rep.bands.get("low").copied().unwrap_or(f64::NAN)
                ),
            );
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out.join("val.jsonl"))?;
            writeln!(
                f,
                "{}",
                serde_json::json!({"step": step, "elapsed_s": run.elapsed_s, "report": rep})
            )?;
        }
        if let (true, Some(averaged)) = (saving, &averaged) {
            let dir = save_checkpoint(&out, &run, averaged, &data, &config_sha)?;
            prune_checkpoints(&out, args.keep_checkpoints)?;
            say(&bar, format!("checkpoint: {}", dir.display()));
        }
        if stopping {
            say(
                &bar,
                format!("interrupted: saved at step {step}; continue with --resume"),
            );
            break;
        }
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    for w in workers {
        let _ = w.join();
    }
    eprintln!(
        "done: step {} of {total} in {:.1} s this session",
        run.step,
        session.elapsed().as_secs_f64()
    );
    Ok(())
}

fn validate(
    run: &Run,
    averaged: &WeightMap,
    val: &[TrainChain],
    sigmas: &[f32],
    compute: &Compute,
) -> Result<DsmReport> {
    let model = load_model(averaged, &run.config.model, &compute.device)?;
    let levels: Vec<usize> = if run.config.val_levels.is_empty() {
        (0..sigmas.len()).collect()
    } else {
        run.config.val_levels.clone()
    };
    let items = eval_items(
        val.iter().take(run.config.val_chains),
        &levels,
        sigmas,
        run.config.seed,
        run.config.val_crop,
    );
    let losses = pollster::block_on(evaluate_items(&model, compute, sigmas, &items, 1 << 18))?;
    Ok(report(&items, &losses, sigmas))
}

fn eval_items<'a>(
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

/// `foldspace eval-dsm`.
pub fn eval_dsm(args: EvalArgs) -> Result<()> {
    let compute = compute(args.backend)?;
    let weights = weights_path(args.weights.as_deref())?;
    let (map, sha) = WeightMap::from_file(&weights)
        .with_context(|| format!("loading weights {}", weights.display()))?;
    let config = map.config()?;
    let model = load_model(&map, &config, &compute.device)?;
    let sigmas = config.sigmas();
    let crop = parse_crop(&args.crop)?;
    let levels: Vec<usize> = if args.levels == "all" {
        (0..sigmas.len()).collect()
    } else {
        args.levels
            .split(',')
            .map(|s| {
                let l: usize = s.trim().parse().map_err(|_| {
                    anyhow!("--levels takes `all` or indices like 0,30,60, not `{s}`")
                })?;
                if l >= sigmas.len() {
                    bail!(
                        "--levels: {l} is out of range (the model has 0..={})",
                        sigmas.len() - 1
                    );
                }
                Ok(l)
            })
            .collect::<Result<_>>()?
    };
    let bytes =
        std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let chains: Vec<TrainChain> = read_chains_jsonl(&bytes, 8 << 30)
        .with_context(|| format!("reading {}", args.data.display()))?
        .into_iter()
        .filter(|c| args.split.as_ref().is_none_or(|s| &c.split == s))
        .map(|c| TrainChain {
            name: c.name,
            sequence: c.chain.sequence,
            ca: c.chain.ca,
        })
        .filter(|c| {
            c.len() >= args.min_length.max(2)
                && args.max_length.is_none_or(|m| c.len() <= m)
                && crop.is_none_or(|n| c.len() >= n)
        })
        .take(args.max_chains.unwrap_or(usize::MAX))
        .collect();
    if chains.is_empty() {
        bail!(
            "no chain of {} has {}..={} residues{}",
            args.data.display(),
            args.min_length.max(2),
            args.max_length.map_or("any".to_string(), |m| m.to_string()),
            crop.map_or(String::new(), |n| format!(" (and the crop of {n})"))
        );
    }
    let bar = ProgressBar::new(chains.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} chains {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut items = Vec::new();
    let mut losses = Vec::new();
    for (index, chain) in chains.iter().enumerate() {
        let mine: Vec<EvalItem> = levels
            .iter()
            .filter_map(|&level| {
                evaluation_example(chain, index, level, sigmas[level], args.seed, crop).map(
                    |example| EvalItem {
                        chain: index,
                        example,
                    },
                )
            })
            .collect();
        losses.extend(pollster::block_on(evaluate_items(
            &model,
            &compute,
            &sigmas,
            &mine,
            1 << 19,
        ))?);
        items.extend(mine);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rep = report(&items, &losses, &sigmas);
    if args.json {
        let levels: BTreeMap<String, f64> = rep
            .levels
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "chains": rep.chains,
                "levels": levels,
                "bands": rep.bands,
                "mean": rep.mean,
                "weights_sha256": sha,
            })
        );
    } else {
        println!("weights: {} (sha256 {sha})", weights.display());
        println!(
            "chains: {}  crop: {}  seed: {}  backend: {}",
            rep.chains,
            args.crop,
            args.seed,
            compute.describe()
        );
        println!("{:>5} {:>10} {:>12}", "level", "sigma", "loss");
        for (l, v) in &rep.levels {
            println!("{l:>5} {:>10.5} {v:>12.5}", sigmas[*l]);
        }
        for band in ["high", "mid", "low"] {
            if let Some(v) = rep.bands.get(band) {
                println!("band {band:<4} {v:.5}");
            }
        }
        println!("mean {:.5}", rep.mean);
    }
    Ok(())
}

/// `foldspace export`: the averaged (or raw) weights of a checkpoint as f32 and f16 safetensors
/// with the configuration and a SHA-256 manifest.
pub fn export(args: ExportArgs) -> Result<()> {
    let dir = if args.run.join("state.json").is_file() {
        args.run.clone()
    } else {
        latest_checkpoint(&args.run)?
    };
    let state: CheckpointState = serde_json::from_slice(
        &std::fs::read(dir.join("state.json"))
            .with_context(|| format!("reading {}", dir.join("state.json").display()))?,
    )?;
    let source = if args.raw { "model" } else { "ema" };
    let mut map = read_weights(&dir.join(format!("{source}.safetensors")))?;
    let config = map.config()?;
    foldspace::score::weights::validate(&map, &config)?;
    if args.recalibrate > 0 {
        let run_dir = dir
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| anyhow!("{} is not inside a run directory", dir.display()))?;
        let run_config: TrainConfig = serde_json::from_slice(
            &std::fs::read(run_dir.join("config.json"))
                .with_context(|| format!("reading {}", run_dir.join("config.json").display()))?,
        )?;
        if args.data.is_empty() {
            bail!("--recalibrate needs --data (the run's training chains)");
        }
        let data = load_dataset(&args.data, &run_config.filter)?;
        let stage = run_config
            .stages
            .first()
            .ok_or_else(|| anyhow!("the run has no stage"))?;
        let pool = stage_pool(stage, &data.train);
        map = recalibrated(
            &run_config,
            &map,
            &pool,
            &config.sigmas(),
            &Compute::cpu(),
            args.recalibrate,
        )?;
        eprintln!(
            "recalibrated the batch-norm statistics on {} batches",
            args.recalibrate
        );
    }
    // The training-time output scale goes into conv_out: shipped weights are the published
    // architecture (output_scale 1).
    map.fold_output_scale()?;
    let mut scores = Vec::new();
    let mut evaluations = Vec::new();
    for path in &args.eval {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not eval-dsm --json output", path.display()))?;
        let band = |b: &str| v["bands"][b].as_f64().unwrap_or(f64::NAN);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        scores.push(format!(
            "{name}: high {:.3} / mid {:.3} / low {:.3}",
            band("high"),
            band("mid"),
            band("low")
        ));
        evaluations
            .push(serde_json::json!({"file": name, "bands": v["bands"], "chains": v["chains"]}));
    }
    let description = format!(
        "foldspace score model, step {} ({}){}",
        state.step,
        if args.raw {
            "raw weights"
        } else {
            "weight average"
        },
        if scores.is_empty() {
            String::new()
        } else {
            format!(
                "; DSM loss (zero score 3.0) {}; see TRAINING.md",
                scores.join("; ")
            )
        }
    );
    map.metadata.insert(
        foldspace::score::weights::DESCRIPTION_METADATA_KEY.into(),
        description.clone(),
    );
    map.metadata
        .insert("foldspace.step".into(), state.step.to_string());
    map.metadata
        .insert("foldspace.weights".into(), source.into());
    map.metadata
        .insert("foldspace.version".into(), foldspace::VERSION.into());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut files = Vec::new();
    for (precision, suffix) in [(Precision::F32, ""), (Precision::F16, "-f16")] {
        let bytes = to_safetensors_with(&map, precision)?;
        let file = format!("{}{suffix}.safetensors", args.name);
        let path = args.out.join(&file);
        write_atomic(&path, &bytes)?;
        let sha = sha256_hex(&bytes);
        write_atomic(
            &args.out.join(format!("{file}.sha256")),
            format!("{sha}  {file}\n").as_bytes(),
        )?;
        eprintln!(
            "wrote {} ({} bytes, sha256 {sha})",
            path.display(),
            bytes.len()
        );
        files.push(serde_json::json!({
            "file": file,
            "precision": format!("{precision:?}").to_lowercase(),
            "bytes": bytes.len(),
            "sha256": sha,
        }));
    }
    let manifest = serde_json::json!({
        "model": "foldspace score network (DSM on C-alpha distance maps)",
        "config": serde_json::from_str::<serde_json::Value>(
            map.metadata.get(CONFIG_METADATA_KEY).map_or("null", String::as_str))?,
        "step": state.step,
        "weights": source,
        "train_chains": state.train_chains,
        "training_seconds": state.elapsed_s,
        "description": description,
        "evaluation": evaluations,
        "files": files,
    });
    write_atomic(
        &args.out.join(format!("{}.json", args.name)),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    Ok(())
}

/// `foldspace bench-train` options.
#[derive(clap::Args)]
pub(crate) struct BenchTrainArgs {
    /// Where training runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Crop (residues).
    #[arg(long, default_value_t = 31)]
    pub crop: usize,
    /// Timed steps (after two untimed warm-up steps).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Chains to draw batches from (chains.jsonl(.gz) or structure directories); default: the
    /// shipped examples in assets/examples.
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Threads the batch is split over (default: the recipe's).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Arithmetic of the step: `fast` (training's) or `exact` (PyTorch's ELU and batch norm,
    /// as before the fast forms existed), to measure what the fast forms give.
    #[arg(long, value_enum, default_value_t = BenchNumerics::Fast)]
    pub numerics: BenchNumerics,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `bench-train --numerics`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchNumerics {
    /// `Numerics::Fast`.
    Fast,
    /// `Numerics::Exact`.
    Exact,
}

/// Multiply-adds of the network's convolutions per map pixel (forward).
fn conv_macs_per_pixel(c: &ScoreNetConfig) -> f64 {
    let (h, m) = (c.hidden_channels as f64, c.bottleneck_channels as f64);
    c.in_channels as f64 * h * 9.0 + c.blocks as f64 * (h * m + m * m * 9.0 + m * h) + h * 9.0
}

/// The machine's nominal fp32 peak: cores × clock × FMA lanes (2 FMA units; 16 lanes with
/// AVX-512, 8 with AVX2) × 2 flops. An estimate from /proc/cpuinfo, not a measurement.
fn nominal_peak_gflops() -> Option<(f64, String)> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let avx512 = flags.split_whitespace().any(|f| f == "avx512f");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let lanes = if avx512 { 16.0 } else { 8.0 };
    let peak = cores * mhz / 1e3 * lanes * 2.0 * 2.0;
    let what = format!(
        "{cores} cores x {:.2} GHz x {} fp32 lanes x 2 FMA units x 2 flops",
        mhz / 1e3,
        lanes
    );
    Some((peak, what))
}

/// `foldspace bench-train`: time full training steps (forward, backward, global-norm clipping,
/// Adam) of the recipe's network on real chains.
pub fn bench_train(args: BenchTrainArgs) -> Result<()> {
    let config = TrainConfig::recipe();
    let sources = if args.data.is_empty() {
        let local = PathBuf::from("assets/examples");
        let beside_repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/examples");
        vec![if local.is_dir() { local } else { beside_repo }]
    } else {
        args.data.clone()
    };
    let filter = ChainFilter {
        min_length: args.crop.max(2),
        ..config.filter.clone()
    };
    let data = load_dataset(&sources, &filter)?;
    let chains: Vec<TrainChain> = data.train.into_iter().chain(data.val).collect();
    if chains.is_empty() {
        bail!("no chain of at least {} residues in the data", args.crop);
    }
    let base = compute(args.backend)?;
    let compute = base.autodiff();
    compute.device.seed(config.seed);
    let mut model = config.model.init(&compute.device);
    let mut optimizer = new_optimizer(&config);
    let sigmas = config.model.sigmas();
    let stage = &config.stages[0];
    let mut times = Vec::new();
    for step in 0..args.steps + 2 {
        let batch = training_batch(
            &chains,
            &sigmas,
            config.seed,
            step as u64 + 1,
            args.batch,
            stage.proteins_per_batch.min(args.batch),
            Some(args.crop),
            stage.levels,
        );
        let t = Instant::now();
        let (next, _) = pollster::block_on(train_step_with(
            model,
            &mut optimizer,
            &compute,
            &sigmas,
            &batch,
            1e-4,
            config.max_grad_norm,
            args.shards.unwrap_or(config.shards),
            match args.numerics {
                BenchNumerics::Fast => Numerics::Fast,
                BenchNumerics::Exact => Numerics::Exact,
            },
        ))?;
        model = next;
        if step >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let pixels = (args.batch * args.crop * args.crop) as f64;
    // Forward convolutions, and twice that backward (input and weight gradients).
    let gflop = 3.0 * 2.0 * conv_macs_per_pixel(&config.model) * pixels / 1e9;
    let peak = nominal_peak_gflops();
    let summary = serde_json::json!({
        "backend": base.describe(),
        "batch": args.batch,
        "crop": args.crop,
        "steps": times.len(),
        "median_step_s": median,
        "min_step_s": times[0],
        "max_step_s": times[times.len() - 1],
        "samples_per_s": args.batch as f64 / median,
        "gflop_per_step": gflop,
        "gflop_per_s": gflop / median,
        "nominal_peak_gflop_per_s": peak.as_ref().map(|p| p.0),
        "nominal_peak": peak.as_ref().map(|p| p.1.clone()),
        "fraction_of_peak": peak.as_ref().map(|p| gflop / median / p.0),
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "shards": args.shards.unwrap_or(config.shards),
        "numerics": format!("{:?}", args.numerics).to_lowercase(),
        "rayon_threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "allocator": allocator_note(),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!("backend: {}", base.describe());
        println!(
            "B = {}, crop {}: median {median:.3} s a step over {} steps (min {:.3}, max {:.3}); \
             {:.1} samples/s; {gflop:.1} GFLOP a step (convolutions, forward + backward), {:.1} GFLOP/s",
            args.batch,
            args.crop,
            times.len(),
            times[0],
            times[times.len() - 1],
            args.batch as f64 / median,
            gflop / median
        );
        if let Some((p, what)) = peak {
            println!(
                "nominal peak {p:.0} GFLOP/s ({what}; an estimate): {:.1} % of it",
                100.0 * gflop / median / p
            );
        }
    }
    Ok(())
}
