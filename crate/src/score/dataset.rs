//! The chains the score model trains and validates on, read from disk: `chains.jsonl(.gz)` files
//! (their `split` field) and directories of PDB / mmCIF files, through the chain filter
//! ([`ChainFilter`]). Native only (files and threads).

use std::path::{Path, PathBuf};

use crate::io::file_stem;
use crate::score::data::{ChainFilter, FilterReport, TrainChain, mix};
use crate::structure::{ReadError, ReadOptions, read_chains_jsonl, read_structure};

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or directory could not be read.
    #[error("{what}: {source}")]
    Io {
        /// What was being read (with its path).
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A chains file is not valid JSON lines of chains.
    #[error("reading {path}: {source}")]
    Chains {
        /// The file.
        path: String,
        /// The cause.
        source: ReadError,
    },
    /// A directory holds no structure file.
    #[error("{0} holds no .pdb/.ent/.cif/.mmcif(.gz) files")]
    NoStructures(String),
}

/// Where training and validation chains come from.
#[derive(Debug, Default)]
pub struct Dataset {
    /// Training chains after filtering.
    pub train: Vec<TrainChain>,
    /// Validation chains after filtering.
    pub val: Vec<TrainChain>,
    /// What the filter did.
    pub report: FilterReport,
    /// Chains set aside (e.g. `ppi_test_like`).
    pub excluded: usize,
    /// Structure files that could not be read, with why (they are left out).
    pub skipped: Vec<(String, String)>,
}

/// Read `chains.jsonl(.gz)` files (their `split` field: train / val; anything else, such as
/// `ppi_test_like`, is left out) and directories of PDB / mmCIF files (every protein chain of the
/// first model; 5% of chains, chosen by a hash of their name, go to validation).
pub fn load_dataset(sources: &[PathBuf], filter: &ChainFilter) -> Result<Dataset, DatasetError> {
    let mut data = Dataset::default();
    for source in sources {
        if source.is_dir() {
            load_directory(source, filter, &mut data)?;
        } else {
            let bytes = std::fs::read(source).map_err(|e| DatasetError::Io {
                what: format!("reading {}", source.display()),
                source: e,
            })?;
            let chains = read_chains_jsonl(&bytes, 8 << 30).map_err(|e| DatasetError::Chains {
                path: source.display().to_string(),
                source: e,
            })?;
            for c in chains {
                let target = match c.split.as_str() {
                    "train" => &mut data.train,
                    "val" => &mut data.val,
                    _ => {
                        data.excluded += 1;
                        continue;
                    }
                };
                let chain = TrainChain {
                    name: c.name,
                    sequence: c.chain.sequence,
                    ca: c.chain.ca,
                };
                target.extend(filter.apply(chain, &mut data.report));
            }
        }
    }
    Ok(data)
}

/// Whether a file name looks like a structure file (PDB or mmCIF, maybe gzipped).
pub fn is_structure_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".pdb", ".ent", ".cif", ".mmcif"]
        .iter()
        .any(|e| name.ends_with(e))
}

fn load_directory(
    dir: &Path,
    filter: &ChainFilter,
    data: &mut Dataset,
) -> Result<(), DatasetError> {
    let listing = |d: &Path, e| DatasetError::Io {
        what: format!("listing {}", d.display()),
        source: e,
    };
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| listing(&d, e))? {
            let path = entry.map_err(|e| listing(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_structure_file(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::NoStructures(dir.display().to_string()));
    }
    // Parse on all cores; the order of the result does not depend on the threads.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = files.len().div_ceil(threads);
    type FileChains = (String, Result<Vec<TrainChain>, String>);
    let parsed: Vec<Vec<FileChains>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|f| (f.display().to_string(), read_file_chains(f)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A parsing thread that panicked read none of its files: say so for each.
        handles
            .into_iter()
            .zip(files.chunks(chunk))
            .map(|(h, part)| {
                h.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|f| {
                            (
                                f.display().to_string(),
                                Err("its parsing thread failed".into()),
                            )
                        })
                        .collect()
                })
            })
            .collect()
    });
    for (file, result) in parsed.into_iter().flatten() {
        match result {
            Ok(chains) => {
                for chain in chains {
                    let to_val = mix(&chain.name.bytes().map(u64::from).collect::<Vec<_>>())
                        .is_multiple_of(20);
                    let pieces = filter.apply(chain, &mut data.report);
                    if to_val {
                        data.val.extend(pieces);
                    } else {
                        data.train.extend(pieces);
                    }
                }
            }
            Err(e) => data.skipped.push((file, e)),
        }
    }
    Ok(())
}

fn read_file_chains(path: &Path) -> Result<Vec<TrainChain>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str());
    let parsed =
        read_structure(&bytes, name, &ReadOptions::default()).map_err(|e| e.to_string())?;
    let stem = file_stem(path);
    let model = parsed
        .structure
        .models
        .first()
        .ok_or_else(|| "no model".to_string())?;
    Ok(model
        .chains
        .iter()
        .map(|c| TrainChain {
            name: format!("{stem}:{}", c.id),
            sequence: c.sequence.clone(),
            ca: c.ca.clone(),
        })
        .collect())
}
