//! `foldspace pool-structures`, `align`, `bank`, `search`, `eval-retrieval`: the tri-modal model.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::Device;
use clap::Args;
use foldspace::align::data::{Annotation, Ontology, read_function_jsonl, read_swissprot_tsv};
use foldspace::align::metrics::{Retrieval, fmax, retrieval};
use foldspace::align::model::AlignConfig;
use foldspace::align::search::{
    Bank, BankEntry, TRANSFER_NEIGHBOURS, TermEntry, fuse, normalise, transfer,
};
use foldspace::align::structure::structure_features;
use foldspace::align::text::{Phrasing, facts as all_facts, phrasings, query_text, term_names};
use foldspace::align::train::{
    AlignItem, AlignManifest, AlignTrainConfig, AlignTrained, StructureTuning, train,
};
use foldspace::compute::Compute;
use foldspace::embed::Embedder;
use foldspace::sequence::{KmerIndex, local_identity};
use foldspace::structure::{JsonChain, ReadOptions, read_chains_jsonl, read_structure};
use foldspace::text::TextEncoder;
use foldspace::weights::{WeightMap, sha256_hex, to_safetensors, weight_map};
use rand::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::align_cache::{StructureCache, TextCache};
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

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
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

/// A label for "same molecular-function set" (None: no informative term).
pub(crate) fn function_group(ontology: &Ontology, function: &[String]) -> Option<u64> {
    let text = query_text(ontology, function);
    if text.is_empty() {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
}

pub(crate) fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/foldspace/align")
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
        cache_dir().join(format!(
            "text-{}.jsonl",
            &encoder.source_sha256[..16.min(encoder.source_sha256.len())]
        ))
    });
    let cache = TextCache::open(&cache_path, "text vectors", &encoder.source_sha256)?;
    Ok((encoder, cache))
}

#[derive(Args)]
pub(crate) struct AlignArgs {
    /// Chains (`chains.jsonl.gz`): sequences, structures and splits.
    #[arg(long)]
    structures: PathBuf,
    /// Function annotations of chains (`chain_function.jsonl.gz`).
    #[arg(long)]
    function: PathBuf,
    /// GO terms (`go_terms.tsv.gz`).
    #[arg(long)]
    go_terms: PathBuf,
    /// Swiss-Prot sequence–GO pairs (`swissprot50_go.tsv.gz`): sequence–text pairs.
    #[arg(long)]
    swissprot: Option<PathBuf>,
    /// Swiss-Prot entries to use at most (a seeded random subset).
    #[arg(long, default_value_t = 12000)]
    max_swissprot: usize,
    /// Phrasings per protein (the canonical text and templated variants).
    #[arg(long, default_value_t = 3)]
    phrasings: usize,
    /// Weights of the score network whose pooled embeddings are the structure tower (default:
    /// the shipped ones); their vectors come from `pool-structures`'s cache.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Structure-vector cache (default: as `pool-structures` writes it).
    #[arg(long)]
    structure_cache: Option<PathBuf>,
    /// The text model (as for `embed-text --model`).
    #[arg(long)]
    text_model: Option<PathBuf>,
    /// Text-vector cache (default: ~/.cache/foldspace/align/text-<model>.jsonl).
    #[arg(long)]
    text_cache: Option<PathBuf>,
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Take the learning rate down to this by the last step on a cosine (default: constant).
    #[arg(long)]
    final_learning_rate: Option<f64>,
    /// Raise the learning rates linearly from 0 over this many steps.
    #[arg(long, default_value_t = 0)]
    warmup_steps: usize,
    /// Continue from a model written by `foldspace align` (a directory with align.json and
    /// align.safetensors): its weights and structure standardisation; the optimiser starts afresh.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Weight of the sequence-masking intra-modal term (0: off; it doubles the sequence cost).
    #[arg(long, default_value_t = 0.0)]
    sequence_views: f32,
    /// Weight of the structure vector in a protein's vector (recorded with the model; training
    /// does not use it). With `--init` and `--steps 0`, re-weights a trained model.
    #[arg(long)]
    structure_weight: Option<f32>,
    /// Fraction of the text-bearing items of each batch drawn as near misses of the others
    /// (sharing a GO term or EC number that at most 2 % of the items have, of another function).
    #[arg(long, default_value_t = 0.0)]
    near_misses: f32,
    /// Items per step with all three modalities.
    #[arg(long, default_value_t = 48)]
    triples: usize,
    /// Items per step with sequence and structure only.
    #[arg(long, default_value_t = 24)]
    sequence_structure: usize,
    /// Items per step with sequence and text only.
    #[arg(long, default_value_t = 24)]
    sequence_text: usize,
    /// Weight of the structure-view intra-modal term (stage 1: two noise draws on the pooled
    /// vector; stage 2: two crops of the structure through the network, doubling its cost).
    #[arg(long, default_value_t = 0.2)]
    structure_views: f32,
    /// Stage 2: train the score network of the structure tower too, through the pooling
    /// (needs `--init`, a stage-1 model). The tuned network is written beside the model as
    /// structure.safetensors and the structure vectors of everything else come from it.
    #[arg(long)]
    fine_tune_structure: bool,
    /// Learning rate of the score network in stage 2 (follows the schedule of the rest). Small:
    /// the pooled features vary by 0.005–0.05 between chains, and Adam moves each weight by
    /// about this much a step.
    #[arg(long, default_value_t = 1e-6)]
    structure_learning_rate: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Output directory: align.safetensors, align.json, metrics.csv (and structure.safetensors
    /// in stage 2).
    #[arg(long)]
    out: PathBuf,
}

/// Interned facts (GO ids, EC numbers).
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    /// The sorted ids of some facts (new facts get new ids).
    fn of(&mut self, f: &[String]) -> Vec<u32> {
        let mut v: Vec<u32> = f
            .iter()
            .map(|x| {
                let next = self.ids.len() as u32;
                *self.ids.entry(x.clone()).or_insert(next)
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Distinct training texts and the facts each states.
#[derive(Default)]
struct TextTable {
    texts: Vec<String>,
    facts: Vec<Vec<u32>>,
    index: HashMap<String, usize>,
}

impl TextTable {
    fn add(&mut self, p: Phrasing, facts: &mut Interner) -> usize {
        if let Some(&i) = self.index.get(&p.text) {
            return i;
        }
        self.texts.push(p.text.clone());
        self.facts.push(facts.of(&p.facts));
        self.index.insert(p.text, self.texts.len() - 1);
        self.texts.len() - 1
    }
}

/// Train the alignment model (stage 1: the structure and text towers frozen; stage 2 with
/// `--fine-tune-structure`: the score network trained too).
pub(crate) fn align(args: AlignArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.near_misses) {
        bail!(
            "--near-misses is a fraction of the batch (0 to 1), not {}",
            args.near_misses
        );
    }
    let corpus = Corpus::read(&args.structures, &args.function, &args.go_terms, None)?;
    let o = &corpus.ontology;
    if args.fine_tune_structure && args.init.is_none() {
        bail!("--fine-tune-structure (stage 2) continues a stage-1 model: pass --init");
    }
    // A model continued from a stage-2 one keeps reading structures through its tuned network.
    let init_manifest = args.init.as_deref().map(read_manifest).transpose()?;
    let score_path = match (&args.weights, &args.init, &init_manifest) {
        (None, Some(dir), Some(m)) if m.structure_network.is_some() => {
            dir.join(m.structure_network.as_deref().unwrap_or_default())
        }
        _ => weights_path(args.weights.as_deref())?,
    };
    let score = Embedder::from_file(&score_path, Compute::cpu())?;
    let structure_path = args
        .structure_cache
        .clone()
        .unwrap_or_else(|| default_structure_cache(&score));
    let structures =
        StructureCache::open(&structure_path, "structure vectors", &score.weights_sha256)?;
    let annotated: HashMap<&str, &Annotation> = corpus
        .function
        .iter()
        .map(|a| (a.name.as_str(), a))
        .collect();
    let mut facts = Interner::default();
    let mut table = TextTable::default();
    let mut items = Vec::new();
    let (mut n_triples, mut n_seq_str, mut n_text_only, mut missing_structure) = (0, 0, 0, 0);
    for c in corpus.chains.iter().filter(|c| c.split == "train") {
        let structure = structures.vectors.get(&c.name).cloned();
        let (phr, group) = match annotated.get(c.name.as_str()) {
            Some(a) => (
                phrasings(o, a, args.phrasings),
                function_group(o, &a.function),
            ),
            None => (Vec::new(), None),
        };
        if structure.is_none() {
            missing_structure += 1;
        }
        match (&structure, phr.is_empty()) {
            (Some(_), false) => n_triples += 1,
            (Some(_), true) => n_seq_str += 1,
            (None, false) => n_text_only += 1,
            (None, true) => continue,
        }
        let coordinates = (args.fine_tune_structure
            && structure.is_some()
            && c.chain.ca.len() == c.chain.sequence.len())
        .then(|| Arc::from(c.chain.ca.as_slice()));
        items.push(AlignItem {
            sequence: c.chain.sequence.clone(),
            structure,
            coordinates,
            texts: phr.into_iter().map(|p| table.add(p, &mut facts)).collect(),
            group,
            facts: annotated
                .get(c.name.as_str())
                .map(|a| facts.of(&all_facts(a)))
                .unwrap_or_default(),
        });
    }
    // Swiss-Prot: never an entry of a val chain, nor a sequence equal to one.
    let mut n_swissprot = 0;
    if let Some(path) = &args.swissprot {
        let val_names: HashSet<&str> = corpus
            .chains
            .iter()
            .filter(|c| c.split == "val")
            .map(|c| c.name.as_str())
            .collect();
        let val_accessions: HashSet<&str> = corpus
            .function
            .iter()
            .filter(|a| val_names.contains(a.name.as_str()))
            .flat_map(|a| a.uniprot.iter().map(String::as_str))
            .collect();
        let val_sequences: HashSet<&str> = corpus
            .chains
            .iter()
            .filter(|c| c.split == "val")
            .map(|c| c.chain.sequence.as_str())
            .collect();
        let mut entries = read_swissprot_tsv(&read_bytes(path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        let dropped: usize = entries.iter_mut().map(|e| e.retain_known(o)).sum();
        if dropped > 0 {
            eprintln!(
                "{dropped} GO annotations of Swiss-Prot entries name terms that {} does not have \
                 (obsolete): left out",
                args.go_terms.display()
            );
        }
        entries.retain(|e| {
            !e.uniprot
                .iter()
                .any(|u| val_accessions.contains(u.as_str()))
                && !e
                    .sequence
                    .as_deref()
                    .is_some_and(|s| val_sequences.contains(s))
                && !phrasings(o, e, 1).is_empty()
        });
        let mut rng = StdRng::seed_from_u64(args.seed);
        entries.shuffle(&mut rng);
        entries.truncate(args.max_swissprot);
        for e in &entries {
            let Some(sequence) = &e.sequence else {
                continue;
            };
            if sequence.is_empty() {
                continue;
            }
            items.push(AlignItem {
                sequence: sequence.clone(),
                structure: None,
                coordinates: None,
                texts: phrasings(o, e, args.phrasings.min(2))
                    .into_iter()
                    .map(|p| table.add(p, &mut facts))
                    .collect(),
                group: function_group(o, &e.function),
                facts: facts.of(&all_facts(e)),
            });
            n_swissprot += 1;
        }
    }
    eprintln!(
        "items: {n_triples} train chains with all three modalities, {n_seq_str} sequence–structure, \
         {n_text_only} sequence–text chains (no cached structure vector: {missing_structure} train chains), \
         {n_swissprot} Swiss-Prot sequence–text; {} distinct texts",
        table.texts.len()
    );
    let texts = &table.texts;
    let (encoder, mut text_cache) = text_tower(
        args.text_model.as_deref(),
        args.backend,
        args.text_cache.as_deref(),
    )?;
    text_cache.fill_texts(&encoder, texts)?;
    let vectors: Vec<Vec<f32>> = text_cache
        .get_all(texts.iter().map(String::as_str))?
        .into_iter()
        .map(<[f32]>::to_vec)
        .collect();
    let train_compute = compute(args.backend)?.autodiff();
    let device = train_compute.device.clone();
    let init = match &args.init {
        Some(dir) => {
            let (model, manifest, _) = load_align(Some(dir), &device)?;
            if manifest.structure_weights_sha256 != score.weights_sha256
                || manifest.text_weights_sha256 != encoder.source_sha256
            {
                bail!(
                    "{} was trained on other structure or text towers than this run's",
                    dir.display()
                );
            }
            Some((model, manifest))
        }
        None => None,
    };
    let mut model_config = match &init {
        Some((model, _)) => model.config.clone(),
        None => AlignConfig {
            structure_width: structures
                .vectors
                .values()
                .next()
                .map(Vec::len)
                .unwrap_or(128),
            text_width: encoder.dim(),
            ..AlignConfig::default()
        },
    };
    if let Some(w) = args.structure_weight {
        model_config.structure_weight = checked_weight(w)?;
    }
    // The weight is not trained: the continued model takes this run's.
    let (init, continued_from) = match init {
        Some((mut model, manifest)) => {
            model.config.structure_weight = model_config.structure_weight;
            let from = serde_json::json!({
                "model": args.init.as_ref().map(|d| d.display().to_string()),
                "training": manifest.training,
            });
            (Some(model), from)
        }
        None => (None, serde_json::Value::Null),
    };
    let config = AlignTrainConfig {
        steps: args.steps,
        triples: args.triples,
        sequence_structure: args.sequence_structure,
        sequence_text: args.sequence_text,
        learning_rate: args.learning_rate,
        final_learning_rate: args.final_learning_rate,
        warmup_steps: args.warmup_steps,
        weight_structure_views: args.structure_views,
        weight_sequence_views: args.sequence_views,
        near_misses: args.near_misses,
        seed: args.seed,
        ..AlignTrainConfig::default()
    };
    // Stage 2: the same network, trainable, on the training device.
    let (tuning, batches_tracked) = if args.fine_tune_structure {
        let (map, sha) = WeightMap::from_file(&score_path)?;
        let batches = map
            .tensors
            .get("norm_out.norm.num_batches_tracked")
            .and_then(|t| t.values.first())
            .map_or(0, |&v| v as u64);
        let network = Embedder::new(&map, sha, train_compute.clone())?;
        let tuning = StructureTuning {
            level: network.default_level(),
            network: network.model,
            compute: train_compute,
            learning_rate: args.structure_learning_rate,
        };
        (Some(tuning), batches)
    } else {
        (None, 0)
    };
    let stage = if tuning.is_some() { 2 } else { 1 };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut metrics = std::fs::File::create(args.out.join("metrics.csv"))?;
    writeln!(
        metrics,
        "step,loss,sequence_structure,sequence_text,structure_text,views,step_s"
    )?;
    let started = Instant::now();
    let mut last = Instant::now();
    let mut write_error = None;
    let (trained, tuned) = pollster::block_on(train(
        &items,
        &vectors,
        &table.facts,
        model_config,
        init,
        tuning,
        &config,
        &device,
        |step, l| {
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            if let Err(e) = writeln!(
                metrics,
                "{step},{:.5},{:.5},{:.5},{:.5},{:.5},{dt:.3}",
                l[0], l[1], l[2], l[3], l[4]
            ) {
                write_error.get_or_insert(e);
            }
            if step % 20 == 0 || step == 1 {
                eprintln!(
                    "step {step}: loss {:.4} (seq–str {:.3}, seq–text {:.3}, str–text {:.3}, views {:.3}) {:.1} s/step",
                    l[0], l[1], l[2], l[3], l[4], dt
                );
            }
        },
    ))?;
    if let Some(e) = write_error {
        return Err(e).context("writing metrics.csv");
    }
    let weights = trained.to_safetensors()?;
    write_with_sha256(&args.out.join("align.safetensors"), &weights)?;
    // The structure network the model reads: tuned here, or a tuned one it continued from.
    let network = match tuned {
        Some(net) => Some(to_safetensors(&pollster::block_on(weight_map(
            &net,
            &score.config,
            batches_tracked,
        ))?)?),
        None if init_manifest
            .as_ref()
            .is_some_and(|m| m.structure_network.is_some()) =>
        {
            Some(read_bytes(&score_path)?)
        }
        None => None,
    };
    let (structure_network, structure_sha) = match &network {
        Some(bytes) => {
            write_with_sha256(&args.out.join(STRUCTURE_NETWORK), bytes)?;
            (Some(STRUCTURE_NETWORK.to_string()), sha256_hex(bytes))
        }
        None => (None, score.weights_sha256.clone()),
    };
    let manifest = AlignManifest {
        config: trained.config.clone(),
        structure_mean: trained.structure_mean.clone(),
        structure_std: trained.structure_std.clone(),
        structure_weights_sha256: structure_sha,
        structure_network,
        text_weights_sha256: encoder.source_sha256.clone(),
        training: serde_json::json!({
            "stage": stage,
            "frozen": if stage == 2 {
                vec!["text tower (MiniLM)"]
            } else {
                vec!["structure tower (score network)", "text tower (MiniLM)"]
            },
            "structure_learning_rate": (stage == 2).then_some(args.structure_learning_rate),
            "train": config,
            "items": {
                "triples": n_triples,
                "sequence_structure": n_seq_str,
                "sequence_text_chains": n_text_only,
                "swissprot": n_swissprot,
                "texts": texts.len(),
            },
            "seconds": started.elapsed().as_secs_f64(),
            "weights_sha256": sha256_hex(&weights),
            "continued_from": continued_from,
        }),
    };
    write_with_sha256(
        &args.out.join("align.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    eprintln!(
        "wrote {} ({:.0} s)",
        args.out.join("align.safetensors").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The shipped alignment model.
const DEFAULT_ALIGN: &str = "assets/align";
/// The file name of a stage-2 model's tuned score network.
const STRUCTURE_NETWORK: &str = "structure.safetensors";

/// The manifest of a model directory.
fn read_manifest(dir: &Path) -> Result<AlignManifest> {
    serde_json::from_slice(&read_bytes(&dir.join("align.json"))?)
        .with_context(|| format!("reading {}", dir.join("align.json").display()))
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

/// Load `align.json` + `align.safetensors` from a directory (default: the shipped model); also
/// says which directory.
pub(crate) fn load_align(
    dir: Option<&Path>,
    device: &Device,
) -> Result<(AlignTrained, AlignManifest, PathBuf)> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => [PathBuf::from(DEFAULT_ALIGN), PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(DEFAULT_ALIGN)]
            .into_iter()
            .find(|p| p.join("align.json").is_file())
            .ok_or_else(|| anyhow!("the shipped alignment model {DEFAULT_ALIGN}/align.json was not found; pass --model (a directory written by `foldspace align`)"))?,
    };
    let manifest = read_manifest(&dir)?;
    let weights = read_bytes(&dir.join("align.safetensors"))?;
    let model = AlignTrained::from_parts(&manifest, &weights, device)
        .with_context(|| format!("loading {}", dir.join("align.safetensors").display()))?;
    Ok((model, manifest, dir))
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

/// The trained model and the towers feeding it, with their caches.
#[derive(Args)]
pub(crate) struct Towers {
    /// The alignment model directory (default: the shipped one).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Score-network weights for structure vectors not in the cache (default: the shipped ones).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Structure-vector cache (default: as `pool-structures` writes it).
    #[arg(long)]
    structure_cache: Option<PathBuf>,
    /// The text model (as for `embed-text --model`).
    #[arg(long)]
    text_model: Option<PathBuf>,
    /// Text-vector cache (default: ~/.cache/foldspace/align/text-<model>.jsonl).
    #[arg(long)]
    text_cache: Option<PathBuf>,
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
            self.weights.as_deref(),
            compute(self.backend)?,
        )?;
        Ok((model, manifest, score))
    }

    fn structure_cache(&self, score: &Embedder) -> Result<StructureCache> {
        StructureCache::open(
            &self
                .structure_cache
                .clone()
                .unwrap_or_else(|| default_structure_cache(score)),
            "structure vectors",
            &score.weights_sha256,
        )
    }

    fn text(&self) -> Result<(TextEncoder, TextCache)> {
        text_tower(
            self.text_model.as_deref(),
            self.backend,
            self.text_cache.as_deref(),
        )
    }
}

#[derive(Args)]
pub(crate) struct EvalRetrievalArgs {
    #[command(flatten)]
    inputs: FunctionInputs,
    #[command(flatten)]
    towers: Towers,
    /// Evaluate only chains of this split (e.g. val); default: every split.
    #[arg(long)]
    split: Option<String>,
    /// GO terms each protein predicts before propagation (Fmax).
    #[arg(long, default_value_t = 50)]
    terms_per_protein: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Neighbours of the transfer predictor ("likely function").
    #[arg(long, default_value_t = TRANSFER_NEIGHBOURS)]
    neighbours: usize,
    /// Weight of the structure vector in the protein vector (default: the model's), to compare
    /// weights; `align --structure-weight` sets the model's.
    #[arg(long)]
    structure_weight: Option<f32>,
    /// Leave out the transfer predictor (it needs the structure vectors of every train chain;
    /// for a stage-2 model, whose network must pool them afresh, that is hours on a CPU).
    #[arg(long)]
    no_transfer: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
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

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Keep the `k` best-scored terms, then give every ancestor the best score below it.
fn propagate_scores(o: &Ontology, scores: Vec<(String, f32)>, k: usize) -> HashMap<String, f32> {
    let mut top = scores;
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(k);
    let mut out: HashMap<String, f32> = HashMap::new();
    for (term, s) in top {
        for t in o.propagate(std::iter::once(&term)) {
            let e = out.entry(t).or_insert(s);
            *e = e.max(s);
        }
    }
    out.remove(MF_ROOT);
    out
}

const MF_ROOT: &str = "GO:0003674";

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
    let sequence = pollster::block_on(model.embed_sequences(&sequences, device))?;
    let inputs = structures.get_all(chains.iter().map(|c| c.name.as_str()))?;
    let structure = pollster::block_on(model.embed_structures(&inputs, device))?;
    let fused = sequence
        .iter()
        .zip(&structure)
        .map(|(s, t)| fuse(s, t, model.config.structure_weight))
        .collect();
    Ok(ProteinVectors {
        sequence,
        structure,
        fused,
    })
}

/// `foldspace eval-retrieval`: cross-modal retrieval and zero-shot GO-MF prediction with baselines.
pub(crate) fn eval_retrieval(args: EvalRetrievalArgs) -> Result<()> {
    let corpus = args.inputs.read()?;
    let o = &corpus.ontology;
    let device = compute(args.towers.backend)?.device;
    let (mut model, _, score) = args.towers.open(&device)?;
    if let Some(w) = args.structure_weight {
        model.config.structure_weight = checked_weight(w)?;
    }
    let mf_set = |a: &Annotation| -> Vec<String> {
        a.function
            .iter()
            .filter(|t| t.as_str() != MF_ROOT)
            .cloned()
            .collect()
    };
    // The evaluated proteins: in both files, in the split, with an informative MF set.
    let proteins: Vec<(&Annotation, &JsonChain)> = corpus
        .function
        .iter()
        .filter_map(|a| Some((a, corpus.chain(&a.name)?)))
        .filter(|(a, c)| {
            args.split.as_deref().is_none_or(|s| c.split == s)
                && !query_text(o, &a.function).is_empty()
                && c.chain.len() >= 2
        })
        .collect();
    let n = proteins.len();
    if n < 2 {
        bail!(
            "only {n} chains are in both files{} with a molecular-function term",
            args.split
                .as_deref()
                .map(|s| format!(" (split {s})"))
                .unwrap_or_default()
        );
    }
    let quiet = args.json;
    let log = |m: String| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    log(format!("{n} proteins"));
    let mut structures = args.towers.structure_cache(&score)?;
    let chains: Vec<&JsonChain> = proteins.iter().map(|(_, c)| *c).collect();
    structures.fill_structures(&score, &chains)?;
    let (encoder, mut text_cache) = args.towers.text()?;
    // Candidate GO terms: the MF terms of the training chains, propagated.
    let train_sets: Vec<(&JsonChain, BTreeSet<String>)> = corpus
        .function
        .iter()
        .filter_map(|a| Some((corpus.chain(&a.name)?, a)))
        .filter(|(c, a)| c.split == "train" && !mf_set(a).is_empty())
        .map(|(c, a)| {
            let mut p = o.propagate(&a.function);
            p.remove(MF_ROOT);
            (c, p)
        })
        .collect();
    let mut frequency: HashMap<String, f64> = HashMap::new();
    for (_, set) in &train_sets {
        for t in set {
            *frequency.entry(t.clone()).or_default() += 1.0;
        }
    }
    let mut terms: Vec<String> = frequency.keys().cloned().collect();
    terms.sort();
    let term_names: Vec<String> = terms.iter().map(|t| o.name(t).to_string()).collect();
    let queries: Vec<String> = proteins
        .iter()
        .map(|(a, _)| query_text(o, &a.function))
        .collect();
    let mut all_texts = queries.clone();
    all_texts.extend(term_names.iter().cloned());
    text_cache.fill_texts(&encoder, &all_texts)?;
    let train_chains: Vec<&JsonChain> = train_sets.iter().map(|(c, _)| *c).collect();
    if !args.no_transfer {
        structures.fill_structures(&score, &train_chains)?;
    }
    let query_inputs = text_cache.get_all(queries.iter().map(String::as_str))?;
    let term_inputs = text_cache.get_all(term_names.iter().map(String::as_str))?;
    let text_vectors = pollster::block_on(model.embed_texts(&query_inputs, &device))?;
    let term_vectors = pollster::block_on(model.embed_texts(&term_inputs, &device))?;
    let ProteinVectors {
        sequence: sequence_vectors,
        structure: structure_vectors,
        fused: protein_vectors,
    } = embed_proteins(&model, &structures, &chains, &device)?;
    let sets: Vec<Vec<String>> = proteins.iter().map(|(a, _)| mf_set(a)).collect();
    let hit = |q: usize, c: usize| q == c || sets[q] == sets[c];
    let retrieve = |p: &[Vec<f32>]| -> (Retrieval, Retrieval) {
        let t2p = retrieval(
            n,
            |q| p.iter().map(|v| dot(v, &text_vectors[q])).collect(),
            hit,
        );
        let p2t = retrieval(
            n,
            |q| text_vectors.iter().map(|t| dot(t, &p[q])).collect(),
            hit,
        );
        (t2p, p2t)
    };
    let (t2p, p2t) = retrieve(&protein_vectors);
    let (t2p_seq, p2t_seq) = retrieve(&sequence_vectors);
    let (t2p_str, p2t_str) = retrieve(&structure_vectors);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let random_scores: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..n).map(|_| rng.random::<f32>()).collect())
        .collect();
    let t2p_random = retrieval(n, |q| random_scores[q].clone(), hit);
    // Fmax.
    let truth: Vec<BTreeSet<String>> = proteins
        .iter()
        .map(|(a, _)| {
            let mut p = o.propagate(&a.function);
            p.remove(MF_ROOT);
            p
        })
        .collect();
    let k = args.terms_per_protein;
    let zero_shot = |vectors: &[Vec<f32>]| -> f64 {
        let predictions: Vec<HashMap<String, f32>> = vectors
            .iter()
            .map(|v| {
                let scores = terms
                    .iter()
                    .zip(&term_vectors)
                    .map(|(t, tv)| (t.clone(), (dot(v, tv) + 1.0) / 2.0))
                    .collect();
                propagate_scores(o, scores, k)
            })
            .collect();
        fmax(&predictions, &truth)
    };
    let fmax_model = zero_shot(&protein_vectors);
    let fmax_sequence = zero_shot(&sequence_vectors);
    let fmax_structure = zero_shot(&structure_vectors);
    let random_predictions: Vec<HashMap<String, f32>> = (0..n)
        .map(|_| {
            propagate_scores(
                o,
                terms
                    .iter()
                    .map(|t| (t.clone(), rng.random::<f32>()))
                    .collect(),
                k,
            )
        })
        .collect();
    let fmax_random = fmax(&random_predictions, &truth);
    let train_count = train_sets.len().max(1) as f64;
    let naive: HashMap<String, f32> = frequency
        .iter()
        .map(|(t, c)| (t.clone(), (c / train_count) as f32))
        .collect();
    let fmax_naive = fmax(&vec![naive; n], &truth);
    // Nearest training chain by Smith–Waterman identity (itself excluded).
    let train_sequences: Vec<&[u8]> = train_sets
        .iter()
        .map(|(c, _)| c.chain.sequence.as_bytes())
        .collect();
    let index = KmerIndex::new(train_sequences.iter().copied(), 3);
    let nearest_predictions: Vec<HashMap<String, f32>> = chains
        .iter()
        .map(|c| {
            let best = index
                .candidates(c.chain.sequence.as_bytes(), 20)
                .into_iter()
                .filter(|(id, _)| train_sets[*id].0.name != c.name)
                .map(|(id, _)| {
                    (
                        id,
                        local_identity(c.chain.sequence.as_bytes(), train_sequences[id]).fraction(),
                    )
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((id, identity)) => train_sets[id]
                    .1
                    .iter()
                    .map(|t| (t.clone(), identity as f32))
                    .collect(),
                None => HashMap::new(),
            }
        })
        .collect();
    let fmax_nearest = fmax(&nearest_predictions, &truth);
    // Transfer from the nearest training chains in the shared space (itself excluded).
    let fmax_knn = if args.no_transfer {
        None
    } else {
        let train_vectors = embed_proteins(&model, &structures, &train_chains, &device)?.fused;
        let knn_predictions: Vec<HashMap<String, f32>> = protein_vectors
            .iter()
            .zip(&chains)
            .map(|(v, c)| {
                let mut near: Vec<(f32, usize)> = train_vectors
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| train_sets[*j].0.name != c.name)
                    .map(|(j, t)| (dot(v, t), j))
                    .collect();
                near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                near.truncate(args.neighbours.max(1));
                transfer(near.iter().map(|&(s, j)| (s, &train_sets[j].1)))
                    .into_iter()
                    .collect()
            })
            .collect();
        Some(fmax(&knn_predictions, &truth))
    };
    let r = |x: Retrieval| serde_json::json!({"r1": x.r1, "r10": x.r10, "map": x.map});
    let out = serde_json::json!({
        "n": n,
        "split": args.split.clone().unwrap_or_else(|| "all".into()),
        "text_to_protein": r(t2p),
        "protein_to_text": r(p2t),
        "go_mf_fmax": fmax_model,
        "go_mf_fmax_transfer": fmax_knn.map(|f| serde_json::json!({"fmax": f, "neighbours": args.neighbours.max(1)})),
        "structure_weight": model.config.structure_weight,
        "towers": {
            "sequence": {"text_to_protein": r(t2p_seq), "protein_to_text": r(p2t_seq), "go_mf_fmax": fmax_sequence},
            "structure": {"text_to_protein": r(t2p_str), "protein_to_text": r(p2t_str), "go_mf_fmax": fmax_structure},
        },
        "baselines": {
            "random": {"text_to_protein": r(t2p_random), "go_mf_fmax": fmax_random},
            "naive": {"go_mf_fmax": fmax_naive},
            "nearest_sequence": {"go_mf_fmax": fmax_nearest},
        },
        "candidate_terms": terms.len(),
        "train_chains_for_baselines": train_sets.len(),
    });
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{n} proteins{}; {} candidate GO-MF terms",
            args.split
                .as_deref()
                .map(|s| format!(" (split {s})"))
                .unwrap_or_default(),
            terms.len()
        );
        println!("{:<28} {:>6} {:>6} {:>6}", "", "R@1", "R@10", "MAP");
        for (name, x) in [
            ("text→protein", t2p),
            ("protein→text", p2t),
            ("text→protein (sequence)", t2p_seq),
            ("text→protein (structure)", t2p_str),
            ("text→protein (random)", t2p_random),
        ] {
            println!("{name:<28} {:>6.3} {:>6.3} {:>6.3}", x.r1, x.r10, x.map);
        }
        println!(
            "GO-MF Fmax: model zero-shot {fmax_model:.3} (sequence {fmax_sequence:.3}, structure {fmax_structure:.3}), model transfer from {} neighbours {}; random {fmax_random:.3}, naive {fmax_naive:.3}, nearest sequence {fmax_nearest:.3}",
            args.neighbours.max(1),
            fmax_knn.map_or("not run".to_string(), |f| format!("{f:.3}"))
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct BankArgs {
    #[command(flatten)]
    inputs: FunctionInputs,
    #[command(flatten)]
    towers: Towers,
    /// Splits to put in the bank.
    #[arg(long, default_value = "train,val")]
    splits: String,
    /// Instead of real chains: this many random unit vectors (for timing search).
    #[arg(long)]
    synthetic: Option<usize>,
    /// Output file.
    #[arg(long, default_value = "assets/align/bank.safetensors")]
    out: PathBuf,
}

/// `foldspace bank`: embed chains into a search bank.
pub(crate) fn bank(args: BankArgs) -> Result<()> {
    let corpus = args.inputs.read()?;
    let o = &corpus.ontology;
    let device = compute(args.towers.backend)?.device;
    let (model, manifest, score) = args.towers.open(&device)?;
    let dim = model.config.dim;
    let mut info = BTreeMap::new();
    info.insert(
        "model_weights_sha256".to_string(),
        manifest
            .training
            .get("weights_sha256")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
    );
    info.insert(
        "structure_weights_sha256".to_string(),
        manifest.structure_weights_sha256.clone(),
    );
    info.insert(
        "text_weights_sha256".to_string(),
        manifest.text_weights_sha256.clone(),
    );
    info.insert("foldspace".to_string(), foldspace::VERSION.to_string());
    let annotated: HashMap<&str, &Annotation> = corpus
        .function
        .iter()
        .map(|a| (a.name.as_str(), a))
        .collect();
    // "Likely function" candidates: the MF terms of the training chains, propagated.
    let mut candidate: BTreeSet<String> = BTreeSet::new();
    for c in corpus.chains.iter().filter(|c| c.split == "train") {
        if let Some(a) = annotated.get(c.name.as_str()) {
            candidate.extend(o.propagate(&a.function));
        }
    }
    candidate.remove(MF_ROOT);
    let terms: Vec<TermEntry> = candidate
        .iter()
        .map(|t| TermEntry {
            id: t.clone(),
            name: o.name(t).to_string(),
        })
        .collect();
    let (encoder, mut text_cache) = args.towers.text()?;
    let names: Vec<String> = terms.iter().map(|t| t.name.clone()).collect();
    text_cache.fill_texts(&encoder, &names)?;
    let inputs = text_cache.get_all(names.iter().map(String::as_str))?;
    let term_vectors: Vec<f32> = pollster::block_on(model.embed_texts(&inputs, &device))?.concat();
    let (entries, vectors) = if let Some(n) = args.synthetic {
        let mut rng = StdRng::seed_from_u64(n as u64);
        let mut vectors = Vec::with_capacity(n * dim);
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let v: Vec<f32> = (0..dim)
                .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
                .collect();
            vectors.extend(normalise(&v));
            entries.push(BankEntry {
                name: format!("SYN{i:06}_A_1"),
                pdb_id: format!("S{:03}", i % 1000),
                chain: "A".into(),
                length: 100 + i % 300,
                go: Vec::new(),
                split: "synthetic".into(),
            });
        }
        info.insert("synthetic".to_string(), n.to_string());
        (entries, vectors)
    } else {
        let splits: HashSet<&str> = args.splits.split(',').collect();
        let chains: Vec<&JsonChain> = corpus
            .chains
            .iter()
            .filter(|c| splits.contains(c.split.as_str()) && c.chain.len() >= 2)
            .collect();
        if chains.is_empty() {
            bail!(
                "no chain of {} is in the splits {}",
                args.inputs.structures.display(),
                args.splits
            );
        }
        let mut structures = args.towers.structure_cache(&score)?;
        structures.fill_structures(&score, &chains)?;
        let vectors: Vec<f32> = embed_proteins(&model, &structures, &chains, &device)?
            .fused
            .concat();
        let entries = chains
            .iter()
            .map(|c| BankEntry {
                name: c.name.clone(),
                pdb_id: c.pdb_id.clone(),
                chain: c.chain.id.clone(),
                length: c.chain.len(),
                go: annotated
                    .get(c.name.as_str())
                    .map(|a| term_names(o, &a.function))
                    .unwrap_or_default(),
                split: c.split.clone(),
            })
            .collect();
        info.insert("splits".to_string(), args.splits.clone());
        (entries, vectors)
    };
    let bank = Bank {
        dim,
        vectors,
        entries,
        term_vectors,
        terms,
        info,
    };
    let bytes = bank.to_bytes()?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_with_sha256(&args.out, &bytes)?;
    eprintln!(
        "{}: {} proteins, {} GO terms, {} bytes",
        args.out.display(),
        bank.entries.len(),
        bank.terms.len(),
        bytes.len()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// The bank (`foldspace bank`).
    #[arg(long, default_value = "assets/align/bank.safetensors")]
    bank: PathBuf,
    /// Free function text.
    #[arg(long, group = "query")]
    text: Option<String>,
    /// A structure file (PDB / mmCIF, optionally .gz): its first chain, or --chain.
    #[arg(long, group = "query")]
    structure: Option<PathBuf>,
    /// A protein sequence (one-letter codes).
    #[arg(long, group = "query")]
    sequence: Option<String>,
    /// The chain of --structure.
    #[arg(long)]
    chain: Option<String>,
    /// Hits to show.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// The alignment model directory (default: the shipped one).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Score-network weights (default: the shipped ones).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The text model (as for `embed-text --model`).
    #[arg(long)]
    text_model: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `foldspace search`.
pub(crate) fn search(args: SearchArgs) -> Result<()> {
    let bank = Bank::from_bytes(&read_bytes(&args.bank)?)
        .with_context(|| format!("reading {}", args.bank.display()))?;
    let device = Compute::cpu().device;
    let (model, manifest, dir) = load_align(args.model.as_deref(), &device)?;
    let (query, what) = if let Some(text) = &args.text {
        if text.trim().is_empty() {
            bail!("the text query is empty");
        }
        let path = crate::text::model_path(args.text_model.as_deref(), false)?;
        let encoder = TextEncoder::new(&crate::text::load(&path)?, Compute::cpu())?;
        let t = pollster::block_on(encoder.embed(&[text.as_str()]))?;
        let v = t.vectors.first().ok_or_else(|| anyhow!("no text vector"))?;
        (
            pollster::block_on(model.embed_texts(&[v.as_slice()], &device))?.remove(0),
            "text",
        )
    } else if let Some(seq) = &args.sequence {
        let seq = seq.trim().to_ascii_uppercase();
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_alphabetic()) {
            bail!("the sequence must be one-letter amino-acid codes");
        }
        (
            pollster::block_on(model.embed_sequences(&[seq.as_str()], &device))?.remove(0),
            "sequence",
        )
    } else if let Some(file) = &args.structure {
        let bytes = read_bytes(file)?;
        let name = file.file_name().and_then(|n| n.to_str());
        let parsed = read_structure(&bytes, name, &ReadOptions::default())
            .with_context(|| format!("reading {}", file.display()))?;
        let chains = parsed.structure.first_model_chains();
        let chain = match &args.chain {
            Some(id) => chains
                .iter()
                .find(|c| &c.id == id)
                .ok_or_else(|| anyhow!("no chain {id} in {}", file.display()))?,
            None => chains
                .first()
                .ok_or_else(|| anyhow!("no protein chain in {}", file.display()))?,
        };
        if chain.len() < 2 {
            bail!("chain {} has {} residue(s)", chain.id, chain.len());
        }
        let score = structure_embedder(&dir, &manifest, args.weights.as_deref(), Compute::cpu())?;
        let input = pollster::block_on(structure_features(&score, chain))?;
        let s = pollster::block_on(model.embed_structures(&[input.as_slice()], &device))?.remove(0);
        let q = pollster::block_on(model.embed_sequences(&[chain.sequence.as_str()], &device))?
            .remove(0);
        (fuse(&q, &s, model.config.structure_weight), "structure")
    } else {
        bail!("give one query: --text, --sequence or --structure");
    };
    let started = Instant::now();
    let hits = bank.search(&query, args.top)?;
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let terms = if what == "text" {
        Vec::new()
    } else {
        bank.transferred_terms(&query, TRANSFER_NEIGHBOURS, 5)?
    };
    if args.json {
        let out = serde_json::json!({
            "query": what,
            "hits": hits.iter().map(|h| {
                let e = &bank.entries[h.index];
                serde_json::json!({"score": h.score, "name": e.name, "pdb_id": e.pdb_id, "chain": e.chain, "length": e.length, "go": e.go})
            }).collect::<Vec<_>>(),
            "likely_function": terms.iter().map(|(name, score)| serde_json::json!({"name": name, "score": score})).collect::<Vec<_>>(),
            "search_ms": elapsed,
            "bank_size": bank.entries.len(),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{:>4} {:>6}  {:<14} {:>5}  GO molecular function",
            "rank", "score", "chain", "L"
        );
        for (rank, h) in hits.iter().enumerate() {
            let e = &bank.entries[h.index];
            println!(
                "{:>4} {:>6.3}  {:<14} {:>5}  {}",
                rank + 1,
                h.score,
                e.name,
                e.length,
                e.go.join("; ")
            );
        }
        if !terms.is_empty() {
            println!(
                "likely function (share of the {TRANSFER_NEIGHBOURS} closest annotated proteins, similarity-weighted):"
            );
            for (name, score) in &terms {
                println!("  {score:.3} {name}");
            }
        }
        eprintln!(
            "searched {} proteins in {elapsed:.2} ms",
            bank.entries.len()
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct BenchSearchArgs {
    /// Banks to time (e.g. the shipped one and `bank --synthetic 100000` ones).
    #[arg(required = true)]
    banks: Vec<PathBuf>,
    /// Random unit queries per bank.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// `foldspace bench-search`: load time and exact top-k latency of banks (CPU, one thread).
pub(crate) fn bench_search(args: BenchSearchArgs) -> Result<()> {
    for path in &args.banks {
        let bytes = read_bytes(path)?;
        let started = Instant::now();
        let bank =
            Bank::from_bytes(&bytes).with_context(|| format!("reading {}", path.display()))?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut rng = StdRng::seed_from_u64(1);
        let mut times = Vec::with_capacity(args.queries);
        for _ in 0..args.queries.max(1) {
            let q: Vec<f32> = (0..bank.dim)
                .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
                .collect();
            let q = normalise(&q);
            let t = Instant::now();
            let hits = bank.search(&q, args.top)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(hits);
        }
        times.sort_by(f64::total_cmp);
        let pick = |f: f64| times[((times.len() - 1) as f64 * f).round() as usize];
        println!(
            "{}: {} proteins × {} dims, {:.1} MB; load {load_ms:.0} ms; top-{} search median {:.2} ms, p95 {:.2} ms, max {:.2} ms over {} queries",
            path.display(),
            bank.entries.len(),
            bank.dim,
            bytes.len() as f64 / 1e6,
            args.top,
            pick(0.5),
            pick(0.95),
            pick(1.0),
            times.len()
        );
    }
    Ok(())
}
