//! `foldspace embed` and `foldspace bench`: the score model on structure files, and its speed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use foldspace::io::file_stem;
use foldspace::score::embed::{ARRAY_NAMES, ChainEmbedding, Embedder, Provenance};
use foldspace::structure::{Chain, ReadOptions, Structure, read_structure};
use indicatif::{ProgressBar, ProgressStyle};

use crate::common::{Backend, compute, say, weights_path};

/// Arguments of `foldspace embed`.
#[derive(Args)]
pub(crate) struct EmbedArgs {
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
    /// Arrays to write to each `.npz`, comma-separated (default: all). `pair` is L × L × C
    /// float32 (23 MB at 300 residues): leave it out for large batches.
    #[arg(long, value_delimiter = ',', default_values_t = ARRAY_NAMES.map(String::from))]
    arrays: Vec<String>,
    /// Output directory (created if needed).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `foldspace bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
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
}

/// `foldspace embed`.
pub(crate) fn embed(args: EmbedArgs) -> Result<ExitCode> {
    let EmbedArgs {
        files,
        weights,
        noise_level,
        backend,
        chain,
        max_residues,
        arrays,
        out,
    } = args;
    let (files, weights, only_chain, out) = (&files, weights.as_deref(), chain.as_deref(), &out);
    if let Some(bad) = arrays.iter().find(|a| !ARRAY_NAMES.contains(&a.as_str())) {
        bail!(
            "--arrays: no array {bad:?} (arrays: {})",
            ARRAY_NAMES.join(", ")
        );
    }
    let arrays: Vec<&str> = arrays.iter().map(String::as_str).collect();
    let stems = output_stems(files);
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
    for (file, stem) in files.iter().zip(&stems) {
        bar.set_message(file.display().to_string());
        if *stem != file_stem(file) {
            say(
                &bar,
                format!(
                    "note: {}: another input has the same name; written as {stem}_<chain>.*",
                    file.display()
                ),
            );
        }
        let target = Target {
            out,
            stem,
            arrays: &arrays,
        };
        match embed_file(&embedder, file, level, only_chain, &options, &target, &bar) {
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

/// Output file stems, one per input: the file name without its extensions, and for a name that
/// an earlier input already has (`a/ranked_0.pdb`, `b/ranked_0.pdb`) `-2`, `-3`, … appended, so
/// that no input overwrites another's output.
fn output_stems(files: &[PathBuf]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    files
        .iter()
        .map(|file| {
            let stem = file_stem(file);
            let mut unique = stem.clone();
            let mut n = 1;
            while !taken.insert(unique.clone()) {
                n += 1;
                unique = format!("{stem}-{n}");
            }
            unique
        })
        .collect()
}

/// Where one input's outputs go: `<out>/<stem>_<chain>.npz` with these arrays, and `.json`.
struct Target<'a> {
    out: &'a Path,
    stem: &'a str,
    arrays: &'a [&'a str],
}

fn embed_file(
    embedder: &Embedder,
    file: &Path,
    level: usize,
    only_chain: Option<&str>,
    options: &ReadOptions,
    target: &Target<'_>,
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
    for chain in &chains {
        let emb = pollster::block_on(embedder.embed(chain, level))
            .with_context(|| format!("chain {}", chain.id))?;
        // Names built whole: `with_extension` would cut a name with a dot (`model.v2_A`).
        let base = format!("{}_{}", target.stem, chain.id);
        let npz = target.out.join(format!("{base}.npz"));
        std::fs::write(&npz, emb.npz_of(target.arrays)?)
            .with_context(|| format!("writing {}", npz.display()))?;
        let meta = metadata(embedder, structure, chain, &emb, file, target.arrays);
        let json = target.out.join(format!("{base}.json"));
        std::fs::write(&json, serde_json::to_string_pretty(&meta)?)
            .with_context(|| format!("writing {}", json.display()))?;
    }
    Ok(chains.len())
}

fn metadata(
    embedder: &Embedder,
    structure: &Structure,
    chain: &Chain,
    e: &ChainEmbedding,
    file: &Path,
    arrays: &[&str],
) -> serde_json::Value {
    let file = file.display().to_string();
    let backend = embedder.compute.describe();
    let provenance = Provenance {
        file: &file,
        weights_sha256: &embedder.weights_sha256,
        backend: &backend,
    };
    foldspace::score::embed::metadata_of(&provenance, structure, chain, e, arrays)
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

/// `foldspace bench`.
pub(crate) fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        weights,
        backend: backends,
        lengths,
        repeats,
    } = args;
    let weights = weights_path(weights.as_deref())?;
    for &backend in &backends {
        let embedder = Embedder::from_file(&weights, compute(backend)?)?;
        let per_pair = flops_per_pair(&embedder);
        println!("backend: {}", embedder.compute.describe());
        println!("flops per residue pair: {per_pair:.0}");
        for &l in &lengths {
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
