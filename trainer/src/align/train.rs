//! `foldspace align`: read the corpus and the towers' caches, assemble the training set
//! (`foldspace::align::dataset`) and train the tri-modal model (stage 1, or stage 2 with the
//! score network).

use super::*;
use foldspace::align::dataset::AlignDataset;
use foldspace::score::network::ScoreNet;

#[derive(Args)]
pub(crate) struct AlignArgs {
    /// Chains (`chains.jsonl.gz`): sequences, structures and splits.
    #[arg(long)]
    structures: PathBuf,
    /// Function annotations of chains (`chain_function.jsonl.gz`).
    #[arg(long)]
    function: PathBuf,
    /// GO terms (`go_terms.tsv.gz`).
    #[arg(long)]
    go_terms: PathBuf,
    /// Swiss-Prot sequence–GO pairs (`swissprot50_go.tsv.gz`): sequence–text pairs.
    #[arg(long)]
    swissprot: Option<PathBuf>,
    /// Swiss-Prot entries to use at most (a seeded random subset).
    #[arg(long, default_value_t = 12000)]
    max_swissprot: usize,
    /// Phrasings per protein (the canonical text and templated variants).
    #[arg(long, default_value_t = 3)]
    phrasings: usize,
    #[command(flatten)]
    towers: TowerInputs,
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Take the learning rate down to this by the last step on a cosine (default: constant).
    #[arg(long)]
    final_learning_rate: Option<f64>,
    /// Raise the learning rates linearly from 0 over this many steps.
    #[arg(long, default_value_t = 0)]
    warmup_steps: usize,
    /// Continue from a model written by `foldspace align` (a directory with align.json and
    /// align.safetensors): its weights and structure standardisation; the optimiser starts afresh.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Weight of the sequence-masking intra-modal term (0: off; it doubles the sequence cost).
    #[arg(long, default_value_t = 0.0)]
    sequence_views: f32,
    /// Weight of the structure vector in a protein's vector (recorded with the model; training
    /// does not use it). With `--init` and `--steps 0`, re-weights a trained model.
    #[arg(long)]
    structure_weight: Option<f32>,
    /// Noise level at which the score network's embeddings are pooled for the structure tower
    /// (recorded with the model; default: the `--init` model's, else the network's smallest σ).
    /// `pool-structures --levels` fills its cache.
    #[arg(long)]
    structure_level: Option<usize>,
    /// Which residues the structure tower reads: `central` (one window of 64) or `tiled` (the
    /// whole chain in windows of 64); recorded with the model (default: the `--init` model's,
    /// else central). `pool-structures --windows` fills its cache.
    #[arg(long, value_parser = parse_windows)]
    structure_windows: Option<StructureWindows>,
    /// Fraction of the text-bearing items of each batch drawn as near misses of the others
    /// (sharing a GO term or EC number that at most 2 % of the items have, of another function).
    #[arg(long, default_value_t = 0.0)]
    near_misses: f32,
    /// Items per step with all three modalities.
    #[arg(long, default_value_t = 48)]
    triples: usize,
    /// Items per step with sequence and structure only.
    #[arg(long, default_value_t = 24)]
    sequence_structure: usize,
    /// Items per step with sequence and text only.
    #[arg(long, default_value_t = 24)]
    sequence_text: usize,
    /// Weight of the structure-view intra-modal term (stage 1: two noise draws on the pooled
    /// vector; stage 2: two crops of the structure through the network, doubling its cost).
    #[arg(long, default_value_t = 0.2)]
    structure_views: f32,
    /// Stage 2: train the score network of the structure tower too, through the pooling
    /// (needs `--init`, a stage-1 model). The tuned network is written beside the model as
    /// structure.safetensors and the structure vectors of everything else come from it.
    #[arg(long)]
    fine_tune_structure: bool,
    /// Learning rate of the score network in stage 2 (follows the schedule of the rest). Small:
    /// the pooled features vary by 0.005–0.05 between chains, and Adam moves each weight by
    /// about this much a step.
    #[arg(long, default_value_t = 1e-6)]
    structure_learning_rate: f64,
    /// Write the score network the structure tower read beside the model (structure.safetensors,
    /// named in align.json), so the model keeps reading structures through it when the default
    /// weights move on or the page is given other weights (what `assets/align/` ships).
    #[arg(long)]
    keep_structure_network: bool,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Output directory: align.safetensors, align.json, metrics.csv (and structure.safetensors
    /// in stage 2 or with `--keep-structure-network`).
    #[arg(long)]
    out: PathBuf,
}

/// Train the alignment model (stage 1: the structure and text towers frozen; stage 2 with
/// `--fine-tune-structure`: the score network trained too).
pub(crate) fn align(args: AlignArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.near_misses) {
        bail!(
            "--near-misses is a fraction of the batch (0 to 1), not {}",
            args.near_misses
        );
    }
    let corpus = Corpus::read(&args.structures, &args.function, &args.go_terms, None)?;
    let o = &corpus.ontology;
    if args.fine_tune_structure && args.init.is_none() {
        bail!("--fine-tune-structure (stage 2) continues a stage-1 model: pass --init");
    }
    let init_manifest = args.init.as_deref().map(read_manifest).transpose()?;
    let (score_path, score, level) = structure_tower(&args, init_manifest.as_ref())?;
    let windows = structure_windows(&args, init_manifest.as_ref())?;
    if args.fine_tune_structure && windows != StructureWindows::Central {
        bail!("--fine-tune-structure (stage 2) reads the central window only: not a tiled model");
    }
    let structure_path = args
        .towers
        .structure_cache
        .clone()
        .unwrap_or_else(|| default_structure_cache(&score, level, windows));
    let structures =
        StructureCache::open(&structure_path, "structure vectors", &score.weights_sha256)?;
    let swissprot = match &args.swissprot {
        Some(path) => Some(read_swissprot(path, &args.go_terms, o)?),
        None => None,
    };
    let dataset = assemble(
        &corpus.chains,
        &corpus.function,
        o,
        &structures.vectors,
        swissprot,
        &DatasetOptions {
            phrasings: args.phrasings,
            max_swissprot: args.max_swissprot,
            seed: args.seed,
            coordinates: args.fine_tune_structure,
        },
    );
    let counts = dataset.counts;
    eprintln!(
        "items: {} train chains with all three modalities, {} sequence–structure, \
         {} sequence–text chains (no cached structure vector: {} train chains), \
         {} Swiss-Prot sequence–text; {} distinct texts",
        counts.triples,
        counts.sequence_structure,
        counts.sequence_text_chains,
        counts.missing_structure,
        counts.swissprot,
        dataset.texts.len()
    );
    let texts = &dataset.texts;
    let (encoder, vectors) = text_vectors(&args, texts)?;
    let train_compute = compute(args.backend)?.autodiff();
    let device = train_compute.device.clone();
    let init = match &args.init {
        Some(dir) => Some(load_init(dir, &device, &score, &encoder)?),
        None => None,
    };
    let structure_width = structures.vectors.values().next().map_or(128, Vec::len);
    let (model_config, init, continued_from) = model_config(
        &args,
        init,
        structure_width,
        encoder.dim(),
        (level, windows),
    )?;
    let config = train_config(&args);
    let (tuning, batches_tracked) = if args.fine_tune_structure {
        let (tuning, batches) = structure_tuning(
            &score_path,
            level,
            train_compute,
            args.structure_learning_rate,
        )?;
        (Some(tuning), batches)
    } else {
        (None, 0)
    };
    let stage = if tuning.is_some() { 2 } else { 1 };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let started = Instant::now();
    let (trained, tuned) = train_logged(
        &args.out,
        &dataset,
        &vectors,
        model_config,
        init,
        tuning,
        &config,
        &device,
    )?;
    let weights = trained.to_safetensors()?;
    write_with_sha256(&args.out.join(WEIGHTS_FILE), &weights)?;
    let keep_network = init_manifest
        .as_ref()
        .is_some_and(|m| m.structure_network.is_some())
        || args.keep_structure_network;
    let network =
        structure_network_bytes(tuned, &score, &score_path, batches_tracked, keep_network)?;
    let (structure_network, structure_sha) = match &network {
        Some(bytes) => {
            write_with_sha256(&args.out.join(STRUCTURE_NETWORK), bytes)?;
            (Some(STRUCTURE_NETWORK.to_string()), sha256_hex(bytes))
        }
        None => (None, score.weights_sha256.clone()),
    };
    let training = serde_json::json!({
        "stage": stage,
        "frozen": if stage == 2 {
            vec!["text tower (MiniLM)"]
        } else {
            vec!["structure tower (score network)", "text tower (MiniLM)"]
        },
        "structure_learning_rate": (stage == 2).then_some(args.structure_learning_rate),
        "train": config,
        "items": {
            "triples": counts.triples,
            "sequence_structure": counts.sequence_structure,
            "sequence_text_chains": counts.sequence_text_chains,
            "swissprot": counts.swissprot,
            "texts": texts.len(),
        },
        "seconds": started.elapsed().as_secs_f64(),
        "weights_sha256": sha256_hex(&weights),
        "continued_from": continued_from,
    });
    let manifest = AlignManifest {
        config: trained.config.clone(),
        structure_mean: trained.structure_mean.clone(),
        structure_std: trained.structure_std.clone(),
        structure_weights_sha256: structure_sha,
        structure_network,
        text_weights_sha256: encoder.source_sha256.clone(),
        training,
    };
    write_with_sha256(
        &args.out.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    eprintln!(
        "wrote {} ({:.0} s)",
        args.out.join(WEIGHTS_FILE).display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Swiss-Prot entries, obsolete terms left out (the dataset draws its sample).
fn read_swissprot(path: &Path, go_terms: &Path, o: &Ontology) -> Result<Vec<Annotation>> {
    let mut entries = read_swissprot_tsv(&read_bytes(path)?)
        .with_context(|| format!("reading {}", path.display()))?;
    let dropped: usize = entries.iter_mut().map(|e| e.retain_known(o)).sum();
    if dropped > 0 {
        eprintln!(
            "{dropped} GO annotations of Swiss-Prot entries name terms that {} does not have \
             (obsolete): left out",
            go_terms.display()
        );
    }
    Ok(entries)
}

/// Stage 2: the score network of `score_path`, trainable, on the training device; with the
/// count of batches its norms tracked (written back with the tuned network).
fn structure_tuning(
    score_path: &Path,
    level: usize,
    train_compute: Compute,
    learning_rate: f64,
) -> Result<(StructureTuning, u64)> {
    let (map, sha) = WeightMap::from_file(score_path)?;
    let batches = map
        .tensors
        .get("norm_out.norm.num_batches_tracked")
        .and_then(|t| t.values.first())
        .map_or(0, |&v| v as u64);
    let network = Embedder::new(&map, sha, train_compute.clone())?;
    let tuning = StructureTuning {
        level,
        network: network.model,
        compute: train_compute,
        learning_rate,
    };
    Ok((tuning, batches))
}

/// Train, writing each step's losses to `out/metrics.csv` and every 20th to the terminal.
#[allow(clippy::too_many_arguments)]
fn train_logged(
    out: &Path,
    dataset: &AlignDataset,
    vectors: &[Vec<f32>],
    model_config: AlignConfig,
    init: Option<AlignTrained>,
    tuning: Option<StructureTuning>,
    config: &AlignTrainConfig,
    device: &Device,
) -> Result<(AlignTrained, Option<ScoreNet>)> {
    let mut metrics = std::fs::File::create(out.join("metrics.csv"))?;
    writeln!(
        metrics,
        "step,loss,sequence_structure,sequence_text,structure_text,views,step_s"
    )?;
    let mut last = Instant::now();
    let mut write_error = None;
    let (trained, tuned) = pollster::block_on(train(
        &dataset.items,
        vectors,
        &dataset.text_facts,
        model_config,
        init,
        tuning,
        config,
        device,
        |step, l| {
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            if let Err(e) = writeln!(
                metrics,
                "{step},{:.5},{:.5},{:.5},{:.5},{:.5},{dt:.3}",
                l[0], l[1], l[2], l[3], l[4]
            ) {
                write_error.get_or_insert(e);
            }
            if step % 20 == 0 || step == 1 {
                eprintln!(
                    "step {step}: loss {:.4} (seq–str {:.3}, seq–text {:.3}, str–text {:.3}, views {:.3}) {:.1} s/step",
                    l[0], l[1], l[2], l[3], l[4], dt
                );
            }
        },
    ))?;
    if let Some(e) = write_error {
        return Err(e).context("writing metrics.csv");
    }
    Ok((trained, tuned))
}

/// The structure network the model reads, to write beside it: tuned here, or the one it
/// continued from or was asked to keep (`keep`: its file as read); none when it reads the
/// shipped network.
fn structure_network_bytes(
    tuned: Option<ScoreNet>,
    score: &Embedder,
    score_path: &Path,
    batches_tracked: u64,
    keep: bool,
) -> Result<Option<Vec<u8>>> {
    Ok(match tuned {
        Some(net) => Some(to_safetensors(&pollster::block_on(weight_map(
            &net,
            &score.config,
            batches_tracked,
        ))?)?),
        None if keep => Some(read_bytes(score_path)?),
        None => None,
    })
}

/// The score network the structure tower reads (its file, loaded on the CPU) and the noise level
/// it is pooled at: `--weights`, else a stage-2 `--init` model's tuned network (a model
/// continued from one keeps reading structures through it), else the shipped weights; the level
/// from `--structure-level`, else the `--init` model's, else the network's smallest σ.
fn structure_tower(
    args: &AlignArgs,
    init_manifest: Option<&AlignManifest>,
) -> Result<(PathBuf, Embedder, usize)> {
    let score_path = match (&args.towers.weights, &args.init, init_manifest) {
        (None, Some(dir), Some(m)) if m.structure_network.is_some() => {
            dir.join(m.structure_network.as_deref().unwrap_or_default())
        }
        _ => weights_path(args.towers.weights.as_deref())?,
    };
    let score = Embedder::from_file(&score_path, Compute::cpu())?;
    let level = match (args.structure_level, init_manifest) {
        (Some(l), Some(m)) if m.config.level(&score) != l => bail!(
            "the model of --init pools structures at noise level {}, not {l}: leave --structure-level out",
            m.config.level(&score)
        ),
        (Some(l), _) => l,
        (None, Some(m)) => m.config.level(&score),
        (None, None) => score.default_level(),
    };
    score.sigma(level)?;
    Ok((score_path, score, level))
}

/// Which residues the structure tower reads: `--structure-windows`, else the `--init` model's,
/// else the central window.
fn structure_windows(
    args: &AlignArgs,
    init_manifest: Option<&AlignManifest>,
) -> Result<StructureWindows> {
    match (args.structure_windows, init_manifest) {
        (Some(w), Some(m)) if m.config.structure_windows != w => bail!(
            "the model of --init reads {:?} structure windows, not {w:?}: leave --structure-windows out",
            m.config.structure_windows
        ),
        (Some(w), _) => Ok(w),
        (None, Some(m)) => Ok(m.config.structure_windows),
        (None, None) => Ok(StructureWindows::Central),
    }
}

/// The model of `--init`, checked to have been trained on this run's towers.
fn load_init(
    dir: &Path,
    device: &Device,
    score: &Embedder,
    encoder: &TextEncoder,
) -> Result<(AlignTrained, AlignManifest)> {
    let (model, manifest, _) = load_align(Some(dir), device)?;
    if manifest.structure_weights_sha256 != score.weights_sha256
        || manifest.text_weights_sha256 != encoder.source_sha256
    {
        bail!(
            "{} was trained on other structure or text towers than this run's",
            dir.display()
        );
    }
    Ok((model, manifest))
}

/// The text tower and the vectors of `texts` (from its cache, filled as needed).
fn text_vectors(args: &AlignArgs, texts: &[String]) -> Result<(TextEncoder, Vec<Vec<f32>>)> {
    let (encoder, mut text_cache) = text_tower(
        args.towers.text_model.as_deref(),
        args.backend,
        args.towers.text_cache.as_deref(),
    )?;
    text_cache.fill_texts(&encoder, texts)?;
    let vectors: Vec<Vec<f32>> = text_cache
        .get_all(texts.iter().map(String::as_str))?
        .into_iter()
        .map(<[f32]>::to_vec)
        .collect();
    Ok((encoder, vectors))
}

/// The training loop's settings from the command line.
fn train_config(args: &AlignArgs) -> AlignTrainConfig {
    AlignTrainConfig {
        steps: args.steps,
        triples: args.triples,
        sequence_structure: args.sequence_structure,
        sequence_text: args.sequence_text,
        learning_rate: args.learning_rate,
        final_learning_rate: args.final_learning_rate,
        warmup_steps: args.warmup_steps,
        weight_structure_views: args.structure_views,
        weight_sequence_views: args.sequence_views,
        near_misses: args.near_misses,
        seed: args.seed,
        ..AlignTrainConfig::default()
    }
}

/// The model's configuration (the `--init` model's, else the defaults for the towers' widths)
/// with this run's structure weight, level and windows, the `--init` model given them too (they
/// are not trained), and what the manifest records it was continued from.
fn model_config(
    args: &AlignArgs,
    init: Option<(AlignTrained, AlignManifest)>,
    structure_width: usize,
    text_width: usize,
    (level, windows): (usize, StructureWindows),
) -> Result<(AlignConfig, Option<AlignTrained>, serde_json::Value)> {
    let mut model_config = match &init {
        Some((model, _)) => model.config.clone(),
        None => AlignConfig {
            structure_width,
            text_width,
            ..AlignConfig::default()
        },
    };
    if let Some(w) = args.structure_weight {
        model_config.structure_weight = checked_weight(w)?;
    }
    model_config.structure_level = Some(level);
    model_config.structure_windows = windows;
    // The weight is not trained: the continued model takes this run's.
    let (init, continued_from) = match init {
        Some((mut model, manifest)) => {
            model.config.structure_weight = model_config.structure_weight;
            model.config.structure_level = model_config.structure_level;
            model.config.structure_windows = windows;
            let from = serde_json::json!({
                "model": args.init.as_ref().map(|d| d.display().to_string()),
                "training": manifest.training,
            });
            (Some(model), from)
        }
        None => (None, serde_json::Value::Null),
    };
    Ok((model_config, init, continued_from))
}
