//! `foldspace pretrain`, `foldspace export` and `foldspace eval-dsm`: the training loop around
//! `foldspace::score::run` (arguments, progress, Ctrl-C, messages) and the evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use foldspace::compute::Compute;
use foldspace::io::sha256_hex;
use foldspace::score::data::{
    ChainFilter, GapPolicy, LevelSampling, TrainChain, evaluation_example, training_batch,
};
use foldspace::score::dataset::load_dataset;
use foldspace::score::network::{Numerics, ScoreNetConfig};
use foldspace::score::recipe::TrainConfig;
use foldspace::score::run::{
    CheckpointState, RunDir, RunEvent, SessionOptions, TrainingRun, new_optimizer, read_weights,
    recalibrated, stage_pool, write_atomic,
};
use foldspace::score::training::{EvalItem, evaluate_items, report, train_step_with};
use foldspace::score::weights::{
    CONFIG_METADATA_KEY, Precision, WeightMap, load_model, to_safetensors_with,
};
use foldspace::structure::read_chains_jsonl;
use indicatif::{ProgressBar, ProgressStyle};

use crate::common::{Backend, allocator_note, compute, say, weights_path};

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
    /// Start the new run in --out from this run's last checkpoint (or this checkpoint
    /// directory): its weights, average, optimiser state and step, under a config of the same
    /// network (--config, else the source run's, with the flags below applied).
    #[arg(long, conflicts_with = "resume")]
    pub fork: Option<PathBuf>,
    /// Steps of the first stage (default: the recipe's).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Examples per step in the first stage.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Crop of the first stage: residues, or `full`.
    #[arg(long)]
    pub crop: Option<String>,
    /// Crops of several sizes in the first stage: each step draws its size from
    /// crop..=crop-max, with the batch scaled to the same pixels; `none`: one size.
    #[arg(long)]
    pub crop_max: Option<String>,
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
    let mut config = match (&args.config, &args.fork) {
        (Some(path), _) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a training config", path.display()))?,
        (None, Some(from)) => {
            let checkpoint = RunDir::checkpoint_of(from)?;
            let run = checkpoint
                .parent()
                .and_then(Path::parent)
                .ok_or_else(|| anyhow!("{} is not inside a run directory", checkpoint.display()))?;
            RunDir::new(run).read_config()?
        }
        (None, None) => match args.recipe.unwrap_or(Recipe::Foldspace) {
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
        if let Some(m) = &args.crop_max {
            stage.crop_max = optional_number(m, "--crop-max")?;
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

/// Train (or resume) and write checkpoints, logs and validation reports under `args.out`.
pub fn pretrain(args: PretrainArgs) -> Result<()> {
    let base = compute(args.backend)?;
    let dir = RunDir::new(&args.out);
    let config = if args.resume {
        dir.read_config()?
    } else if let Some(from) = &args.fork {
        let config = config_for(&args)?;
        let checkpoint = RunDir::checkpoint_of(from)?;
        let step = dir.fork(&checkpoint, &config)?;
        eprintln!("forked from {} at step {step}", checkpoint.display());
        config
    } else {
        let config = config_for(&args)?;
        dir.create(&config)?;
        config
    };
    let resume = args.resume || args.fork.is_some();

    let started = Instant::now();
    let data = load_dataset(&args.data, &config.filter)?;
    for (file, why) in &data.skipped {
        eprintln!("warning: skipping {file}: {why}");
    }
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
            GapPolicy::Cut => "cut",
            GapPolicy::Drop => "dropped",
        },
        r.too_short,
        r.too_long,
        data.excluded,
        started.elapsed().as_secs_f64()
    );
    if data.train.is_empty() {
        bail!("no training chain is left after filtering");
    }

    let training = base.autodiff();
    let mut run = if resume {
        let (run, checkpoint) = TrainingRun::resume(&dir, &training)?;
        eprintln!(
            "resuming at step {} from {}",
            run.step,
            checkpoint.display()
        );
        run
    } else {
        TrainingRun::fresh(&dir, config, &training)?
    };
    let total = run.config.total_steps();
    let end = run.end_step(args.stop_after);
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
    let bar = ProgressBar::new(end);
    bar.set_position(run.step);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {per_sec} eta {eta} loss {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let session = Instant::now();
    let options = SessionOptions {
        workers: args.workers,
        stop_after: args.stop_after,
        keep_checkpoints: args.keep_checkpoints,
    };
    run.train(
        &dir,
        &data,
        &base,
        &options,
        &interrupted,
        |event| match event {
            RunEvent::Step {
                step,
                report,
                average_loss,
            } => {
                bar.set_message(format!("{:.4} (avg {average_loss:.4})", report.loss));
                bar.set_position(step);
            }
            RunEvent::Validated { step, report } => say(
                &bar,
                format!(
                    "step {step}: val loss {:.4} (high {:.4}, mid {:.4}, low {:.4})",
                    report.mean,
                    report.bands.get("high").copied().unwrap_or(f64::NAN),
                    report.bands.get("mid").copied().unwrap_or(f64::NAN),
                    report.bands.get("low").copied().unwrap_or(f64::NAN)
                ),
            ),
            RunEvent::Checkpoint { dir } => say(&bar, format!("checkpoint: {}", dir.display())),
            RunEvent::Interrupted { step } => say(
                &bar,
                format!("interrupted: saved at step {step}; continue with --resume"),
            ),
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "done: step {} of {total} in {:.1} s this session",
        run.step,
        session.elapsed().as_secs_f64()
    );
    Ok(())
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
    // Eight chains at a time, in batches of at most 2^18 map pixels that run in parallel on the
    // CPU (`evaluate_items`); every loss is independent of its batch-mates (evaluation mode).
    let (levels, sigmas_ref, seed) = (&levels, &sigmas, args.seed);
    for (group, some) in chains.chunks(8).enumerate() {
        let mine: Vec<EvalItem> = some
            .iter()
            .enumerate()
            .flat_map(|(k, chain)| {
                let index = group * 8 + k;
                levels.iter().filter_map(move |&level| {
                    evaluation_example(chain, index, level, sigmas_ref[level], seed, crop).map(
                        |example| EvalItem {
                            chain: index,
                            example,
                        },
                    )
                })
            })
            .collect();
        losses.extend(pollster::block_on(evaluate_items(
            &model,
            &compute,
            &sigmas,
            &mine,
            1 << 18,
        ))?);
        items.extend(mine);
        bar.inc(some.len() as u64);
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
    let dir = RunDir::checkpoint_of(&args.run)?;
    let state = CheckpointState::read(&dir)?;
    let source = if args.raw { "model" } else { "ema" };
    let mut map = read_weights(&dir.join(format!("{source}.safetensors")))?;
    let config = map.config()?;
    foldspace::score::weights::validate(&map, &config)?;
    if args.recalibrate > 0 {
        let run_dir = dir
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| anyhow!("{} is not inside a run directory", dir.display()))?;
        let run_config = RunDir::new(run_dir).read_config()?;
        if args.data.is_empty() {
            bail!("--recalibrate needs --data (the run's training chains)");
        }
        let data = load_dataset(&args.data, &run_config.filter)?;
        let stage = run_config
            .stages
            .first()
            .ok_or_else(|| anyhow!("the run has no stage"))?;
        let pool = stage_pool(stage, &data.train);
        map = recalibrated(&run_config, &map, &pool, &Compute::cpu(), args.recalibrate)?;
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
