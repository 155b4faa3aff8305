//! `foldspace eval-structure-levels`: which noise level's pooled embeddings carry function, before
//! any alignment model is trained on them (the level the structure tower pools at is chosen so).

use super::*;
use crate::align_cache::fill_structure_levels;
use foldspace::align::metrics::{NeighbourProbe, neighbour_probe};

#[derive(Args)]
pub(crate) struct EvalStructureLevelsArgs {
    #[command(flatten)]
    inputs: FunctionInputs,
    /// Split whose annotated chains are probed. `train` is a fair probe too (these vectors are
    /// untrained on function: the score network never saw a label) and the largest.
    #[arg(long, default_value = "val")]
    split: String,
    /// Probe only the first N annotated chains of the split (in the function file's order).
    #[arg(long)]
    max_proteins: Option<usize>,
    /// Noise levels to compare (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "60,40,30,20,10")]
    levels: Vec<usize>,
    /// Which residues are read: `central` (one window of 64) or `tiled` (the whole chain).
    #[arg(long, value_parser = parse_windows, default_value = "central")]
    windows: StructureWindows,
    /// Also probe all the levels' vectors side by side (concatenated).
    #[arg(long)]
    concatenated: bool,
    /// Score-network weights (default: the shipped ones).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Neighbours of the transfer predictor.
    #[arg(long, default_value_t = 10)]
    neighbours: usize,
    /// Seed of the random-vector baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Leave-one-out neighbour probe of the pooled structure vectors at each level: protein →
/// protein retrieval by function set and k-nearest-neighbour GO-MF transfer within the split
/// (vectors pooled into the default caches, so `align` finds them).
pub(crate) fn eval_structure_levels(args: EvalStructureLevelsArgs) -> Result<()> {
    let corpus = args.inputs.read()?;
    let o = &corpus.ontology;
    let embedder = Embedder::from_file(
        &weights_path(args.weights.as_deref())?,
        compute(args.backend)?,
    )?;
    for &level in &args.levels {
        embedder.sigma(level)?;
    }
    // The probed proteins: in both files, in the split, with an informative MF set.
    let proteins: Vec<(&Annotation, &JsonChain)> = corpus
        .function
        .iter()
        .filter_map(|a| Some((a, corpus.chain(&a.name)?)))
        .filter(|(a, c)| {
            c.split == args.split && c.chain.len() >= 2 && !query_text(o, &a.function).is_empty()
        })
        .take(args.max_proteins.unwrap_or(usize::MAX))
        .collect();
    if proteins.len() < 2 {
        bail!(
            "{} chains of the split {:?} have an informative molecular-function term: at least 2 are needed",
            proteins.len(),
            args.split
        );
    }
    let groups: Vec<Option<u64>> = proteins
        .iter()
        .map(|(a, _)| function_group(o, &a.function))
        .collect();
    let same = |i: usize, j: usize| groups[i].is_some() && groups[i] == groups[j];
    let truth: Vec<BTreeSet<String>> = proteins
        .iter()
        .map(|(a, _)| {
            let mut p = o.propagate(&a.function);
            p.remove(MF_ROOT);
            p
        })
        .collect();
    let chains: Vec<&JsonChain> = proteins.iter().map(|(_, c)| *c).collect();
    let mut caches = args
        .levels
        .iter()
        .map(|&l| {
            StructureCache::open(
                &default_structure_cache(&embedder, l, args.windows),
                "structure vectors",
                &embedder.weights_sha256,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    fill_structure_levels(&mut caches, &args.levels, args.windows, &embedder, &chains)?;
    let names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
    // (label, levels, probe): each level, all of them side by side, random vectors.
    let mut rows: Vec<(String, Vec<usize>, NeighbourProbe)> = Vec::new();
    let mut side_by_side: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
    for (&level, cache) in args.levels.iter().zip(&caches) {
        let vectors: Vec<Vec<f32>> = cache
            .get_all(names.iter().copied())?
            .into_iter()
            .map(<[f32]>::to_vec)
            .collect();
        for (all, v) in side_by_side.iter_mut().zip(&vectors) {
            all.extend_from_slice(v);
        }
        let probe = neighbour_probe(&vectors, same, &truth, args.neighbours);
        rows.push((level.to_string(), vec![level], probe));
    }
    if args.concatenated && args.levels.len() > 1 {
        let probe = neighbour_probe(&side_by_side, same, &truth, args.neighbours);
        let label = args.levels.iter().map(usize::to_string).collect::<Vec<_>>();
        rows.push((label.join("+"), args.levels.clone(), probe));
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let width = 2 * embedder.config.hidden_channels;
    let random: Vec<Vec<f32>> = (0..proteins.len())
        .map(|_| (0..width).map(|_| rng.random::<f32>() - 0.5).collect())
        .collect();
    rows.push((
        "random".to_string(),
        Vec::new(),
        neighbour_probe(&random, same, &truth, args.neighbours),
    ));
    let row_json = |label: &str, levels: &[usize], p: &NeighbourProbe| {
        let level = match levels {
            [l] => Some(*l),
            _ => None,
        };
        serde_json::json!({
            "level": level,
            "levels": levels,
            "label": label,
            "sigma": level.and_then(|l| embedder.sigma(l).ok()),
            "protein_to_protein": {"r1": p.retrieval.r1, "r10": p.retrieval.r10, "map": p.retrieval.map},
            "go_mf_fmax_transfer": p.fmax_transfer,
        })
    };
    if args.json {
        let out = serde_json::json!({
            "split": args.split,
            "proteins": proteins.len(),
            "queries": rows.first().map_or(0, |(_, _, p)| p.queries),
            "neighbours": args.neighbours,
            "windows": args.windows,
            "weights_sha256": embedder.weights_sha256,
            "levels": rows.iter().map(|(label, l, p)| row_json(label, l, p)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} proteins of {} ({} with another of their function set); leave one out, {} neighbours",
            proteins.len(),
            args.split,
            rows.first().map_or(0, |(_, _, p)| p.queries),
            args.neighbours
        );
        println!("level  sigma (Å)  p→p R@1  R@10   MAP    transfer Fmax");
        println!("{:?} windows", args.windows);
        for (l, levels, p) in &rows {
            let s = match levels.as_slice() {
                [level] => format!("{}", embedder.sigma(*level)?),
                _ => "-".to_string(),
            };
            println!(
                "{l:>6} {s:>10} {:>8.3} {:>6.3} {:>6.3} {:>8.3}",
                p.retrieval.r1, p.retrieval.r10, p.retrieval.map, p.fmax_transfer
            );
        }
    }
    Ok(())
}
