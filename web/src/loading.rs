//! What the page fetches and how it asks the library about it: the score-model weights (checked
//! against their SHA-256), the alignment model with its bank, the text model, and the searches
//! on them. No component state here: each function takes what it needs and returns a result.

use std::rc::Rc;

use foldspace::align::model::AlignManifest;
use foldspace::align::query::{BANK_FILE, MANIFEST_FILE, SearchAssets, WEIGHTS_FILE};
use foldspace::align::search::BankEntry;
use foldspace::compute::Compute;
use foldspace::io::sha256_hex;
use foldspace::structure::Chain;
use foldspace::text::{TextEncoder, TextModelFiles};

use crate::browser;
use crate::error::{PageError, PageResult};
use crate::model::{ModelWorker, Network, Runs};

/// Shipped weights: our own training run's export (TRAINING.md). The page names them by the
/// description `foldspace export` writes into the file (step, validation scores).
pub(crate) const DEFAULT_WEIGHTS: &str = "assets/weights/foldspace-score-f16.safetensors";
pub(crate) const DEFAULT_WEIGHTS_ORIGIN: &str = "shipped, f16";
/// Said of shipped weights whose file has no description (exports made before descriptions
/// existed, such as the early step-325 checkpoint shipped until 2026-12-06).
pub(crate) const UNDESCRIBED_SHIPPED: &str =
    "foldspace weights without a description (an export older than 2026-12-06); see TRAINING.md";

/// The tri-modal alignment model and the search bank (`foldspace align`, `foldspace bank`).
pub(crate) const ALIGN_DIR: &str = "assets/align";

/// The alignment model and the bank, on the page's device, and a stage-2 model's own score
/// network where the page's score networks run (the model worker on the CPU backend); without
/// one, structures go through the page's score network.
pub struct AlignAssets {
    pub(crate) search: SearchAssets,
    pub(crate) network: Option<Network>,
}

/// What the bank says about the current chain.
pub struct Similar {
    pub(crate) hits: Vec<(BankEntry, f32)>,
    /// Likely GO terms, transferred from the closest annotated proteins: (name, share).
    pub(crate) terms: Vec<(String, f32)>,
    /// Embedding into the shared space and searching, in all.
    pub(crate) ms: f64,
    /// The exact search over the bank alone.
    pub(crate) search_ms: f64,
}

/// The text model: all-MiniLM-L6-v2 as `foldspace export-text` writes it in int8 (shipped in
/// `assets/text/`, 23.4 MB; the PyPI wheel the native tools read is 83.5 MB and never served).
pub(crate) const TEXT_MODEL: &str = "assets/text/all-minilm-l6-v2-int8.safetensors";

/// A text search's answer.
pub struct TextHits {
    pub(crate) query: String,
    pub(crate) hits: Vec<(BankEntry, f32)>,
    /// Text encoder (CPU) + head, and the search alone.
    pub(crate) encode_ms: f64,
    pub(crate) search_ms: f64,
}

/// The text model ([`TEXT_MODEL`], checked against its SHA-256), on the CPU backend.
pub(crate) async fn load_text_model(
    progress: impl FnMut(u64, Option<u64>),
) -> PageResult<TextEncoder> {
    let bytes = fetch_checked(TEXT_MODEL, progress).await?;
    browser::yield_now().await;
    let files =
        TextModelFiles::from_exported(&bytes).map_err(|e| PageError::from(e).during(TEXT_MODEL))?;
    TextEncoder::new(&files, Compute::cpu()).map_err(|e| PageError::from(e).during(TEXT_MODEL))
}

/// Text → shared space → the 10 closest bank proteins.
pub(crate) async fn search_text(
    assets: &AlignAssets,
    encoder: &TextEncoder,
    query: String,
) -> PageResult<TextHits> {
    let started = browser::now_ms();
    let t = encoder.embed(&[query.as_str()]).await?;
    let v = t
        .vectors
        .first()
        .ok_or_else(|| PageError::refused("the text model returned no vector"))?;
    let q = assets.search.text_vector(v.as_slice()).await?;
    let encode_ms = browser::now_ms() - started;
    let started = browser::now_ms();
    let hits = assets.search.search(&q, 10)?;
    let search_ms = browser::now_ms() - started;
    Ok(TextHits {
        query,
        hits: hits
            .into_iter()
            .map(|(e, score)| (e.clone(), score))
            .collect(),
        encode_ms,
        search_ms,
    })
}

/// Fetch a file of the site, checked against `<url>.sha256` when the site has one.
pub(crate) async fn fetch_checked(
    url: &str,
    progress: impl FnMut(u64, Option<u64>),
) -> PageResult<Vec<u8>> {
    let bytes = browser::fetch_bytes(url, progress)
        .await?
        .ok_or_else(|| PageError::Missing(url.to_string()))?;
    if let Some(expected) = browser::fetch_text(&format!("{url}.sha256")).await? {
        let expected = expected
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let actual = sha256_hex(&bytes);
        if !expected.is_empty() && expected != actual {
            return Err(PageError::Checksum {
                url: url.to_string(),
                actual,
                expected,
            });
        }
    }
    Ok(bytes)
}

/// The alignment model and the bank from `assets/align/`, its own score network (if it has one)
/// loaded in `worker` when given. `progress` follows the bank's download (most of the bytes).
pub(crate) async fn load_align(
    compute: Compute,
    worker: Option<Rc<ModelWorker>>,
    progress: impl FnMut(u64, Option<u64>),
) -> PageResult<AlignAssets> {
    let manifest = fetch_checked(&format!("{ALIGN_DIR}/{MANIFEST_FILE}"), |_, _| {}).await?;
    let manifest = AlignManifest::from_json(&manifest)
        .map_err(|e| PageError::from(e).during(format!("{ALIGN_DIR}/{MANIFEST_FILE}")))?;
    let weights = fetch_checked(&format!("{ALIGN_DIR}/{WEIGHTS_FILE}"), |_, _| {}).await?;
    let bank = fetch_checked(&format!("{ALIGN_DIR}/{BANK_FILE}"), progress).await?;
    let network = match &manifest.structure_network {
        Some(file) => {
            let url = format!("{ALIGN_DIR}/{file}");
            let bytes = fetch_checked(&url, |_, _| {}).await?;
            let network = Network::load(bytes, &compute, worker.as_ref())
                .await
                .map_err(|e| e.during(url.clone()))?;
            manifest
                .check_structure_network(network.weights_sha256())
                .map_err(|e| PageError::from(e).during(url))?;
            Some(network)
        }
        None => None,
    };
    browser::yield_now().await;
    let search = SearchAssets::with_network_elsewhere(manifest, &weights, &bank, compute)
        .map_err(|e| PageError::from(e).during(ALIGN_DIR))?;
    Ok(AlignAssets { search, network })
}

/// A chain's vector in the shared space: its structure through the alignment model's own score
/// network (else `default`), pooled where that network runs, then the model's towers.
pub(crate) async fn protein_vector(
    assets: &AlignAssets,
    default: &Network,
    chain: &Chain,
    runs: &Runs,
) -> PageResult<Vec<f32>> {
    let network = assets.network.as_ref().unwrap_or(default).within(runs);
    let config = &assets.search.model.config;
    let input = network
        .structure_features(
            chain,
            config.level_of(network.default_level()),
            config.structure_windows,
        )
        .await?;
    Ok(assets
        .search
        .protein_vector_from_features(&chain.sequence, &input)
        .await?)
}

/// Embed a chain into the shared space and search the bank (the structure tower's run noted
/// in `runs`).
pub(crate) async fn similar(
    assets: &AlignAssets,
    network: &Network,
    chain: &Chain,
    runs: &Runs,
) -> PageResult<Similar> {
    let query = protein_vector(assets, network, chain, runs).await?;
    let started = browser::now_ms();
    let hits = assets.search.search(&query, 10)?;
    let terms = assets.search.likely_functions(&query, 5)?;
    let search_ms = browser::now_ms() - started;
    Ok(Similar {
        search_ms,
        hits: hits
            .into_iter()
            .map(|(e, score)| (e.clone(), score))
            .collect(),
        terms,
        ms: 0.0,
    })
}

/// What the page says about the weights it runs: their description (from the file) where they
/// have one, where they came from, and the start of their SHA-256.
pub(crate) fn weights_label(origin: &str, network: &Network) -> String {
    let sha: String = network.weights_sha256().chars().take(12).collect();
    match network.description() {
        Some(d) => format!("{d} — {origin}, sha256 {sha}…"),
        None if origin == DEFAULT_WEIGHTS_ORIGIN => {
            format!("{UNDESCRIBED_SHIPPED} — {origin}, sha256 {sha}…")
        }
        None => format!("{origin}, sha256 {sha}…"),
    }
}

/// Fetch weights, check them against `<url>.sha256` when the site has one, and load them (in
/// `worker` when given).
pub(crate) async fn load_weights(
    url: &str,
    compute: Compute,
    worker: Option<Rc<ModelWorker>>,
    progress: impl FnMut(u64, Option<u64>),
) -> PageResult<Network> {
    let bytes = fetch_checked(url, progress).await?;
    browser::yield_now().await;
    Network::load(bytes, &compute, worker.as_ref()).await
}
