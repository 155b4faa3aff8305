//! `foldspace pool-structures`, `align`, `bank`, `search`, `eval-retrieval`: the tri-modal model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use foldspace::align::data::read_function_jsonl;
use foldspace::embed::Embedder;
use foldspace::structure::{JsonChain, read_chains_jsonl};

use crate::align_cache::StructureCache;
use crate::{Backend, compute, weights_path};

/// Default cache of structure vectors, under ~/.cache/foldspace/align/.
pub(crate) fn default_structure_cache(embedder: &Embedder) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/foldspace/align").join(format!(
        "structure-{}-w{}.jsonl",
        &embedder.weights_sha256[..16.min(embedder.weights_sha256.len())],
        foldspace::align::structure::STRUCTURE_WINDOW
    ))
}

pub(crate) fn read_chains(path: &Path) -> Result<Vec<JsonChain>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_chains_jsonl(&bytes, 1 << 31).with_context(|| format!("reading {}", path.display()))
}

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
    let mut cache = StructureCache::open(&cache_path)?;
    eprintln!(
        "pooling {} chains into {} ({} cached)",
        chosen.len(),
        cache_path.display(),
        chosen
            .iter()
            .filter(|c| cache.vectors.contains_key(&c.name))
            .count()
    );
    cache.fill(&embedder, &chosen)?;
    println!("{}", cache_path.display());
    Ok(())
}
