//! `foldspace pool-structures`: the structure tower's inputs for many chains, into a resumable cache.

use super::*;

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
    /// Cache file (default: ~/.cache/foldspace/align/structure-<weights>-w64.jsonl).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Pool at most this many chains (after ordering).
    #[arg(long)]
    max_chains: Option<usize>,
}

/// Pool the structure-tower inputs of chains into the cache (resumable).
pub(crate) fn pool(args: PoolArgs) -> Result<()> {
    let embedder = Embedder::from_file(
        &weights_path(args.weights.as_deref())?,
        compute(args.backend)?,
    )?;
    let cache_path = args
        .cache
        .clone()
        .unwrap_or_else(|| default_structure_cache(&embedder));
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
    let mut cache =
        StructureCache::open(&cache_path, "structure vectors", &embedder.weights_sha256)?;
    eprintln!(
        "pooling {} chains into {} ({} cached)",
        chosen.len(),
        cache_path.display(),
        chosen
            .iter()
            .filter(|c| cache.vectors.contains_key(&c.name))
            .count()
    );
    cache.fill_structures(&embedder, &chosen)?;
    println!("{}", cache_path.display());
    Ok(())
}
