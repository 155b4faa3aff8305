//! `foldspace eval-ppi`: interface-site prediction on the GraphPPIS benchmark with and without
//! the score model's embeddings (see EVALUATION.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use foldspace::compute::Compute;
use foldspace::io::sha256_hex;
use foldspace::ppi::data::{
    PlausibilityScaler, PpiChain, PreparedChain, Standardiser, base_features, exposure_features,
    neighbours, plausibility_features, read_ppi_jsonl,
};
use foldspace::ppi::model::PpiModelKind;
use foldspace::ppi::training::{PpiTrainConfig, predict, train};
use foldspace::profile::{
    PROFILE_FEATURES, SearchConfig, SequenceDb, profile, read_sequences, search,
};
use foldspace::score::embed::Embedder;
use foldspace::score::refine::{PLAUSIBILITY_RADIUS, residue_plausibility};
use foldspace::sequence::{KmerIndex, nearest};
use foldspace::stats::{BinaryMetrics, MeanStd, binary_metrics, mean_std};
use foldspace::structure::{Chain, ResidueNumber, read_chains_jsonl};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::common::{Backend, cache_dir, compute, weights_path};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelArg {
    /// Sequence window + global chain features through an MLP (DeepPPISP-like).
    Window,
    /// Message passing over the nearest residues in space, edges carrying the pair embedding.
    Pair,
}

/// Which per-residue embedding the classifiers read.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ResidueEmbeddingArg {
    /// The pair embedding averaged over every residue of the chain (the published definition).
    Mean,
    /// The pair embedding averaged over the residue's spatial neighbours (`--neighbours`).
    Neighbours,
    /// No embedding at all in the classifier (with `--plausibility`: the score model's
    /// implausibility only).
    None,
}

#[derive(Args)]
pub(crate) struct EvalPpiArgs {
    /// Training chains (Train_335.jsonl.gz).
    #[arg(long)]
    train: PathBuf,
    /// Test files (Test_60.jsonl.gz, Test_315.jsonl.gz); each is reported on its own.
    #[arg(long, required = true, num_args = 1..)]
    test: Vec<PathBuf>,
    /// Score-model weights for the embeddings, or `none` for the same classifier without them.
    /// Default: the shipped weights.
    #[arg(long)]
    weights: Option<String>,
    /// Classifier.
    #[arg(long, value_enum, default_value_t = ModelArg::Window)]
    model: ModelArg,
    /// Training runs with different seeds (initialisation, validation carve-out, order).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Noise level of the embeddings (default: the smallest sigma).
    #[arg(long)]
    noise_level: Option<usize>,
    /// Per-residue embedding: the mean of the pair embedding over the whole chain, or over the
    /// residue's spatial neighbours only (computed from the same cached pair embeddings), or none
    /// (then `--weights` only serves `--plausibility`).
    #[arg(long, value_enum, default_value_t = ResidueEmbeddingArg::Mean)]
    residue_embedding: ResidueEmbeddingArg,
    /// Where the score model runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Spatial neighbours per residue (the pair model's edges).
    #[arg(long, default_value_t = 16)]
    neighbours: usize,
    /// Most training epochs (early stopping on the validation carve-out usually ends sooner).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Embedding cache (computed once per weights, level and data file).
    /// Default: ~/.cache/foldspace/eval-ppi.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Use only the first N training chains (quick checks).
    #[arg(long)]
    max_train_chains: Option<usize>,
    /// Check the test chains against the chains a model was pretrained on (a chains.jsonl.gz:
    /// its `train` split): local-alignment identity of each test chain's nearest pretraining
    /// chain (k-mer candidates, Smith–Waterman), counting those at ≥ 30 % identity over ≥ 80 %
    /// coverage; the file's `ppi_test_like` chains are searched against the test chains too,
    /// to show the check finds what the split marked.
    #[arg(long)]
    pretraining: Option<PathBuf>,
    /// Sequence databases for evolutionary profiles (a Swiss-Prot TSV with a `sequence`
    /// column, a chains.jsonl.gz; plain or gzip): each chain is searched against them and its
    /// profile (PSI-BLAST-like, see `foldspace::profile`) joins the per-residue features.
    /// Computed once per databases and data file, then cached.
    #[arg(long, num_args = 1..)]
    profiles: Vec<PathBuf>,
    /// Search rounds of the profiles (the second scores with the first round's profile).
    #[arg(long, default_value_t = 2)]
    profile_rounds: usize,
    /// Add exposure features from the C-alpha trace to the per-residue features: half-sphere
    /// exposure (13 Å), the one-sidedness of the neighbours, and whether the approximate side
    /// chain points out of the protein (`foldspace::ppi::data::exposure_features`).
    #[arg(long)]
    exposure: bool,
    /// Add the score model's implausibility at this noise level to the per-residue features:
    /// ln(1 + ‖g_i‖) and its mean over the residues within 15 Å (the page's plausibility colour),
    /// standardised on the training chains. Needs `--weights` (not `none`); cached per weights,
    /// level and data file.
    #[arg(long, value_name = "LEVEL")]
    plausibility: Option<usize>,
    /// One JSON object on stdout instead of tables.
    #[arg(long)]
    json: bool,
}

const METRICS: [&str; 7] = ["acc", "precision", "recall", "f1", "mcc", "auroc", "auprc"];

fn metric(m: &BinaryMetrics, name: &str) -> f64 {
    match name {
        "acc" => m.acc,
        "precision" => m.precision,
        "recall" => m.recall,
        "f1" => m.f1,
        "mcc" => m.mcc,
        "auroc" => m.auroc,
        _ => m.auprc,
    }
}

fn set_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.trim_end_matches(".gz")
        .trim_end_matches(".jsonl")
        .to_string()
}

fn read_set(path: &Path) -> Result<(Vec<PpiChain>, String)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let chains = read_ppi_jsonl(&bytes).with_context(|| format!("reading {}", path.display()))?;
    Ok((chains, sha256_hex(&bytes)))
}

pub(crate) fn eval_ppi(args: EvalPpiArgs) -> Result<()> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if args.neighbours == 0 {
        bail!("--neighbours must be at least 1");
    }
    let (mut train_chains, train_sha) = read_set(&args.train)?;
    if let Some(n) = args.max_train_chains {
        train_chains.truncate(n);
    }
    let mut tests = Vec::new();
    for path in &args.test {
        let (chains, sha) = read_set(path)?;
        tests.push((set_name(path), chains, sha));
    }
    let overlap = match &args.pretraining {
        Some(path) => Some(overlap_report(path, &tests)?),
        None => None,
    };
    let with_weights = args.weights.as_deref() != Some("none");
    if args.plausibility.is_some() && !with_weights {
        bail!("--plausibility needs score-model weights: drop --weights none");
    }
    let use_embeddings = with_weights && args.residue_embedding != ResidueEmbeddingArg::None;
    let (embedder, level) = if with_weights {
        let (e, path, level) = load_embedder(&args)?;
        (Some((e, path)), use_embeddings.then_some(level))
    } else {
        (None, None)
    };
    let cache = args.cache.clone().unwrap_or_else(default_cache);
    let prepare = |name: &str, chains: &[PpiChain], sha: &str| -> Result<Vec<PreparedChain>> {
        match (&embedder, level) {
            (Some((e, _)), Some(level)) => {
                prepare_with_embeddings(e, level, name, chains, sha, args.neighbours, &cache)
            }
            _ => Ok(chains
                .iter()
                .map(|c| prepare_plain(c, args.neighbours))
                .collect()),
        }
    };
    let mut train_set = prepare(&set_name(&args.train), &train_chains, &train_sha)?;
    let mut test_sets = Vec::new();
    for (name, chains, sha) in &tests {
        test_sets.push((name.clone(), prepare(name, chains, sha)?));
    }
    let profiles = if args.profiles.is_empty() {
        None
    } else {
        Some(add_profiles(
            &args,
            (&train_chains, &train_sha, &mut train_set),
            &tests,
            &mut test_sets,
            &cache,
        )?)
    };
    if args.exposure {
        add_exposure(&train_chains, &mut train_set, &tests, &mut test_sets);
    }
    if let (Some(level), Some((e, _))) = (args.plausibility, &embedder) {
        let sets = std::iter::once((
            set_name(&args.train),
            &train_chains,
            &train_sha,
            &mut train_set,
        ))
        .chain(
            tests
                .iter()
                .zip(test_sets.iter_mut())
                .map(|((name, chains, sha), (_, set))| (name.clone(), chains, sha, set)),
        );
        for (name, chains, sha, set) in sets {
            let norms = plausibility_norms(e, level, &name, chains, sha, &cache)?;
            for ((prep, chain), n) in set.iter_mut().zip(chains.iter()).zip(&norms) {
                prep.plausibility = Some(plausibility_features(&chain.ca, n, PLAUSIBILITY_RADIUS));
            }
        }
        if let Some(s) = PlausibilityScaler::fit(&train_set) {
            for c in train_set
                .iter_mut()
                .chain(test_sets.iter_mut().flat_map(|(_, set)| set.iter_mut()))
            {
                s.apply(c);
            }
        }
    }
    if args.residue_embedding == ResidueEmbeddingArg::Neighbours {
        for c in train_set
            .iter_mut()
            .chain(test_sets.iter_mut().flat_map(|(_, set)| set.iter_mut()))
        {
            c.use_neighbourhood_embedding();
        }
    }
    standardise(&mut train_set, &mut test_sets);

    let kind = match args.model {
        ModelArg::Window => PpiModelKind::Window,
        ModelArg::Pair => PpiModelKind::Graph,
    };
    let (per_test, runs) = train_seeds(&args, kind, use_embeddings, &train_set, &test_sets)?;

    let mut tests_json = serde_json::Map::new();
    for ((name, set), ms) in test_sets.iter().zip(&per_test) {
        let mut obj = serde_json::Map::new();
        for metric_name in METRICS {
            let values: Vec<f64> = ms.iter().map(|m| metric(m, metric_name)).collect();
            obj.insert(metric_name.into(), serde_json::to_value(mean_std(&values))?);
        }
        obj.insert("chains".into(), json!(set.len()));
        obj.insert(
            "residues".into(),
            json!(set.iter().map(|c| c.len()).sum::<usize>()),
        );
        tests_json.insert(name.clone(), Value::Object(obj));
    }
    let out = json!({
        "tests": tests_json,
        "model": match args.model { ModelArg::Window => "window", ModelArg::Pair => "pair" },
        "embeddings": use_embeddings,
        "weights": match &embedder {
            Some((e, path)) => json!({"path": path.display().to_string(), "sha256": e.weights_sha256}),
            None => Value::Null,
        },
        "noise_level": level,
        "residue_embedding": match (use_embeddings, args.residue_embedding) {
            (true, ResidueEmbeddingArg::Mean) => json!("mean"),
            (true, ResidueEmbeddingArg::Neighbours) => json!("neighbours"),
            _ => Value::Null,
        },
        "plausibility": args.plausibility.map(|level| json!({
            "level": level,
            "radius": PLAUSIBILITY_RADIUS,
        })),
        "train": {"file": set_name(&args.train), "chains": train_set.len()},
        "seeds": args.seeds,
        "runs": runs,
        "pretraining_overlap": overlap,
        "profiles": profiles,
        "exposure": args.exposure,
        "foldspace": foldspace::VERSION,
    });
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_table(&args, &out, profiles.is_some(), &test_sets, &per_test);
    }
    Ok(())
}

/// The score model of `--weights` (or the shipped one) and the noise level of its embeddings.
fn load_embedder(args: &EvalPpiArgs) -> Result<(Embedder, PathBuf, usize)> {
    let path = weights_path(args.weights.as_deref().map(Path::new))?;
    let e = Embedder::from_file(&path, compute(args.backend)?)
        .with_context(|| format!("loading weights {}", path.display()))?;
    let level = args.noise_level.unwrap_or(e.default_level());
    if level >= e.sigmas().len() {
        bail!(
            "--noise-level {level} is out of range: the model has levels 0..={}",
            e.sigmas().len() - 1
        );
    }
    Ok((e, path, level))
}

/// Profiles of every chain against `--profiles` (cached), joined to the prepared chains; the
/// report of the databases and the hits.
fn add_profiles(
    args: &EvalPpiArgs,
    train: (&Vec<PpiChain>, &String, &mut Vec<PreparedChain>),
    tests: &[(String, Vec<PpiChain>, String)],
    test_sets: &mut [(String, Vec<PreparedChain>)],
    cache: &Path,
) -> Result<Value> {
    if args.profile_rounds == 0 {
        bail!("--profile-rounds must be at least 1");
    }
    let config = SearchConfig {
        iterations: args.profile_rounds,
        ..SearchConfig::default()
    };
    let db = ProfileDatabase::read(&args.profiles, config)?;
    let mut report = serde_json::Map::new();
    let train_name = set_name(&args.train);
    let (train_chains, train_sha, train_set) = train;
    let sets = std::iter::once((&train_name, train_chains, train_sha, train_set)).chain(
        tests
            .iter()
            .zip(test_sets.iter_mut())
            .map(|((name, chains, sha), (_, set))| (name, chains, sha, set)),
    );
    for (name, chains, sha, set) in sets {
        let (profiles, hits) = db.profiles(name, chains, sha, cache)?;
        for (prep, p) in set.iter_mut().zip(profiles) {
            prep.profile = Some(p);
        }
        report.insert(name.clone(), hit_summary(&hits));
    }
    Ok(json!({"databases": db.describe(), "hits": report}))
}

/// Exposure features of every chain, joined to the prepared chains.
fn add_exposure(
    train_chains: &[PpiChain],
    train_set: &mut [PreparedChain],
    tests: &[(String, Vec<PpiChain>, String)],
    test_sets: &mut [(String, Vec<PreparedChain>)],
) {
    let sets = std::iter::once((train_chains, train_set)).chain(
        tests
            .iter()
            .zip(test_sets.iter_mut())
            .map(|((_, chains, _), (_, set))| (chains.as_slice(), set.as_mut_slice())),
    );
    for (chains, set) in sets {
        for (prep, chain) in set.iter_mut().zip(chains.iter()) {
            prep.exposure = Some(exposure_features(&chain.ca));
        }
    }
}

/// Standardise the per-residue features with the training set's statistics.
fn standardise(train_set: &mut [PreparedChain], test_sets: &mut [(String, Vec<PreparedChain>)]) {
    if let Some(s) = Standardiser::fit(train_set) {
        for c in train_set.iter_mut() {
            s.apply(c);
        }
        for (_, set) in test_sets.iter_mut() {
            for c in set.iter_mut() {
                s.apply(c);
            }
        }
    }
}

/// Train one classifier per seed and score it on each test set: the metrics per test set (one
/// per seed) and each run's record.
fn train_seeds(
    args: &EvalPpiArgs,
    kind: PpiModelKind,
    use_embeddings: bool,
    train_set: &[PreparedChain],
    test_sets: &[(String, Vec<PreparedChain>)],
) -> Result<(Vec<Vec<BinaryMetrics>>, Vec<Value>)> {
    let cpu = Compute::cpu();
    let train_device = cpu.autodiff().device;
    let mut per_test: Vec<Vec<BinaryMetrics>> = vec![Vec::new(); test_sets.len()];
    let mut runs = Vec::new();
    for seed in 0..args.seeds {
        let mut config = PpiTrainConfig::new(kind, use_embeddings, seed);
        config.max_epochs = args.epochs;
        let quiet = args.json;
        let trained = pollster::block_on(train(train_set, config, &train_device, |e, l, a| {
            if !quiet {
                eprintln!("seed {seed} epoch {e}: train loss {l:.4}, validation AUPRC {a:.4}");
            }
        }))?;
        let mut run = json!({
            "seed": seed,
            "threshold": trained.threshold,
            "val_auprc": trained.val_auprc,
            "best_epoch": trained.best_epoch,
            "epochs": trained.epochs_run,
        });
        for (k, (name, set)) in test_sets.iter().enumerate() {
            let refs: Vec<&PreparedChain> = set.iter().collect();
            let probs = pollster::block_on(predict(&trained.net, &config, &refs, &cpu.device))?;
            let scores: Vec<f32> = probs.concat();
            let labels: Vec<bool> = set.iter().flat_map(|c| c.labels.iter().copied()).collect();
            let m = binary_metrics(&scores, &labels, trained.threshold);
            run[name.as_str()] = serde_json::to_value(m)?;
            per_test[k].push(m);
        }
        runs.push(run);
    }
    Ok((per_test, runs))
}

/// The human-readable table of the metrics (mean ± std over the seeds).
fn print_table(
    args: &EvalPpiArgs,
    out: &Value,
    with_profiles: bool,
    test_sets: &[(String, Vec<PreparedChain>)],
    per_test: &[Vec<BinaryMetrics>],
) {
    println!(
        "eval-ppi: model {}, {}, {}{}{} (mean ± std over {} seeds; threshold from the validation carve-out)",
        out["model"].as_str().unwrap_or(""),
        if out["embeddings"].as_bool().unwrap_or(false) {
            "with structure embeddings"
        } else {
            "without structure embeddings"
        },
        if with_profiles {
            "with sequence profiles"
        } else {
            "without sequence profiles"
        },
        if args.exposure {
            ", with exposure features"
        } else {
            ""
        },
        match args.plausibility {
            Some(level) => format!(", with the score model's plausibility at level {level}"),
            None => String::new(),
        },
        args.seeds
    );
    println!(
        "{:<12} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
        "test", "ACC", "precision", "recall", "F1", "MCC", "AUROC", "AUPRC"
    );
    for (name, ms) in test_sets.iter().map(|(n, _)| n).zip(per_test) {
        let cells: Vec<String> = METRICS
            .iter()
            .map(|m| {
                let MeanStd { mean, std } =
                    mean_std(&ms.iter().map(|x| metric(x, m)).collect::<Vec<_>>());
                format!("{mean:.3} ± {std:.3}")
            })
            .collect();
        println!(
            "{:<12} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
            name, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
        );
    }
}

/// Identity of each test chain's nearest `train` chain of a pretraining file, and how many of
/// the file's `ppi_test_like` chains the same search finds among the test chains.
fn overlap_report(path: &Path, tests: &[(String, Vec<PpiChain>, String)]) -> Result<Value> {
    const MIN_IDENTITY: f64 = 0.3;
    const MIN_COVERAGE: f64 = 0.8;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let chains = read_chains_jsonl(&bytes, 1 << 31)
        .with_context(|| format!("reading {}", path.display()))?;
    let seqs = |split: &str| -> Vec<&[u8]> {
        chains
            .iter()
            .filter(|c| c.split == split)
            .map(|c| c.chain.sequence.as_bytes())
            .collect()
    };
    let (train, marked) = (seqs("train"), seqs("ppi_test_like"));
    if train.is_empty() {
        bail!("{} has no chain of split 'train'", path.display());
    }
    let index = KmerIndex::new(train.iter().copied(), 3);
    let test_seqs: Vec<&[u8]> = tests
        .iter()
        .flat_map(|(_, c, _)| c.iter().map(|c| c.sequence.as_bytes()))
        .collect();
    let mut similar = Vec::new();
    let mut max_identity = 0.0f64;
    for (name, chain) in tests
        .iter()
        .flat_map(|(name, set, _)| set.iter().map(move |c| (name, c)))
    {
        if let Some((id, ident)) =
            nearest(&index, &train, chain.sequence.as_bytes(), 50, MIN_COVERAGE)
        {
            max_identity = max_identity.max(ident.fraction());
            if ident.fraction() >= MIN_IDENTITY {
                similar.push(json!({"test": name, "chain": chain.id, "identity": ident.fraction(), "train_index": id}));
            }
        }
    }
    let test_index = KmerIndex::new(test_seqs.iter().copied(), 3);
    let found = marked
        .iter()
        .filter(|s| {
            nearest(&test_index, &test_seqs, s, 50, MIN_COVERAGE)
                .is_some_and(|(_, i)| i.fraction() >= MIN_IDENTITY)
        })
        .count();
    eprintln!(
        "pretraining overlap: {} of {} test chains have a '{}' train chain at >= {:.0} % identity over >= {:.0} % coverage (highest identity {:.2}); the same search finds {} of the {} chains marked ppi_test_like",
        similar.len(),
        test_seqs.len(),
        path.display(),
        MIN_IDENTITY * 100.0,
        MIN_COVERAGE * 100.0,
        max_identity,
        found,
        marked.len()
    );
    Ok(json!({
        "file": path.display().to_string(),
        "train_chains": train.len(),
        "test_chains": test_seqs.len(),
        "min_identity": MIN_IDENTITY,
        "min_coverage": MIN_COVERAGE,
        "similar_test_chains": similar,
        "highest_identity": max_identity,
        "ppi_test_like_found": found,
        "ppi_test_like": marked.len(),
    }))
}

fn default_cache() -> PathBuf {
    cache_dir().join("eval-ppi")
}

fn prepare_plain(chain: &PpiChain, k: usize) -> PreparedChain {
    PreparedChain {
        id: chain.id.clone(),
        labels: chain.labels.clone(),
        base: base_features(chain),
        residue_embedding: None,
        neighbours: neighbours(&chain.ca, k),
        edge_embedding: None,
        channels: 0,
        profile: None,
        exposure: None,
        plausibility: None,
    }
}

/// Median, mean and zero count of hits per chain.
fn hit_summary(hits: &[usize]) -> Value {
    let mut sorted = hits.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let mean = hits.iter().sum::<usize>() as f64 / hits.len().max(1) as f64;
    json!({
        "chains": hits.len(),
        "median": median,
        "mean": mean,
        "none": hits.iter().filter(|&&h| h == 0).count(),
    })
}

/// The profile databases, read and indexed.
struct ProfileDatabase {
    files: Vec<(PathBuf, String, usize)>,
    db: SequenceDb,
    config: SearchConfig,
}

const PROFILE_MAGIC: &[u8; 8] = b"FSPROF01";

impl ProfileDatabase {
    fn read(paths: &[PathBuf], config: SearchConfig) -> Result<Self> {
        let mut files = Vec::new();
        let mut sequences = Vec::new();
        for path in paths {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let seqs =
                read_sequences(&bytes).with_context(|| format!("reading {}", path.display()))?;
            files.push((path.clone(), sha256_hex(&bytes), seqs.len()));
            sequences.extend(seqs);
        }
        let started = std::time::Instant::now();
        let db = SequenceDb::new(&sequences)?;
        eprintln!(
            "profile database: {} sequences, {} residues, indexed in {:.1} s",
            db.len(),
            db.residues(),
            started.elapsed().as_secs_f64()
        );
        Ok(Self { files, db, config })
    }

    fn describe(&self) -> Value {
        json!({
            "files": self.files.iter().map(|(p, sha, n)| json!({
                "file": p.display().to_string(), "sha256": sha, "sequences": n,
            })).collect::<Vec<_>>(),
            "sequences": self.db.len(),
            "residues": self.db.residues(),
            "search": format!("{:?}", self.config),
        })
    }

    /// Profiles of `chains` and the hit count of each, from the cache or computed (two threads).
    fn profiles(
        &self,
        name: &str,
        chains: &[PpiChain],
        data_sha: &str,
        cache: &Path,
    ) -> Result<Profiles> {
        let shas: Vec<&str> = self.files.iter().map(|(_, s, _)| s.as_str()).collect();
        let key = sha256_hex(
            format!(
                "{}-{data_sha}-{}-{:?}-{PROFILE_FEATURES}",
                shas.join(","),
                chains.len(),
                self.config
            )
            .as_bytes(),
        );
        let file = cache.join(format!("profiles-{name}-{}.bin", &key[..16]));
        if let Some(v) = read_cached(&file, &format!("profiles of {name}"), |data| {
            read_profiles(data, chains)
        }) {
            return Ok(v);
        }
        let started = std::time::Instant::now();
        let config = self.config;
        let done = std::sync::atomic::AtomicUsize::new(0);
        let one = |c: &PpiChain| {
            let hits = search(&self.db, c.sequence.as_bytes(), &config);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(50) {
                eprintln!(
                    "profiles of {name}: {n}/{} chains, {:.0} s",
                    chains.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            (profile(c.sequence.as_bytes(), &hits), hits.len())
        };
        let half = chains.len().div_ceil(2);
        let (a, b) = chains.split_at(half.min(chains.len()));
        let (mut out, rest) = std::thread::scope(|s| {
            let t = s.spawn(|| b.iter().map(one).collect::<Vec<_>>());
            let first: Vec<_> = a.iter().map(one).collect();
            (first, t.join())
        });
        out.extend(rest.map_err(|_| anyhow::anyhow!("a profile thread panicked"))?);
        let (profiles, hits): (Vec<_>, Vec<_>) = out.into_iter().unzip();
        eprintln!(
            "profiles of {name}: {} chains in {:.0} s",
            chains.len(),
            started.elapsed().as_secs_f64()
        );
        write_cached(&file, |tmp| write_profiles(tmp, &profiles, &hits))?;
        Ok((profiles, hits))
    }
}

fn write_profiles(
    path: &Path,
    profiles: &[Vec<[f32; PROFILE_FEATURES]>],
    hits: &[usize],
) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(PROFILE_MAGIC)?;
    out.write_all(&(profiles.len() as u32).to_le_bytes())?;
    for (p, h) in profiles.iter().zip(hits) {
        out.write_all(&(p.len() as u32).to_le_bytes())?;
        out.write_all(&(*h as u32).to_le_bytes())?;
        for v in p.iter().flatten() {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Per chain: its profile, and its hit count.
type Profiles = (Vec<Vec<[f32; PROFILE_FEATURES]>>, Vec<usize>);

fn read_profiles(data: &[u8], chains: &[PpiChain]) -> Result<Profiles> {
    let mut r = CacheReader::open(data, PROFILE_MAGIC, chains.len())?;
    let (mut profiles, mut hits) = (Vec::new(), Vec::new());
    for c in chains {
        r.chain_length(c.len(), &c.id)?;
        hits.push(r.word()?);
        let values: Vec<f32> = r
            .bytes(c.len() * PROFILE_FEATURES * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        profiles.push(
            values
                .chunks_exact(PROFILE_FEATURES)
                .map(|r| {
                    let mut row = [0.0f32; PROFILE_FEATURES];
                    row.copy_from_slice(r);
                    row
                })
                .collect(),
        );
    }
    Ok((profiles, hits))
}

/// The value cached in `file` (`what` names it in the messages), or `None` (and why, where the
/// file exists but cannot be used) to compute it again.
fn read_cached<T>(file: &Path, what: &str, read: impl FnOnce(&[u8]) -> Result<T>) -> Option<T> {
    let data = std::fs::read(file).ok()?;
    match read(&data) {
        Ok(v) => {
            eprintln!("{what} from the cache {}", file.display());
            Some(v)
        }
        Err(e) => {
            eprintln!("ignoring the cache {} ({e:#})", file.display());
            None
        }
    }
}

/// Write a cache file whole or not at all: into a temporary file beside it, then renamed.
fn write_cached(file: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = file.with_extension("tmp");
    write(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))
}

/// Reads the caches of this command: an 8-byte magic, the chain count, then per chain its
/// length and its data (little-endian).
struct CacheReader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> CacheReader<'a> {
    /// Check the magic and the chain count.
    fn open(data: &'a [u8], magic: &[u8; 8], chains: usize) -> Result<Self> {
        let mut r = Self { data, at: 0 };
        if r.bytes(8)? != magic {
            bail!("not a cache of this kind");
        }
        if r.word()? != chains {
            bail!("chain count differs");
        }
        Ok(r)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let b = self.data.get(self.at..self.at + n).context("truncated")?;
        self.at += n;
        Ok(b)
    }

    fn word(&mut self) -> Result<usize> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// The next chain's length, which must be `len`.
    fn chain_length(&mut self, len: usize, id: &str) -> Result<()> {
        if self.word()? != len {
            bail!("chain {id} has a different length");
        }
        Ok(())
    }
}

const PLAUSIBILITY_MAGIC: &[u8; 8] = b"FSPPIG01";

/// ‖g_i‖ at `level` of each chain's residues with a C-alpha (in order), from the cache or
/// computed (one forward pass of the score model per chain) and then cached.
fn plausibility_norms(
    embedder: &Embedder,
    level: usize,
    name: &str,
    chains: &[PpiChain],
    data_sha: &str,
    cache: &Path,
) -> Result<Vec<Vec<f32>>> {
    if level >= embedder.sigmas().len() {
        bail!(
            "--plausibility {level} is out of range: the model has levels 0..={}",
            embedder.sigmas().len() - 1
        );
    }
    let key = sha256_hex(
        format!(
            "{}-{level}-{data_sha}-{}",
            embedder.weights_sha256,
            chains.len()
        )
        .as_bytes(),
    );
    let file = cache.join(format!("plausibility-{name}-{}.bin", &key[..16]));
    if let Some(v) = read_cached(&file, &format!("plausibility of {name}"), |data| {
        read_norms(data, chains)
    }) {
        return Ok(v);
    }
    let started = std::time::Instant::now();
    let mut all = Vec::with_capacity(chains.len());
    for (n, chain) in chains.iter().enumerate() {
        if n % 50 == 0 {
            eprintln!(
                "plausibility of {name}: {n}/{} chains, {:.0} s",
                chains.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let present = chain.present();
        if present.len() < 2 {
            all.push(Vec::new());
            continue;
        }
        let xyz: Vec<[f32; 3]> = present.iter().filter_map(|&i| chain.ca[i]).collect();
        let sequence: String = present
            .iter()
            .map(|&i| chain.sequence.as_bytes()[i] as char)
            .collect();
        let norms =
            pollster::block_on(residue_plausibility(embedder, &xyz, &sequence, level, None))
                .with_context(|| format!("scoring {} of {name}", chain.id))?;
        all.push(norms);
    }
    write_cached(&file, |tmp| write_norms(tmp, chains, &all))?;
    Ok(all)
}

fn write_norms(path: &Path, chains: &[PpiChain], norms: &[Vec<f32>]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(PLAUSIBILITY_MAGIC)?;
    out.write_all(&(chains.len() as u32).to_le_bytes())?;
    for (c, n) in chains.iter().zip(norms) {
        out.write_all(&(c.len() as u32).to_le_bytes())?;
        out.write_all(&(n.len() as u32).to_le_bytes())?;
        for v in n {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn read_norms(data: &[u8], chains: &[PpiChain]) -> Result<Vec<Vec<f32>>> {
    let mut r = CacheReader::open(data, PLAUSIBILITY_MAGIC, chains.len())?;
    let mut all = Vec::with_capacity(chains.len());
    for c in chains {
        r.chain_length(c.len(), &c.id)?;
        let n = r.word()?;
        all.push(
            r.bytes(n * 4)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    Ok(all)
}

const CACHE_MAGIC: &[u8; 8] = b"FSPPIE01";

/// Residue and neighbour-pair embeddings of every chain, from the cache or computed (and then
/// cached as f16).
fn prepare_with_embeddings(
    embedder: &Embedder,
    level: usize,
    name: &str,
    chains: &[PpiChain],
    data_sha: &str,
    k: usize,
    cache: &Path,
) -> Result<Vec<PreparedChain>> {
    let key = sha256_hex(
        format!(
            "{}-{level}-{data_sha}-{k}-{}",
            embedder.weights_sha256,
            chains.len()
        )
        .as_bytes(),
    );
    let file = cache.join(format!("{name}-{}.bin", &key[..16]));
    let c = embedder.config.hidden_channels;
    let mut prepared: Vec<PreparedChain> = chains.iter().map(|ch| prepare_plain(ch, k)).collect();
    if read_cached(&file, &format!("embeddings of {name}"), |data| {
        read_cache(data, &mut prepared, c)
    })
    .is_some()
    {
        return Ok(prepared);
    }
    let bar = ProgressBar::new(chains.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "embedding {name} {{bar:30}} {{pos}}/{{len}} chains, {{elapsed}} (eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    for (n, (chain, prep)) in chains.iter().zip(prepared.iter_mut()).enumerate() {
        bar.inc(1);
        if bar.is_hidden() && n % 50 == 0 {
            eprintln!(
                "embedding {name}: {n}/{} chains, {:.0} s",
                chains.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let present = chain.present();
        if present.len() < 2 {
            continue;
        }
        let sub = Chain {
            id: chain.id.clone(),
            residue_names: vec![String::new(); present.len()],
            sequence: present
                .iter()
                .map(|&i| chain.sequence.as_bytes()[i] as char)
                .collect(),
            ca: present.iter().filter_map(|&i| chain.ca[i]).collect(),
            residue_numbers: present
                .iter()
                .map(|&i| ResidueNumber {
                    number: i as isize + 1,
                    insertion: None,
                })
                .collect(),
            b_factors: vec![0.0; present.len()],
        };
        let e = pollster::block_on(embedder.embed(&sub, level))
            .with_context(|| format!("embedding {} of {name}", chain.id))?;
        let l = present.len();
        let mut position = vec![usize::MAX; chain.len()];
        for (p, &i) in present.iter().enumerate() {
            position[i] = p;
        }
        let mut residue = vec![0.0f32; chain.len() * c];
        for (p, &i) in present.iter().enumerate() {
            residue[i * c..(i + 1) * c].copy_from_slice(&e.residue[p * c..(p + 1) * c]);
        }
        let mut edge = vec![0.0f32; chain.len() * k * c];
        for i in 0..chain.len() {
            for s in i * k..(i + 1) * k {
                if !prep.neighbours.valid[s] {
                    continue;
                }
                let (pi, pj) = (position[i], position[prep.neighbours.index[s] as usize]);
                let at = (pi * l + pj) * c;
                edge[s * c..(s + 1) * c].copy_from_slice(&e.pair[at..at + c]);
            }
        }
        prep.residue_embedding = Some(residue);
        prep.edge_embedding = Some(edge);
        prep.channels = c;
    }
    bar.finish_and_clear();
    // Chains too short to embed get zero embeddings of the right width.
    for prep in prepared.iter_mut() {
        if prep.channels == 0 {
            prep.residue_embedding = Some(vec![0.0; prep.len() * c]);
            prep.edge_embedding = Some(vec![0.0; prep.len() * k * c]);
            prep.channels = c;
        }
    }
    // The cache holds f16: round now too, so a cached rerun gives the same numbers.
    for prep in prepared.iter_mut() {
        for v in prep
            .residue_embedding
            .iter_mut()
            .flatten()
            .chain(prep.edge_embedding.iter_mut().flatten())
        {
            *v = half::f16::from_f32(*v).to_f32();
        }
    }
    write_cached(&file, |tmp| write_cache(tmp, &prepared))?;
    Ok(prepared)
}

fn write_cache(path: &Path, prepared: &[PreparedChain]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(CACHE_MAGIC)?;
    out.write_all(&(prepared.len() as u32).to_le_bytes())?;
    for p in prepared {
        out.write_all(&(p.len() as u32).to_le_bytes())?;
        for v in p
            .residue_embedding
            .iter()
            .flatten()
            .chain(p.edge_embedding.iter().flatten())
        {
            out.write_all(&half::f16::from_f32(*v).to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn read_cache(data: &[u8], prepared: &mut [PreparedChain], c: usize) -> Result<()> {
    let mut r = CacheReader::open(data, CACHE_MAGIC, prepared.len())?;
    let halves = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(2)
            .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
            .collect()
    };
    for p in prepared.iter_mut() {
        let (l, k) = (p.len(), p.neighbours.k);
        r.chain_length(l, &p.id)?;
        p.residue_embedding = Some(halves(r.bytes(l * c * 2)?));
        p.edge_embedding = Some(halves(r.bytes(l * k * c * 2)?));
        p.channels = c;
    }
    Ok(())
}
