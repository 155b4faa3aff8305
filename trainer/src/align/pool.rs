//! `foldspace pool-structures`: the structure tower's inputs for many chains, into a resumable cache.

use super::*;
use crate::align_cache::fill_structure_levels;

#[derive(Args)]
pub(crate) struct PoolArgs {
    /// Chains (`chains.jsonl.gz`).
    #[arg(long)]
    chains: PathBuf,
    /// Splits to pool (comma-separated).
    #[arg(long, default_value = "train,val")]
    splits: String,
    /// Pool the chains of this function file first (`chain_function.jsonl.gz`).
    #[arg(long)]
    first: Option<PathBuf>,
    /// Weights of the score network (default: the shipped ones).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Noise levels to pool at (comma-separated; default: the network's smallest σ). Every
    /// level goes through the network in the same pass; each has its own cache.
    #[arg(long, value_delimiter = ',')]
    levels: Vec<usize>,
    /// Which residues are read: `central` (one window of 64) or `tiled` (the whole chain in
    /// windows of 64, about L / 64 times the cost).
    #[arg(long, value_parser = parse_windows, default_value = "central")]
    windows: StructureWindows,
    /// Cache file, for one level (default: ~/.cache/foldspace/align/structure-<weights>-{w64,t64}[-l<level>].jsonl).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Pool at most this many chains (after ordering).
    #[arg(long)]
    max_chains: Option<usize>,
    /// Pool only every N-th chain of the ordered list, starting at the K-th (`K/N`, K from 0):
    /// N processes with their own `--cache` files share the work; append the files together
    /// afterwards (a cache may hold the same weights' marker line more than once).
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
}

/// `K/N` with K < N.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not K/N (e.g. 0/2)"))?;
    let k: usize = k.trim().parse().map_err(|e| format!("K in `{s}`: {e}"))?;
    let n: usize = n.trim().parse().map_err(|e| format!("N in `{s}`: {e}"))?;
    if n == 0 || k >= n {
        return Err(format!("`{s}`: need 0 <= K < N"));
    }
    Ok((k, n))
}

/// Pool the structure-tower inputs of chains into the cache (resumable).
pub(crate) fn pool(args: PoolArgs) -> Result<()> {
    let embedder = Embedder::from_file(
        &weights_path(args.weights.as_deref())?,
        compute(args.backend)?,
    )?;
    let mut levels: Vec<usize> = Vec::new();
    for &l in &args.levels {
        if !levels.contains(&l) {
            levels.push(l);
        }
    }
    if levels.is_empty() {
        levels.push(embedder.default_level());
    }
    for &level in &levels {
        embedder.sigma(level)?;
    }
    let paths: Vec<PathBuf> = match (&args.cache, levels.as_slice()) {
        (Some(path), [_]) => vec![path.clone()],
        (Some(_), _) => bail!("--cache names one file: give one level, or leave --cache out"),
        (None, _) => levels
            .iter()
            .map(|&l| default_structure_cache(&embedder, l, args.windows))
            .collect(),
    };
    let chains = read_chains(&args.chains)?;
    let splits: HashSet<&str> = args.splits.split(',').collect();
    let first: HashSet<String> = match &args.first {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            read_function_jsonl(&bytes)
                .with_context(|| format!("reading {}", p.display()))?
                .into_iter()
                .map(|a| a.name)
                .collect()
        }
        None => HashSet::new(),
    };
    let mut chosen: Vec<&JsonChain> = chains
        .iter()
        .filter(|c| splits.contains(c.split.as_str()) && c.chain.len() >= 2)
        .collect();
    if chosen.is_empty() {
        bail!(
            "no chain of {} is in the splits {}",
            args.chains.display(),
            args.splits
        );
    }
    chosen.sort_by_key(|c| !first.contains(&c.name));
    if let Some(m) = args.max_chains {
        chosen.truncate(m);
    }
    if let Some((k, n)) = args.shard {
        chosen = chosen.into_iter().skip(k).step_by(n).collect();
    }
    let mut caches = paths
        .iter()
        .map(|p| StructureCache::open(p, "structure vectors", &embedder.weights_sha256))
        .collect::<Result<Vec<_>>>()?;
    for ((cache, path), level) in caches.iter().zip(&paths).zip(&levels) {
        eprintln!(
            "level {level} (σ = {} Å): {} of {} chains cached in {}",
            embedder.sigma(*level)?,
            chosen
                .iter()
                .filter(|c| cache.vectors.contains_key(&c.name))
                .count(),
            chosen.len(),
            path.display()
        );
    }
    fill_structure_levels(&mut caches, &levels, args.windows, &embedder, &chosen)?;
    for path in &paths {
        println!("{}", path.display());
    }
    Ok(())
}
