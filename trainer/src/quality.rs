//! `foldspace compare` (model vs reference: RMSD, TM-score, GDT, lDDT) and `foldspace eval-qa`
//! (do the model's unsupervised signals rank damaged structures by their quality?).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use foldspace::quality::{Comparison, Correspondence, compare_chains, compare_same};
use foldspace::score::embed::Embedder;
use foldspace::score::refine::{Langevin, Schedule, residue_plausibility};
use foldspace::stats::{mean_std, pearson, spearman};

use foldspace::structure::{Chain, ReadOptions, read_chains_jsonl, read_structure};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

use crate::common::{Backend, compute, weights_path};

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// The model (PDB / mmCIF, optionally .gz).
    model: PathBuf,
    /// The reference (native) structure; scores are normalised by its length.
    reference: PathBuf,
    /// Chain of the model (default: its first protein chain).
    #[arg(long)]
    model_chain: Option<String>,
    /// Chain of the reference (default: the model's chain id if present, else the first).
    #[arg(long)]
    reference_chain: Option<String>,
    /// One JSON object (with per-residue lDDT) instead of text.
    #[arg(long)]
    json: bool,
}

fn read_chain(path: &Path, chain: Option<&str>, prefer: Option<&str>) -> Result<Chain> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    let parsed = read_structure(&bytes, name.as_deref(), &ReadOptions::default())
        .with_context(|| format!("reading {}", path.display()))?;
    let chains = parsed.structure.first_model_chains();
    let found = match chain {
        Some(id) => chains.iter().find(|c| c.id == id).with_context(|| {
            let ids: Vec<&str> = chains.iter().map(|c| c.id.as_str()).collect();
            format!(
                "{} has no chain {id} (chains: {})",
                path.display(),
                ids.join(", ")
            )
        })?,
        None => prefer
            .and_then(|p| chains.iter().find(|c| c.id == p))
            .or_else(|| chains.first())
            .with_context(|| format!("{} has no protein chain", path.display()))?,
    };
    Ok(found.clone())
}

pub(crate) fn compare(args: CompareArgs) -> Result<()> {
    let model = read_chain(&args.model, args.model_chain.as_deref(), None)?;
    let reference = read_chain(
        &args.reference,
        args.reference_chain.as_deref(),
        Some(&model.id),
    )?;
    let (c, mapping) = compare_chains(&model, &reference).with_context(|| {
        format!(
            "comparing {} with {}",
            args.model.display(),
            args.reference.display()
        )
    })?;
    if args.json {
        let per: Vec<Value> = reference
            .residue_numbers
            .iter()
            .zip(reference.sequence.chars())
            .zip(&c.lddt_per_residue)
            .map(|((n, aa), v)| json!({"residue": n.to_string(), "aa": aa.to_string(), "lddt": v}))
            .collect();
        let out = json!({
            "model": {"file": args.model.display().to_string(), "chain": model.id, "residues": model.len()},
            "reference": {"file": args.reference.display().to_string(), "chain": reference.id, "residues": reference.len()},
            "correspondence": mapping.how,
            "aligned": c.aligned,
            "identical": mapping.identical,
            "rmsd": c.rmsd,
            "tm_score": c.tm_score,
            "d0": c.d0,
            "gdt_ts": c.gdt_ts,
            "gdt_ha": c.gdt_ha,
            "lddt": c.lddt,
            "lddt_per_residue": per,
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "model:     {} chain {} ({} residues)",
            args.model.display(),
            model.id,
            model.len()
        );
        println!(
            "reference: {} chain {} ({} residues)",
            args.reference.display(),
            reference.id,
            reference.len()
        );
        println!(
            "matched:   {} residue pairs ({} identical) by {}",
            c.aligned,
            mapping.identical,
            match mapping.how {
                Correspondence::Identical => "identical sequences",
                Correspondence::Numbering => "residue numbers",
                Correspondence::SequenceAlignment => "sequence alignment",
            }
        );
        println!("RMSD      {:.3} Å (all matched pairs, superposed)", c.rmsd);
        println!("TM-score  {:.4} (d0 {:.2} Å)", c.tm_score, c.d0);
        println!("GDT_TS    {:.4}", c.gdt_ts);
        println!("GDT_HA    {:.4}", c.gdt_ha);
        println!("lDDT      {:.4} (C-alpha, 15 Å)", c.lddt);
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct EvalQaArgs {
    /// Natives: a chains.jsonl(.gz) (decoys are generated from its `--split` chains).
    #[arg(long, conflicts_with = "native")]
    natives: Option<PathBuf>,
    /// Which split of --natives (held out of pretraining: `val`).
    #[arg(long, default_value = "val")]
    split: String,
    /// Natives to use (the first N of the split within the length limits).
    #[arg(long, default_value_t = 20)]
    max_natives: usize,
    /// Length limits of the natives.
    #[arg(long, default_value_t = 40)]
    min_length: usize,
    #[arg(long, default_value_t = 200)]
    max_length: usize,
    /// Instead of generated decoys: a directory of decoy PDB / mmCIF files of one target…
    #[arg(long, requires = "native")]
    decoys: Option<PathBuf>,
    /// …and its native structure.
    #[arg(long)]
    native: Option<PathBuf>,
    /// Score-model weights (default: the shipped weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Noise levels at which the model scores the decoys (default: the levels nearest
    /// σ = 1, 0.1 and 0.01 Å).
    #[arg(long, num_args = 1..)]
    noise_levels: Vec<usize>,
    /// Score each residue by the mean ‖g‖ of the residues within this many Å of it in the scored
    /// structure (lDDT's neighbourhoods are 15 Å) instead of its own ‖g_i‖.
    #[arg(long)]
    smooth: Option<f32>,
    /// Seed of the generated damage.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// One JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// A damaged copy of a native, with how it was made.
struct Decoy {
    kind: String,
    ca: Vec<[f32; 3]>,
}

fn gaussian(native: &[[f32; 3]], sigma: f32, rng: &mut StdRng) -> Vec<[f32; 3]> {
    native
        .iter()
        .map(|p| {
            let mut q = *p;
            for v in q.iter_mut() {
                let z: f32 = StandardNormal.sample(rng);
                *v += sigma * z;
            }
            q
        })
        .collect()
}

/// Shift a segment (a quarter of the chain, at a random place) by `shift` Å in a random
/// direction.
fn segment_shift(native: &[[f32; 3]], shift: f32, rng: &mut StdRng) -> Vec<[f32; 3]> {
    let n = native.len();
    let len = (n / 4).max(3).min(n);
    let start = (rand::RngExt::random::<f64>(rng) * (n - len + 1) as f64) as usize;
    let mut dir = [0.0f32; 3];
    for v in dir.iter_mut() {
        *v = StandardNormal.sample(rng);
    }
    let norm = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2])
        .sqrt()
        .max(1e-6);
    let mut out = native.to_vec();
    for p in out.iter_mut().skip(start).take(len) {
        for k in 0..3 {
            p[k] += shift * dir[k] / norm;
        }
    }
    out
}

fn nearest_level(sigmas: &[f32], sigma: f32) -> usize {
    (0..sigmas.len())
        .min_by(|&a, &b| {
            (sigmas[a].ln() - sigma.ln())
                .abs()
                .total_cmp(&(sigmas[b].ln() - sigma.ln()).abs())
        })
        .unwrap_or(0)
}

/// Decoys of one native: Gaussian noise (0.5, 1, 2, 4 Å), segment shifts (3, 6 Å) and a short
/// annealed Langevin run of the model from 3 Å noise.
fn make_decoys(embedder: &Embedder, native: &Chain, seed: u64) -> Result<Vec<Decoy>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = vec![Decoy {
        kind: "native".into(),
        ca: native.ca.clone(),
    }];
    for s in [0.5f32, 1.0, 2.0, 4.0] {
        out.push(Decoy {
            kind: format!("noise {s} Å"),
            ca: gaussian(&native.ca, s, &mut rng),
        });
    }
    for s in [3.0f32, 6.0] {
        out.push(Decoy {
            kind: format!("segment shift {s} Å"),
            ca: segment_shift(&native.ca, s, &mut rng),
        });
    }
    let start = nearest_level(embedder.sigmas(), 3.0);
    let schedule = Schedule {
        start_level: start,
        stride: 10,
        iterations: 2,
        step_size: 1e-5,
        noise_mult: 0.1,
    };
    let noisy = gaussian(&native.ca, embedder.sigmas()[start], &mut rng);
    let mut run = Langevin::new(embedder, &native.sequence, noisy, schedule, seed)?;
    while pollster::block_on(run.step())?.is_some() {}
    out.push(Decoy {
        kind: "Langevin from 3 Å".into(),
        ca: run.coords().to_vec(),
    });
    Ok(out)
}

/// One scored structure: its quality against the native and the model's signals per level.
struct Scored {
    target: String,
    kind: String,
    comparison: Comparison,
    /// Per level: ‖g_i‖ per native residue (None where the decoy lacks the residue).
    norms: Vec<Vec<Option<f32>>>,
}

/// ‖g_i‖ of each residue at `level`, or its mean over the residues within `smooth` Å.
fn score_norms(
    embedder: &Embedder,
    ca: &[[f32; 3]],
    sequence: &str,
    level: usize,
    smooth: Option<f32>,
) -> Result<Vec<f32>> {
    Ok(pollster::block_on(residue_plausibility(
        embedder, ca, sequence, level, smooth,
    ))?)
}

/// One level's correlations: local (‖g_i‖ vs 1 − lDDT_i over every scored residue) and global
/// (−mean ‖g‖ vs GDT_TS and lDDT per target, then mean ± std over the targets), and per kind of
/// decoy.
fn level_report(
    scored: &[Scored],
    targets: &[String],
    li: usize,
    level: usize,
    sigma: f32,
) -> Value {
    // Local: ‖g_i‖ vs 1 − lDDT_i, pooled over every scored residue of every structure.
    let (mut g, mut err) = (Vec::new(), Vec::new());
    for s in scored {
        for (n, l) in s.norms[li].iter().zip(&s.comparison.lddt_per_residue) {
            if let (Some(n), Some(l)) = (n, l) {
                g.push(*n);
                err.push(1.0 - *l);
            }
        }
    }
    let local = spearman(&g, &err);
    // Global: −mean ‖g‖ vs GDT_TS and lDDT, per target, then averaged.
    let (mut p_gdt, mut s_gdt, mut p_lddt, mut s_lddt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in targets {
        let rows: Vec<&Scored> = scored.iter().filter(|s| &s.target == t).collect();
        let plaus: Vec<f64> = rows
            .iter()
            .map(|s| {
                let v: Vec<f32> = s.norms[li].iter().flatten().copied().collect();
                -(v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64)
            })
            .collect();
        let gdt: Vec<f64> = rows.iter().map(|s| s.comparison.gdt_ts as f64).collect();
        let lddt: Vec<f64> = rows.iter().map(|s| s.comparison.lddt as f64).collect();
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        if let Some(r) = pearson(&plaus, &gdt) {
            p_gdt.push(r);
        }
        if let Some(r) = spearman(&f(&plaus), &f(&gdt)) {
            s_gdt.push(r);
        }
        if let Some(r) = pearson(&plaus, &lddt) {
            p_lddt.push(r);
        }
        if let Some(r) = spearman(&f(&plaus), &f(&lddt)) {
            s_lddt.push(r);
        }
    }
    json!({
        "level": level,
        "sigma": sigma,
        "local_spearman_gnorm_vs_lddt_error": local,
        "residues": g.len(),
        "global_pearson_vs_gdt_ts": mean_std(&p_gdt),
        "global_spearman_vs_gdt_ts": mean_std(&s_gdt),
        "global_pearson_vs_lddt": mean_std(&p_lddt),
        "global_spearman_vs_lddt": mean_std(&s_lddt),
        "targets_with_correlation": p_gdt.len(),
        "by_decoy": by_decoy(scored, targets, li),
    })
}

/// Mean ‖g_i‖ of a structure's scored residues at one level.
fn mean_norm(norms: &[Option<f32>]) -> f64 {
    let v: Vec<f64> = norms.iter().flatten().map(|&x| f64::from(x)).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Per kind of decoy at one level: the local correlation over its residues, and against each
/// target's native (where one was scored): the fraction of targets whose decoy has the larger
/// mean ‖g‖ (the model calls it the worse structure) and the mean ratio of the two.
fn by_decoy(scored: &[Scored], targets: &[String], li: usize) -> Vec<Value> {
    let mut kinds: Vec<&str> = Vec::new();
    for s in scored {
        if s.kind != "native" && !kinds.contains(&s.kind.as_str()) {
            kinds.push(&s.kind);
        }
    }
    kinds
        .into_iter()
        .map(|kind| {
            let (mut g, mut err) = (Vec::new(), Vec::new());
            for s in scored.iter().filter(|s| s.kind == kind) {
                for (n, l) in s.norms[li].iter().zip(&s.comparison.lddt_per_residue) {
                    if let (Some(n), Some(l)) = (n, l) {
                        g.push(*n);
                        err.push(1.0 - *l);
                    }
                }
            }
            let (mut worse, mut ratios) = (0usize, Vec::new());
            for t in targets {
                let find = |k: &str| scored.iter().find(|s| &s.target == t && s.kind == k);
                if let (Some(native), Some(decoy)) = (find("native"), find(kind)) {
                    let (n, d) = (mean_norm(&native.norms[li]), mean_norm(&decoy.norms[li]));
                    worse += usize::from(d > n);
                    ratios.push(d / n.max(1e-12));
                }
            }
            json!({
                "decoy": kind,
                "local_spearman_gnorm_vs_lddt_error": spearman(&g, &err),
                "residues": g.len(),
                "targets_with_native": ratios.len(),
                "scored_worse_than_native": (!ratios.is_empty()).then(|| worse as f64 / ratios.len() as f64),
                "mean_gnorm_ratio_to_native": mean_std(&ratios),
            })
        })
        .collect()
}

pub(crate) fn eval_qa(args: EvalQaArgs) -> Result<()> {
    if args.smooth.is_some_and(|r| !(r.is_finite() && r >= 0.0)) {
        bail!("--smooth is a radius in Å (0 or more)");
    }
    let weights = weights_path(args.weights.as_deref())?;
    let embedder = Embedder::from_file(&weights, compute(args.backend)?)
        .with_context(|| format!("loading weights {}", weights.display()))?;
    let sigmas = embedder.sigmas().to_vec();
    let levels = qa_levels(&args.noise_levels, &sigmas)?;
    let (scored, source) = if let (Some(dir), Some(native_path)) = (&args.decoys, &args.native) {
        score_decoy_dir(&embedder, &levels, dir, native_path, args.smooth)?
    } else if let Some(path) = &args.natives {
        score_natives(&args, &embedder, &levels, path)?
    } else {
        bail!("give --natives <chains.jsonl.gz>, or --decoys <DIR> with --native <FILE>");
    };
    if scored.len() < 3 {
        bail!("only {} structure(s) could be scored", scored.len());
    }

    // Correlations per level.
    let mut per_level = Vec::new();
    let targets: Vec<String> = {
        let mut t: Vec<String> = scored.iter().map(|s| s.target.clone()).collect();
        t.dedup();
        t
    };
    for (li, &level) in levels.iter().enumerate() {
        per_level.push(level_report(&scored, &targets, li, level, sigmas[level]));
    }
    let structures: Vec<Value> = scored
        .iter()
        .map(|s| {
            json!({
                "target": s.target, "decoy": s.kind,
                "gdt_ts": s.comparison.gdt_ts, "lddt": s.comparison.lddt,
                "tm_score": s.comparison.tm_score, "rmsd": s.comparison.rmsd,
                "mean_gnorm": s.norms.iter().map(|n| {
                    let v: Vec<f32> = n.iter().flatten().copied().collect();
                    v.iter().sum::<f32>() / v.len().max(1) as f32
                }).collect::<Vec<f32>>(),
            })
        })
        .collect();
    let out = json!({
        "source": source,
        "weights": {"path": weights.display().to_string(), "sha256": embedder.weights_sha256},
        "targets": targets.len(),
        "structures_scored": scored.len(),
        "smooth_radius": args.smooth,
        "levels": per_level,
        "structures": structures,
        "foldspace": foldspace::VERSION,
    });
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_qa_table(scored.len(), targets.len(), &per_level);
    }
    Ok(())
}

/// The noise levels to score at: `--noise-levels`, else those nearest σ = 1, 0.1 and 0.01 Å.
fn qa_levels(noise_levels: &[usize], sigmas: &[f32]) -> Result<Vec<usize>> {
    let levels: Vec<usize> = if noise_levels.is_empty() {
        let mut l: Vec<usize> = [1.0f32, 0.1, 0.01]
            .iter()
            .map(|&s| nearest_level(sigmas, s))
            .collect();
        l.dedup();
        l
    } else {
        noise_levels.to_vec()
    };
    if let Some(&bad) = levels.iter().find(|&&l| l >= sigmas.len()) {
        bail!(
            "--noise-levels {bad} is out of range: the model has levels 0..={}",
            sigmas.len() - 1
        );
    }
    Ok(levels)
}

/// Score every decoy file of `dir` against the native of `native_path` (files that cannot be
/// read or matched to the native are skipped with a message).
fn score_decoy_dir(
    embedder: &Embedder,
    levels: &[usize],
    dir: &Path,
    native_path: &Path,
    smooth: Option<f32>,
) -> Result<(Vec<Scored>, Value)> {
    let mut scored: Vec<Scored> = Vec::new();
    let native = read_chain(native_path, None, None)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no decoy file", dir.display());
    }
    for file in &files {
        let decoy = match read_chain(file, None, Some(&native.id)) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipping {}: {e:#}", file.display());
                continue;
            }
        };
        let (comparison, mapping) = match compare_chains(&decoy, &native) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping {}: {e}", file.display());
                continue;
            }
        };
        let mut norms = Vec::new();
        for &level in levels {
            let own = score_norms(embedder, &decoy.ca, &decoy.sequence, level, smooth)?;
            let mut per = vec![None; native.len()];
            for &(i, j) in &mapping.pairs {
                per[j] = Some(own[i]);
            }
            norms.push(per);
        }
        scored.push(Scored {
            target: native_path.display().to_string(),
            kind: file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            comparison,
            norms,
        });
    }
    let source = json!({"native": native_path.display().to_string(), "decoys": dir.display().to_string(), "files": files.len()});
    Ok((scored, source))
}

/// Decoys made from the natives of `path` (split, length and count from the arguments), each
/// scored against its native.
fn score_natives(
    args: &EvalQaArgs,
    embedder: &Embedder,
    levels: &[usize],
    path: &Path,
) -> Result<(Vec<Scored>, Value)> {
    let mut scored: Vec<Scored> = Vec::new();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let natives: Vec<_> = read_chains_jsonl(&bytes, 1 << 31)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .filter(|c| {
            c.split == args.split && (args.min_length..=args.max_length).contains(&c.chain.len())
        })
        .take(args.max_natives)
        .collect();
    if natives.is_empty() {
        bail!(
            "{} has no chain of split '{}' with {}..={} residues",
            path.display(),
            args.split,
            args.min_length,
            args.max_length
        );
    }
    for (t, native) in natives.iter().enumerate() {
        if !args.json {
            eprintln!(
                "target {}/{}: {} ({} residues)",
                t + 1,
                natives.len(),
                native.name,
                native.chain.len()
            );
        }
        let decoys = make_decoys(embedder, &native.chain, args.seed ^ (t as u64 * 7919))?;
        for d in decoys {
            let comparison = compare_same(&d.ca, &native.chain.ca)?;
            let mut norms = Vec::new();
            for &level in levels {
                let n = score_norms(embedder, &d.ca, &native.chain.sequence, level, args.smooth)?;
                norms.push(n.into_iter().map(Some).collect());
            }
            scored.push(Scored {
                target: native.name.clone(),
                kind: d.kind,
                comparison,
                norms,
            });
        }
    }
    let source = json!({"natives": path.display().to_string(), "split": args.split, "targets": natives.len(), "length": [args.min_length, args.max_length]});
    Ok((scored, source))
}

/// The human-readable tables of eval-qa: per level, and per kind of decoy.
fn print_qa_table(structures: usize, targets: usize, per_level: &[Value]) {
    println!(
        "eval-qa: {} structures of {} targets; signals: per-residue ‖g_i‖ and −mean ‖g‖",
        structures, targets
    );
    println!(
        "{:>5} {:>8} {:>22} {:>22} {:>22} {:>22} {:>22}",
        "level",
        "sigma",
        "local ρ(‖g‖, 1−lDDT)",
        "global r (GDT_TS)",
        "global ρ (GDT_TS)",
        "global r (lDDT)",
        "global ρ (lDDT)"
    );
    for l in per_level {
        let ms = |v: &Value| {
            format!(
                "{:.3} ± {:.3}",
                v["mean"].as_f64().unwrap_or(f64::NAN),
                v["std"].as_f64().unwrap_or(f64::NAN)
            )
        };
        println!(
            "{:>5} {:>8.3} {:>22} {:>22} {:>22} {:>22} {:>22}",
            l["level"],
            l["sigma"].as_f64().unwrap_or(f64::NAN),
            l["local_spearman_gnorm_vs_lddt_error"]
                .as_f64()
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "-".into()),
            ms(&l["global_pearson_vs_gdt_ts"]),
            ms(&l["global_spearman_vs_gdt_ts"]),
            ms(&l["global_pearson_vs_lddt"]),
            ms(&l["global_spearman_vs_lddt"]),
        );
    }
    println!(
        "per kind of decoy: local ρ over its residues; share of targets where it scores worse \
         than its native (larger mean ‖g‖); mean ‖g‖ ratio to the native"
    );
    for l in per_level {
        for d in l["by_decoy"].as_array().into_iter().flatten() {
            let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.3}"));
            println!(
                "{:>5} {:<22} ρ {:>6}  worse {:>6}  ratio {:>6}",
                l["level"],
                d["decoy"].as_str().unwrap_or_default(),
                f(&d["local_spearman_gnorm_vs_lddt_error"]),
                f(&d["scored_worse_than_native"]),
                f(&d["mean_gnorm_ratio_to_native"]["mean"]),
            );
        }
    }
}
