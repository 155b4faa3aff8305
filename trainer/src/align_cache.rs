//! Cached tower outputs: one JSON line per key, `{"k": …, "v": [floats]}`, appended as they are
//! computed so that a long run can stop and resume. Structure vectors are keyed by chain name,
//! text vectors by the text itself. A marker line `{"k": "#source:<sha256>", "v": []}` (the first
//! of a new file; appended to a file from before markers) names the weights the vectors came from; a cache of other weights is refused (a stage-2 model reads
//! structures through its own network, whose vectors must not mix with the shipped one's).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use foldspace::align::structure::structure_features;
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
        if todo.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let started = std::time::Instant::now();
        let (total, mut done, mut reported) = (todo.len(), 0usize, 0usize);
        for part in todo.chunks(chunk.max(1)) {
            let vectors = compute(part)?;
            if vectors.len() != part.len() {
                bail!("{} vectors for {} {}", vectors.len(), part.len(), self.what);
            }
            for (k, v) in part.iter().zip(vectors) {
                let line = serde_json::to_string(&Line {
                    k: k.to_string(),
                    v: v.iter().map(|x| (x * 1e5).round() / 1e5).collect(),
                })?;
                writeln!(file, "{line}")
                    .with_context(|| format!("writing {}", self.path.display()))?;
                self.vectors.insert(k.to_string(), v);
            }
            done += part.len();
            if done - reported >= 500 || done == total {
                reported = done;
                eprintln!(
                    "{}: {done}/{total} ({:.0} s)",
                    self.what,
                    started.elapsed().as_secs_f64()
                );
            }
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

    /// Structure vectors of chains (the score network on each central window).
    pub fn fill_structures(&mut self, embedder: &Embedder, chains: &[&JsonChain]) -> Result<()> {
        let by_name: HashMap<&str, &JsonChain> =
            chains.iter().map(|c| (c.name.as_str(), *c)).collect();
        let names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        self.fill_with(&names, 1, |part| {
            part.iter()
                .map(|name| {
                    let c = by_name[name];
                    if c.chain.len() < 2 {
                        bail!("chain {name} has {} residue(s)", c.chain.len());
                    }
                    pollster::block_on(structure_features(embedder, &c.chain))
                        .with_context(|| format!("chain {name}"))
                })
                .collect()
        })
    }

    /// Text vectors (MiniLM), 512 texts a batch.
    pub fn fill_texts(&mut self, encoder: &TextEncoder, texts: &[String]) -> Result<()> {
        let keys: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.fill_with(&keys, 512, |part| {
            Ok(pollster::block_on(encoder.embed(part))?.vectors)
        })
    }
}
