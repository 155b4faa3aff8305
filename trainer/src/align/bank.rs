//! `foldspace bank`, `search` and `bench-search`: the search bank, queries on it, and its speed.

use super::*;

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
        let level = model.config.level(&score);
        let windows = model.config.structure_windows;
        let mut structures = args.towers.structure_cache(&score, level, windows)?;
        structures.fill_structures(&score, level, windows, &chains)?;
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
    let assets = search_assets(args.model.as_deref(), &args.bank)?;
    let device = Compute::cpu().device;
    let (query, what) = if let Some(text) = &args.text {
        if text.trim().is_empty() {
            bail!("the text query is empty");
        }
        let path = crate::text::model_path(args.text_model.as_deref(), false)?;
        let encoder = TextEncoder::new(&crate::text::load(&path)?, Compute::cpu())?;
        let t = pollster::block_on(encoder.embed(&[text.as_str()]))?;
        let v = t.vectors.first().ok_or_else(|| anyhow!("no text vector"))?;
        (pollster::block_on(assets.text_vector(v))?, "text")
    } else if let Some(seq) = &args.sequence {
        let seq = seq.trim().to_ascii_uppercase();
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_alphabetic()) {
            bail!("the sequence must be one-letter amino-acid codes");
        }
        (
            pollster::block_on(assets.model.embed_sequences(&[seq.as_str()], &device))?.remove(0),
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
        // The model's own tuned network, unless --weights names one (checked to be the one the
        // model was trained with).
        let given = if assets.structure.is_some() && args.weights.is_none() {
            None
        } else {
            Some(structure_embedder(
                &align_dir(args.model.as_deref())?,
                &assets.manifest,
                args.weights.as_deref(),
                Compute::cpu(),
            )?)
        };
        let network = given
            .as_ref()
            .or(assets.structure.as_ref())
            .ok_or_else(|| anyhow!("no score network for the structure tower"))?;
        (
            pollster::block_on(assets.protein_vector(network, chain))?,
            "structure",
        )
    } else {
        bail!("give one query: --text, --sequence or --structure");
    };
    let bank = &assets.bank;
    let started = Instant::now();
    let hits = bank.search(&query, args.top)?;
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let terms = if what == "text" {
        Vec::new()
    } else {
        assets.likely_functions(&query, 5)?
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
