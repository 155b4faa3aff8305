//! The search bank: proteins' vectors in the shared space (f16) with their metadata, and the
//! vectors of GO molecular-function names for "likely function"; exact top-k by cosine.
//!
//! File format: safetensors (written deterministically) with the tensors `proteins` `[N, D]` and
//! `terms` `[T, D]` (F16), and in its metadata `entries` and `terms` (JSON arrays) and `info`.

use std::collections::BTreeMap;

use half::f16;
use serde::{Deserialize, Serialize};

use crate::io::serialize_safetensors;

/// Why a bank could not be written or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BankError {
    /// Not a bank file, or an inconsistent one.
    #[error("not a usable search bank: {0}")]
    Format(String),
    /// A query of the wrong width.
    #[error("the query has {got} values; the bank's vectors have {want}")]
    Width { got: usize, want: usize },
}

/// One protein of the bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankEntry {
    /// Chain segment name (`1A0C_D_1`).
    pub name: String,
    /// PDB id (`1A0C`).
    pub pdb_id: String,
    /// Chain id.
    pub chain: String,
    /// Residues.
    pub length: usize,
    /// Names of its GO molecular-function terms (may be empty).
    pub go: Vec<String>,
    /// Data split it came from.
    #[serde(default)]
    pub split: String,
}

/// One GO term that "likely function" can name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermEntry {
    /// `GO:0003677`.
    pub id: String,
    /// `DNA binding`.
    pub name: String,
}

/// A loaded bank.
#[derive(Debug, Clone, PartialEq)]
pub struct Bank {
    /// Vector width D.
    pub dim: usize,
    /// `[N, D]` unit rows (decoded from f16).
    pub vectors: Vec<f32>,
    /// Metadata of the N proteins.
    pub entries: Vec<BankEntry>,
    /// `[T, D]` unit rows.
    pub term_vectors: Vec<f32>,
    /// The T terms.
    pub terms: Vec<TermEntry>,
    /// Free-form provenance (model, weights, counts).
    pub info: BTreeMap<String, String>,
}

/// A hit: row index and cosine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

/// Unit-length copy of a vector (zero stays zero).
pub fn normalise(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

/// The protein vector of a chain: the normalised weighted sum of its sequence and structure
/// vectors, `normalise(sequence + structure_weight · structure)` (the model's
/// `structure_weight`).
pub fn fuse(sequence: &[f32], structure: &[f32], structure_weight: f32) -> Vec<f32> {
    let s: Vec<f32> = sequence
        .iter()
        .zip(structure)
        .map(|(a, b)| a + structure_weight * b)
        .collect();
    normalise(&s)
}

/// Neighbours whose terms [`Bank::transferred_terms`] transfers by default: chosen among
/// 3 / 10 / 25 / 50 on the val split and confirmed on the held-out `ppi_test_like` chains
/// (TRAINING.md).
pub const TRANSFER_NEIGHBOURS: usize = 25;

/// Annotation transfer from neighbours (kNN, as BLAST-style annotation transfer but in the
/// shared space): a term's score is the similarity-weighted share of the neighbours that carry
/// it, `Σ_j s_j [t ∈ T_j] / Σ_j s_j` with `s_j = max(similarity_j, 0)`. Neighbours without
/// terms should be left out by the caller. Best first (ties by term).
pub fn transfer<'a, T>(neighbours: impl IntoIterator<Item = (f32, T)>) -> Vec<(String, f32)>
where
    T: IntoIterator<Item = &'a String>,
{
    let mut scores: BTreeMap<&'a String, f32> = BTreeMap::new();
    let mut total = 0.0f32;
    for (similarity, terms) in neighbours {
        let s = similarity.max(0.0);
        total += s;
        for t in terms {
            *scores.entry(t).or_default() += s;
        }
    }
    let mut out: Vec<(String, f32)> = scores
        .into_iter()
        .map(|(t, s)| (t.clone(), if total > 0.0 { s / total } else { 0.0 }))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// The `k` rows of `matrix` (`[N, dim]`) with the largest dot product with `query`, best first
/// (ties: lower index first).
pub fn top_k(matrix: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<Hit> {
    if dim == 0 || k == 0 {
        return Vec::new();
    }
    let mut hits: Vec<Hit> = matrix
        .chunks_exact(dim)
        .enumerate()
        .map(|(index, row)| Hit {
            index,
            score: row.iter().zip(query).map(|(a, b)| a * b).sum(),
        })
        .collect();
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index));
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_by(order);
    hits
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}

impl Bank {
    /// Check shapes and vector widths.
    pub fn validate(&self) -> Result<(), BankError> {
        if self.dim == 0 {
            return Err(BankError::Format("vector width 0".into()));
        }
        if self.vectors.len() != self.entries.len() * self.dim {
            return Err(BankError::Format(format!(
                "{} protein values for {} entries of width {}",
                self.vectors.len(),
                self.entries.len(),
                self.dim
            )));
        }
        if self.term_vectors.len() != self.terms.len() * self.dim {
            return Err(BankError::Format(format!(
                "{} term values for {} terms of width {}",
                self.term_vectors.len(),
                self.terms.len(),
                self.dim
            )));
        }
        Ok(())
    }

    /// The bank as bytes (see the module documentation).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BankError> {
        self.validate()?;
        let json = |v: &dyn erased::Json| v.json().map_err(BankError::Format);
        let mut metadata = BTreeMap::new();
        metadata.insert("entries".to_string(), json(&self.entries)?);
        metadata.insert("terms".to_string(), json(&self.terms)?);
        metadata.insert("info".to_string(), json(&self.info)?);
        let entries = vec![
            (
                "proteins".to_string(),
                "F16",
                vec![self.entries.len(), self.dim],
                f16_bytes(&self.vectors),
            ),
            (
                "terms".to_string(),
                "F16",
                vec![self.terms.len(), self.dim],
                f16_bytes(&self.term_vectors),
            ),
        ];
        serialize_safetensors(&entries, &metadata).map_err(BankError::Format)
    }

    /// Read a bank written by [`Bank::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BankError> {
        let bad = |m: String| BankError::Format(m);
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| bad("no metadata".into()))?;
        let field = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("no `{k}` in the metadata")))
        };
        let entries: Vec<BankEntry> =
            serde_json::from_str(field("entries")?).map_err(|e| bad(format!("entries: {e}")))?;
        let terms: Vec<TermEntry> =
            serde_json::from_str(field("terms")?).map_err(|e| bad(format!("terms: {e}")))?;
        let info: BTreeMap<String, String> =
            serde_json::from_str(field("info")?).map_err(|e| bad(format!("info: {e}")))?;
        let tensors = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>), BankError> {
            let t = tensors
                .tensor(name)
                .map_err(|_| bad(format!("no tensor `{name}`")))?;
            if t.dtype() != safetensors::Dtype::F16 || t.shape().len() != 2 {
                return Err(bad(format!("`{name}` is not a 2-D f16 tensor")));
            }
            let values = t
                .data()
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            Ok((t.shape().to_vec(), values))
        };
        let (shape, vectors) = read("proteins")?;
        let (term_shape, term_vectors) = read("terms")?;
        if term_shape[1] != shape[1] && !terms.is_empty() {
            return Err(bad("proteins and terms have different widths".into()));
        }
        let bank = Self {
            dim: shape[1],
            vectors,
            entries,
            term_vectors,
            terms,
            info,
        };
        bank.validate()?;
        Ok(bank)
    }

    fn check(&self, query: &[f32]) -> Result<(), BankError> {
        if query.len() != self.dim {
            return Err(BankError::Width {
                got: query.len(),
                want: self.dim,
            });
        }
        Ok(())
    }

    /// The `k` proteins closest to a unit query vector.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, BankError> {
        self.check(query)?;
        Ok(top_k(&self.vectors, self.dim, query, k))
    }

    /// Likely GO terms by transfer from the `neighbours` closest annotated proteins (see
    /// [`transfer`]): (term name, score), at most `k`, best first.
    pub fn transferred_terms(
        &self,
        query: &[f32],
        neighbours: usize,
        k: usize,
    ) -> Result<Vec<(String, f32)>, BankError> {
        self.check(query)?;
        // Most banks annotate a good share of their entries: 20 per neighbour is plenty.
        let look = neighbours.saturating_mul(20).min(self.entries.len());
        let annotated: Vec<(f32, &Vec<String>)> = top_k(&self.vectors, self.dim, query, look)
            .into_iter()
            .filter_map(|h| {
                let go = &self.entries.get(h.index)?.go;
                (!go.is_empty()).then_some((h.score, go))
            })
            .take(neighbours)
            .collect();
        let mut terms = transfer(annotated);
        terms.truncate(k);
        Ok(terms)
    }

    /// The `k` GO terms whose names are closest to a unit protein vector.
    pub fn likely_terms(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, BankError> {
        self.check(query)?;
        Ok(top_k(&self.term_vectors, self.dim, query, k))
    }
}

mod erased {
    /// Serialise to a JSON string (a helper so that one closure serves several types).
    pub trait Json {
        fn json(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, String> {
            serde_json::to_string(self).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_weights_terms_by_similarity() {
        let (a, b, c) = (
            "binding".to_string(),
            "kinase".to_string(),
            "ATP".to_string(),
        );
        let t = transfer(vec![
            (0.9, vec![&a, &b]),
            (0.6, vec![&a]),
            (-0.5, vec![&c]), // negative similarity counts as 0
        ]);
        let score = |n: &str| t.iter().find(|(x, _)| x == n).map(|x| x.1);
        assert_eq!(t[0].0, "binding");
        assert!((score("binding").unwrap_or(0.0) - 1.0).abs() < 1e-6);
        assert!((score("kinase").unwrap_or(0.0) - 0.6).abs() < 1e-6);
        assert_eq!(score("ATP"), Some(0.0));
        assert!(transfer(Vec::<(f32, Vec<&String>)>::new()).is_empty());
    }

    fn bank() -> Bank {
        let entry = |n: &str| BankEntry {
            name: n.into(),
            pdb_id: n[..4].into(),
            chain: "A".into(),
            length: 10,
            go: vec!["DNA binding".into()],
            split: "val".into(),
        };
        Bank {
            dim: 2,
            vectors: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
            entries: vec![entry("1AAA_A_1"), entry("2BBB_A_1"), entry("3CCC_A_1")],
            term_vectors: vec![0.0, 1.0],
            terms: vec![TermEntry {
                id: "GO:0003677".into(),
                name: "DNA binding".into(),
            }],
            info: BTreeMap::from([("model".to_string(), "test".to_string())]),
        }
    }

    #[test]
    fn round_trip_and_ranking() {
        let b = bank();
        let bytes = b.to_bytes().expect("writes");
        assert_eq!(bytes, b.to_bytes().expect("writes"), "deterministic");
        let back = Bank::from_bytes(&bytes).expect("reads");
        assert_eq!(back.entries, b.entries);
        assert_eq!(back.info, b.info);
        let hits = back.search(&[0.0, 1.0], 2).expect("searches");
        assert_eq!(hits.iter().map(|h| h.index).collect::<Vec<_>>(), vec![1, 2]);
        assert!((hits[1].score - 0.8).abs() < 1e-3);
        assert_eq!(back.search(&[1.0, 0.0], 10).expect("searches").len(), 3);
        assert!(matches!(
            back.search(&[1.0], 1),
            Err(BankError::Width { got: 1, want: 2 })
        ));
        assert_eq!(
            back.likely_terms(&[0.0, 1.0], 5).expect("terms")[0].index,
            0
        );
    }

    #[test]
    fn bad_bytes_are_named() {
        assert!(Bank::from_bytes(b"").is_err());
        assert!(Bank::from_bytes(b"not a bank at all").is_err());
        let mut b = bank();
        b.vectors.pop();
        assert!(b.to_bytes().is_err());
    }

    #[test]
    fn top_k_and_fuse() {
        let m = [0.1, 0.5, 0.5, 0.3];
        let hits = top_k(&m, 1, &[1.0], 3);
        assert_eq!(
            hits.iter().map(|h| h.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let f = fuse(&[1.0, 0.0], &[0.0, 1.0], 1.0);
        assert!((f[0] - f[1]).abs() < 1e-6 && (f[0] * f[0] + f[1] * f[1] - 1.0).abs() < 1e-6);
        let f = fuse(&[1.0, 0.0], &[0.0, 1.0], 0.5);
        assert!((f[0] - 2.0 * f[1]).abs() < 1e-6 && (f[0] * f[0] + f[1] * f[1] - 1.0).abs() < 1e-6);
        assert_eq!(fuse(&[0.6, 0.8], &[1.0, 0.0], 0.0), vec![0.6, 0.8]);
    }
}
