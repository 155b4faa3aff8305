//! Cached tower outputs: one JSON line per key, `{"k": …, "v": [floats]}`, appended as they are
//! computed so that a long run can stop and resume. Structure vectors are keyed by chain name,
//! text vectors by the text itself. A marker line `{"k": "#source:<sha256>", "v": []}` (the first
//! of a new file; appended to a file from before markers) names the weights the vectors came from; a cache of other weights is refused (a stage-2 model reads
//! structures through its own network, whose vectors must not mix with the shipped one's).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use foldspace::align::structure::{StructureWindows, structure_features_batch};
use foldspace::score::embed::Embedder;
use foldspace::structure::JsonChain;
use foldspace::text::TextEncoder;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Line {
    /// (Older files wrote `name` for chains and `t` for texts.)
    #[serde(alias = "name", alias = "t")]
    k: String,
    v: Vec<f32>,
}

/// The key prefix of the line naming the weights.
const SOURCE: &str = "#source:";

/// Vectors by key, backed by a JSON-lines file.
pub(crate) struct VectorCache {
    path: PathBuf,
    what: &'static str,
    /// The vectors read or computed so far.
    pub vectors: HashMap<String, Vec<f32>>,
}

/// Structure-tower inputs by chain name.
pub(crate) type StructureCache = VectorCache;
/// Text-tower outputs by text.
pub(crate) type TextCache = VectorCache;

impl VectorCache {
    /// Open (or start) a cache file of vectors computed by the weights `source` (a SHA-256); an
    /// unreadable line (an interrupted run) is computed again.
    pub fn open(path: &Path, what: &'static str, source: &str) -> Result<Self> {
        let mut vectors = HashMap::new();
        let mut sources: Vec<String> = Vec::new();
        if path.is_file() {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let mut bad = 0usize;
            for line in std::io::BufReader::new(file).lines() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                match serde_json::from_str::<Line>(&line) {
                    Ok(l) => match l.k.strip_prefix(SOURCE) {
                        Some(sha) => sources.push(sha.to_string()),
                        None => {
                            vectors.insert(l.k, l.v);
                        }
                    },
                    Err(_) => bad += 1,
                }
            }
            if bad > 0 {
                eprintln!(
                    "warning: {}: {bad} unreadable line(s) (an interrupted run?); those {what} will be computed again",
                    path.display()
                );
            }
        }
        if let Some(other) = sources.iter().find(|s| s.as_str() != source) {
            bail!(
                "{} holds {what} of the weights {other}, not of {source}: give another cache file",
                path.display()
            );
        }
        if sources.is_empty() {
            // A new file (or one from before the marker): say whose vectors it holds.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let line = serde_json::to_string(&Line {
                k: format!("{SOURCE}{source}"),
                v: Vec::new(),
            })?;
            writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            what,
            vectors,
        })
    }

    /// Compute the vectors of the keys not yet cached, `chunk` keys a call, appending each
    /// result to the file and reporting progress on stderr.
    pub fn fill_with(
        &mut self,
        keys: &[&str],
        chunk: usize,
        mut compute: impl FnMut(&[&str]) -> Result<Vec<Vec<f32>>>,
    ) -> Result<()> {
        let mut todo: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !self.vectors.contains_key(*k))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        let mut progress = Progress::new(self.what, todo.len());
        for part in todo.chunks(chunk.max(1)) {
            let vectors = compute(part)?;
            self.append(part, vectors)?;
            progress.done(part.len());
        }
        Ok(())
    }

    /// Add computed vectors (one per key) to the cache and its file.
    fn append(&mut self, keys: &[&str], vectors: Vec<Vec<f32>>) -> Result<()> {
        if vectors.len() != keys.len() {
            bail!("{} vectors for {} {}", vectors.len(), keys.len(), self.what);
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let mut text = String::new();
        for (k, v) in keys.iter().zip(&vectors) {
            text.push_str(&serde_json::to_string(&Line {
                k: k.to_string(),
                v: v.iter().map(|x| (x * 1e5).round() / 1e5).collect(),
            })?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))?;
        for (k, v) in keys.iter().zip(vectors) {
            self.vectors.insert(k.to_string(), v);
        }
        Ok(())
    }

    /// The cached vectors of some keys, in order; a missing key is an error naming it.
    pub fn get_all<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<Vec<&[f32]>> {
        keys.into_iter()
            .map(|k| {
                self.vectors
                    .get(k)
                    .map(Vec::as_slice)
                    .ok_or_else(|| anyhow::anyhow!("no cached {} for {k:?}", self.what))
            })
            .collect()
    }

    /// Structure vectors of chains at noise level `level` (the score network on the `windows` of
    /// each).
    pub fn fill_structures(
        &mut self,
        embedder: &Embedder,
        level: usize,
        windows: StructureWindows,
        chains: &[&JsonChain],
    ) -> Result<()> {
        fill_structure_levels(
            std::slice::from_mut(self),
            &[level],
            windows,
            embedder,
            chains,
        )
    }

    /// Text vectors (MiniLM), 512 texts a batch.
    pub fn fill_texts(&mut self, encoder: &TextEncoder, texts: &[String]) -> Result<()> {
        let keys: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.fill_with(&keys, 512, |part| {
            Ok(pollster::block_on(encoder.embed(part))?.vectors)
        })
    }
}

/// Chains a pass of [`fill_structure_levels`] (its vectors are appended to the files after each).
const STRUCTURE_CHUNK: usize = 64;
/// Windows of one length that go through the network together.
const STRUCTURE_BATCH: usize = 8;

/// Structure vectors of chains at several noise levels, `caches[k]` holding `levels[k]`: the
/// chains missing from any of them, in order, every level in the same pass of the network.
pub(crate) fn fill_structure_levels(
    caches: &mut [StructureCache],
    levels: &[usize],
    windows: StructureWindows,
    embedder: &Embedder,
    chains: &[&JsonChain],
) -> Result<()> {
    if caches.len() != levels.len() {
        bail!("{} caches for {} noise levels", caches.len(), levels.len());
    }
    let mut seen = std::collections::HashSet::new();
    let todo: Vec<&JsonChain> = chains
        .iter()
        .copied()
        .filter(|c| {
            caches
                .iter()
                .any(|cache| !cache.vectors.contains_key(&c.name))
        })
        .filter(|c| seen.insert(c.name.as_str()))
        .collect();
    for c in &todo {
        if c.chain.len() < 2 {
            bail!("chain {} has {} residue(s)", c.name, c.chain.len());
        }
    }
    let mut progress = Progress::new("structure vectors", todo.len());
    for part in todo.chunks(STRUCTURE_CHUNK) {
        let parts: Vec<&foldspace::structure::Chain> = part.iter().map(|c| &c.chain).collect();
        let by_level = pollster::block_on(structure_features_batch(
            embedder,
            &parts,
            levels,
            windows,
            STRUCTURE_BATCH,
        ))
        .with_context(|| {
            format!(
                "pooling the chains {} … {}",
                part.first().map_or("", |c| c.name.as_str()),
                part.last().map_or("", |c| c.name.as_str())
            )
        })?;
        for (cache, vectors) in caches.iter_mut().zip(by_level) {
            let (keys, vectors): (Vec<&str>, Vec<Vec<f32>>) = part
                .iter()
                .zip(vectors)
                .filter(|(c, _)| !cache.vectors.contains_key(&c.name))
                .map(|(c, v)| (c.name.as_str(), v))
                .unzip();
            cache.append(&keys, vectors)?;
        }
        progress.done(part.len());
    }
    Ok(())
}

/// Progress of a long fill on stderr: every 500 items and at the end.
struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    reported: usize,
    started: std::time::Instant,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Self {
        Self {
            what,
            total,
            done: 0,
            reported: 0,
            started: std::time::Instant::now(),
        }
    }

    fn done(&mut self, n: usize) {
        self.done += n;
        if self.done - self.reported >= 500 || self.done == self.total {
            self.reported = self.done;
            eprintln!(
                "{}: {}/{} ({:.0} s)",
                self.what,
                self.done,
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
