//! `foldspace pool-structures`, `align`, `eval-retrieval`, `bank`, `search`, `bench-search`: the
//! tri-modal model on the command line, one file per subcommand family; this module holds what
//! they share (reading the corpus, the towers and their caches, finding the model).

mod bank;
mod levels;
mod pool;
mod retrieval;
mod train;

pub(crate) use bank::{BankArgs, BenchSearchArgs, SearchArgs, bank, bench_search, search};
pub(crate) use levels::{EvalStructureLevelsArgs, eval_structure_levels};
pub(crate) use pool::{PoolArgs, pool};
pub(crate) use retrieval::{EvalRetrievalArgs, eval_retrieval};
pub(crate) use train::{AlignArgs, align};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::Device;
use clap::Args;
use foldspace::align::data::{
    Annotation, MF_ROOT, Ontology, read_function_jsonl, read_swissprot_tsv,
};
use foldspace::align::dataset::{DatasetOptions, assemble, function_group};
use foldspace::align::descriptions::{query_text, term_names};
use foldspace::align::metrics::{Retrieval, fmax, retrieval};
use foldspace::align::model::{AlignConfig, AlignManifest, AlignTrained};
use foldspace::align::query::{MANIFEST_FILE, SearchAssets, WEIGHTS_FILE};
use foldspace::align::search::{Bank, BankEntry, TRANSFER_NEIGHBOURS, TermEntry, normalise};
use foldspace::align::structure::StructureWindows;
use foldspace::align::training::{AlignTrainConfig, StructureTuning, train};
use foldspace::compute::Compute;
use foldspace::io::sha256_hex;
use foldspace::score::embed::Embedder;
use foldspace::score::weights::{WeightMap, to_safetensors, weight_map};
use foldspace::structure::{JsonChain, ReadOptions, read_chains_jsonl, read_structure};
use foldspace::text::TextEncoder;
use rand::prelude::*;
use rand::rngs::StdRng;

use crate::align_cache::{StructureCache, TextCache};
use crate::common::{Backend, cache_dir, compute, read_bytes, shipped, weights_path};

/// Default cache of structure vectors pooled at noise level `level` over `windows`, under
/// ~/.cache/foldspace/align/ (`-l<level>` in the name unless it is the network's default level;
/// `w64` for the central window, `t64` for tiles).
pub(crate) fn default_structure_cache(
    embedder: &Embedder,
    level: usize,
    windows: StructureWindows,
) -> PathBuf {
    let suffix = if level == embedder.default_level() {
        String::new()
    } else {
        format!("-l{level}")
    };
    align_cache_dir().join(format!(
        "structure-{}-{}{suffix}.jsonl",
        &embedder.weights_sha256[..16.min(embedder.weights_sha256.len())],
        windows.tag()
    ))
}

/// `central` or `tiled` (`--structure-windows`, `--windows`).
pub(crate) fn parse_windows(s: &str) -> Result<StructureWindows, String> {
    match s {
        "central" => Ok(StructureWindows::Central),
        "tiled" => Ok(StructureWindows::Tiled),
        _ => Err(format!(
            "`{s}`: the structure windows are `central` (one window of {} residues) or `tiled` \
             (the whole chain in such windows)",
            foldspace::align::structure::STRUCTURE_WINDOW
        )),
    }
}

pub(crate) fn read_chains(path: &Path) -> Result<Vec<JsonChain>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_chains_jsonl(&bytes, 1 << 31).with_context(|| format!("reading {}", path.display()))
}

/// Write a file and `<file>.sha256` (`<hex>  <name>`, as sha256sum writes it; the page checks it).
fn write_with_sha256(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let sha = path.with_file_name(format!("{name}.sha256"));
    std::fs::write(&sha, format!("{}  {name}\n", sha256_hex(bytes)))
        .with_context(|| format!("writing {}", sha.display()))
}

/// Everything the alignment commands read.
pub(crate) struct Corpus {
    pub chains: Vec<JsonChain>,
    pub by_name: HashMap<String, usize>,
    pub function: Vec<Annotation>,
    pub ontology: Ontology,
}

impl Corpus {
    pub fn read(
        structures: &Path,
        function: &Path,
        go_terms: &Path,
        go_parents: Option<&Path>,
    ) -> Result<Self> {
        let chains = read_chains(structures)?;
        let by_name = chains
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut function = read_function_jsonl(&read_bytes(function)?)
            .with_context(|| format!("reading {}", function.display()))?;
        let parents = go_parents.map(read_bytes).transpose()?;
        let ontology = Ontology::read(&read_bytes(go_terms)?, parents.as_deref())
            .with_context(|| format!("reading {}", go_terms.display()))?;
        let (dropped, touched) = function.iter_mut().fold((0, 0), |(d, t), a| {
            let n = a.retain_known(&ontology);
            (d + n, t + usize::from(n > 0))
        });
        if dropped > 0 {
            eprintln!(
                "{dropped} GO annotations of {touched} chains name terms that {} does not have \
                 (obsolete): left out",
                go_terms.display()
            );
        }
        Ok(Self {
            chains,
            by_name,
            function,
            ontology,
        })
    }

    pub fn chain(&self, name: &str) -> Option<&JsonChain> {
        self.by_name.get(name).map(|&i| &self.chains[i])
    }
}

/// The alignment commands' caches (tower outputs), in foldspace's cache folder.
pub(crate) fn align_cache_dir() -> PathBuf {
    cache_dir().join("align")
}

/// The text encoder and its vector cache.
pub(crate) fn text_tower(
    model: Option<&Path>,
    backend: Backend,
    cache: Option<&Path>,
) -> Result<(TextEncoder, TextCache)> {
    let path = crate::text::model_path(model, false)?;
    let encoder = TextEncoder::new(&crate::text::load(&path)?, compute(backend)?)?;
    let cache_path = cache.map(Path::to_path_buf).unwrap_or_else(|| {
        align_cache_dir().join(format!(
            "text-{}.jsonl",
            &encoder.source_sha256[..16.min(encoder.source_sha256.len())]
        ))
    });
    let cache = TextCache::open(&cache_path, "text vectors", &encoder.source_sha256)?;
    Ok((encoder, cache))
}

/// The shipped alignment model.
const DEFAULT_ALIGN: &str = "assets/align";
/// The file name of a stage-2 model's tuned score network.
const STRUCTURE_NETWORK: &str = "structure.safetensors";

/// The manifest of a model directory.
fn read_manifest(dir: &Path) -> Result<AlignManifest> {
    let path = dir.join(MANIFEST_FILE);
    AlignManifest::from_json(&read_bytes(&path)?)
        .with_context(|| format!("reading {}", path.display()))
}

/// The score network a model reads structures through: `weights` if given, else its own tuned
/// network (stage 2), else the shipped weights; it must be the one the model was trained on.
pub(crate) fn structure_embedder(
    dir: &Path,
    manifest: &AlignManifest,
    weights: Option<&Path>,
    compute: Compute,
) -> Result<Embedder> {
    let path = match (weights, &manifest.structure_network) {
        (None, Some(file)) => dir.join(file),
        _ => weights_path(weights)?,
    };
    let score = Embedder::from_file(&path, compute)?;
    if score.weights_sha256 != manifest.structure_weights_sha256 {
        bail!(
            "the alignment model in {} was trained on structure vectors of the score weights {}, not of {} ({})",
            dir.display(),
            manifest.structure_weights_sha256,
            score.weights_sha256,
            path.display()
        );
    }
    Ok(score)
}

/// An alignment model's directory: the one given, else the shipped one.
fn align_dir(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => shipped(&format!("{DEFAULT_ALIGN}/{MANIFEST_FILE}"))
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .ok_or_else(|| anyhow!("the shipped alignment model {DEFAULT_ALIGN}/{MANIFEST_FILE} was not found; pass --model (a directory written by `foldspace align`)")),
    }
}

/// Load `align.json` + `align.safetensors` from a directory (default: the shipped model); also
/// says which directory.
pub(crate) fn load_align(
    dir: Option<&Path>,
    device: &Device,
) -> Result<(AlignTrained, AlignManifest, PathBuf)> {
    let dir = align_dir(dir)?;
    let manifest = read_manifest(&dir)?;
    let weights = read_bytes(&dir.join(WEIGHTS_FILE))?;
    let model = AlignTrained::from_parts(&manifest, &weights, device)
        .with_context(|| format!("loading {}", dir.join(WEIGHTS_FILE).display()))?;
    Ok((model, manifest, dir))
}

/// The alignment model of a directory (default: the shipped one) with a bank, on the CPU.
fn search_assets(dir: Option<&Path>, bank: &Path) -> Result<SearchAssets> {
    let dir = align_dir(dir)?;
    let manifest = read_manifest(&dir)?;
    let weights = read_bytes(&dir.join(WEIGHTS_FILE))?;
    let bank_bytes = read_bytes(bank)?;
    let tuned = match &manifest.structure_network {
        Some(file) => Some(read_bytes(&dir.join(file))?),
        None => None,
    };
    SearchAssets::new(
        manifest,
        &weights,
        &bank_bytes,
        tuned.as_deref(),
        Compute::cpu(),
    )
    .with_context(|| {
        format!(
            "loading the alignment model {} with {}",
            dir.display(),
            bank.display()
        )
    })
}

/// The data files of `eval-retrieval` and `bank`.
#[derive(Args)]
pub(crate) struct FunctionInputs {
    /// Chains (`chains.jsonl.gz`).
    #[arg(long)]
    structures: PathBuf,
    /// Function annotations (`chain_function.jsonl.gz`).
    #[arg(long)]
    function: PathBuf,
    /// GO terms (default: go_terms.tsv.gz beside --function).
    #[arg(long)]
    go_terms: Option<PathBuf>,
    /// GO graph for propagation (default: go_parents.tsv.gz beside --function).
    #[arg(long)]
    go_parents: Option<PathBuf>,
}

impl FunctionInputs {
    fn read(&self) -> Result<Corpus> {
        let go_terms = self
            .go_terms
            .clone()
            .unwrap_or_else(|| sibling(&self.function, "go_terms.tsv.gz"));
        let go_parents = self
            .go_parents
            .clone()
            .unwrap_or_else(|| sibling(&self.function, "go_parents.tsv.gz"));
        Corpus::read(
            &self.structures,
            &self.function,
            &go_terms,
            Some(&go_parents),
        )
    }
}

/// What feeds the towers: the score network whose pooled embeddings are the structure tower's
/// input, the text model, and their caches (`align`, `eval-retrieval`, `bank`).
#[derive(Args)]
pub(crate) struct TowerInputs {
    /// Score-network weights whose pooled embeddings are the structure tower's input (default:
    /// the shipped ones; vectors already in the structure cache are read from it).
    #[arg(long)]
    pub(crate) weights: Option<PathBuf>,
    /// Structure-vector cache (default: as `pool-structures` writes it).
    #[arg(long)]
    pub(crate) structure_cache: Option<PathBuf>,
    /// The text model (as for `embed-text --model`).
    #[arg(long)]
    pub(crate) text_model: Option<PathBuf>,
    /// Text-vector cache (default: ~/.cache/foldspace/align/text-<model>.jsonl).
    #[arg(long)]
    pub(crate) text_cache: Option<PathBuf>,
}

/// The trained model and the towers feeding it, with their caches.
#[derive(Args)]
pub(crate) struct Towers {
    /// The alignment model directory (default: the shipped one).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    inputs: TowerInputs,
    /// Where the models run.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
}

impl Towers {
    /// The alignment model, and the score network whose pooled embeddings it was trained on.
    fn open(&self, device: &Device) -> Result<(AlignTrained, AlignManifest, Embedder)> {
        let (model, manifest, dir) = load_align(self.model.as_deref(), device)?;
        let score = structure_embedder(
            &dir,
            &manifest,
            self.inputs.weights.as_deref(),
            compute(self.backend)?,
        )?;
        Ok((model, manifest, score))
    }

    /// The structure vectors of `score` at `level` over `windows` (the model's
    /// [`AlignConfig::level`] and `structure_windows`).
    fn structure_cache(
        &self,
        score: &Embedder,
        level: usize,
        windows: StructureWindows,
    ) -> Result<StructureCache> {
        StructureCache::open(
            &self
                .inputs
                .structure_cache
                .clone()
                .unwrap_or_else(|| default_structure_cache(score, level, windows)),
            "structure vectors",
            &score.weights_sha256,
        )
    }

    fn text(&self) -> Result<(TextEncoder, TextCache)> {
        text_tower(
            self.inputs.text_model.as_deref(),
            self.backend,
            self.inputs.text_cache.as_deref(),
        )
    }
}

/// A structure weight that can be used: finite and not negative.
fn checked_weight(w: f32) -> Result<f32> {
    if !(w.is_finite() && w >= 0.0) {
        bail!("--structure-weight must be a finite weight ≥ 0, not {w}");
    }
    Ok(w)
}

fn sibling(of: &Path, name: &str) -> PathBuf {
    of.parent().unwrap_or(Path::new(".")).join(name)
}

/// A set of chains in the shared space: each tower's vectors and their fusion.
struct ProteinVectors {
    sequence: Vec<Vec<f32>>,
    structure: Vec<Vec<f32>>,
    fused: Vec<Vec<f32>>,
}

/// Embed `chains` with both protein towers (their structure vectors must be in `structures`).
fn embed_proteins(
    model: &AlignTrained,
    structures: &StructureCache,
    chains: &[&JsonChain],
    device: &Device,
) -> Result<ProteinVectors> {
    let sequences: Vec<&str> = chains.iter().map(|c| c.chain.sequence.as_str()).collect();
    let inputs = structures.get_all(chains.iter().map(|c| c.name.as_str()))?;
    let vectors = pollster::block_on(model.embed_proteins(&sequences, &inputs, device))?;
    let mut out = ProteinVectors {
        sequence: Vec::with_capacity(vectors.len()),
        structure: Vec::with_capacity(vectors.len()),
        fused: Vec::with_capacity(vectors.len()),
    };
    for v in vectors {
        out.sequence.push(v.sequence);
        out.structure.push(v.structure);
        out.fused.push(v.fused);
    }
    Ok(out)
}
