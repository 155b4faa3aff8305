//! Cached structure-tower inputs: one JSON line per chain, `{"name": …, "v": [2C floats]}`,
//! appended as they are computed so that a long run can stop and resume.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use foldspace::align::structure::structure_features;
use foldspace::embed::Embedder;
use foldspace::structure::JsonChain;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Line {
    name: String,
    v: Vec<f32>,
}

/// Structure vectors by chain name.
pub(crate) struct StructureCache {
    path: PathBuf,
    /// The vectors read or computed so far.
    pub vectors: HashMap<String, Vec<f32>>,
}

impl StructureCache {
    /// Open (or start) a cache file; a truncated last line (an interrupted run) is dropped.
    pub fn open(path: &Path) -> Result<Self> {
        let mut vectors = HashMap::new();
        if path.is_file() {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                match serde_json::from_str::<Line>(&line) {
                    Ok(l) => {
                        vectors.insert(l.name, l.v);
                    }
                    Err(e) => eprintln!(
                        "warning: {} line {}: {e}; that chain will be computed again",
                        path.display(),
                        i + 1
                    ),
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            vectors,
        })
    }

    /// Compute the vectors of the chains not yet in the cache, appending each to the file.
    pub fn fill(&mut self, embedder: &Embedder, chains: &[&JsonChain]) -> Result<()> {
        let todo: Vec<&&JsonChain> = chains
            .iter()
            .filter(|c| !self.vectors.contains_key(&c.name))
            .collect();
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
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("structure vectors {bar:30} {pos}/{len} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = std::time::Instant::now();
        for (i, c) in todo.iter().enumerate() {
            if c.chain.len() < 2 {
                bail!("chain {} has {} residue(s)", c.name, c.chain.len());
            }
            let v = pollster::block_on(structure_features(embedder, &c.chain))
                .with_context(|| format!("chain {}", c.name))?;
            let line = serde_json::to_string(&Line {
                name: c.name.clone(),
                v: v.iter().map(|x| (x * 1e5).round() / 1e5).collect(),
            })?;
            writeln!(file, "{line}").with_context(|| format!("writing {}", self.path.display()))?;
            self.vectors.insert(c.name.clone(), v);
            bar.inc(1);
            if !bar.is_hidden() {
                continue;
            }
            if (i + 1) % 500 == 0 {
                eprintln!(
                    "structure vectors: {}/{} ({:.0} s)",
                    i + 1,
                    todo.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        bar.finish_and_clear();
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct TextLine {
    t: String,
    v: Vec<f32>,
}

/// Text-tower vectors (MiniLM) by text, cached in a JSON-lines file like [`StructureCache`].
pub(crate) struct TextCache {
    path: PathBuf,
    /// The vectors read or computed so far.
    pub vectors: HashMap<String, Vec<f32>>,
}

impl TextCache {
    /// Open (or start) a cache file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut vectors = HashMap::new();
        if path.is_file() {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            for line in std::io::BufReader::new(file).lines() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                if let Ok(l) = serde_json::from_str::<TextLine>(&line) {
                    vectors.insert(l.t, l.v);
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            vectors,
        })
    }

    /// Embed the texts not yet cached (in chunks, appending each chunk to the file).
    pub fn fill(&mut self, encoder: &foldspace::text::TextEncoder, texts: &[String]) -> Result<()> {
        let mut todo: Vec<&String> = texts
            .iter()
            .filter(|t| !self.vectors.contains_key(*t))
            .collect();
        todo.sort();
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
        let total = todo.len();
        for (k, chunk) in todo.chunks(512).enumerate() {
            let out = pollster::block_on(encoder.embed(chunk))?;
            for (t, v) in chunk.iter().zip(out.vectors) {
                let line = serde_json::to_string(&TextLine {
                    t: (*t).clone(),
                    v: v.iter().map(|x| (x * 1e5).round() / 1e5).collect(),
                })?;
                writeln!(file, "{line}")
                    .with_context(|| format!("writing {}", self.path.display()))?;
                self.vectors.insert((*t).clone(), v);
            }
            eprintln!(
                "text vectors: {}/{total} ({:.0} s)",
                ((k + 1) * 512).min(total),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }
}
