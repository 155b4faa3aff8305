//! Queries into the shared space, the one implementation both shells use: the alignment assets
//! loaded and checked together ([`SearchAssets`]), a protein's query vector (structure tower →
//! its head, sequence tower → its head, fused), a text's, and the search and "likely function"
//! answers on the bank.

use super::model::{AlignError, AlignManifest, AlignTrained};
use super::search::{Bank, BankEntry, BankError, Hit, TRANSFER_NEIGHBOURS, fuse};
use super::structure::structure_features;
use crate::compute::Compute;
use crate::score::embed::{EmbedError, Embedder};
use crate::score::weights::WeightsError;
use crate::structure::Chain;

/// The manifest's file name in an alignment model's folder.
pub const MANIFEST_FILE: &str = "align.json";
/// The alignment model's weights beside the manifest.
pub const WEIGHTS_FILE: &str = "align.safetensors";
/// The search bank beside the manifest.
pub const BANK_FILE: &str = "bank.safetensors";

/// Why a query could not be answered, or the assets could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The alignment model failed.
    #[error(transparent)]
    Align(#[from] AlignError),
    /// The score network failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The bank failed.
    #[error(transparent)]
    Bank(#[from] BankError),
    /// The tuned score network could not be read.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The files do not belong together.
    #[error("{0}")]
    Mismatch(String),
}

/// One protein in the shared space: each tower's vector and their fusion, the protein's query.
#[derive(Debug, Clone, PartialEq)]
pub struct ProteinVectors {
    pub sequence: Vec<f32>,
    pub structure: Vec<f32>,
    pub fused: Vec<f32>,
}

impl AlignTrained {
    /// Proteins in the shared space from their sequences and structure-tower inputs (one each).
    pub async fn embed_proteins(
        &self,
        sequences: &[&str],
        structure_inputs: &[&[f32]],
        device: &burn::prelude::Device,
    ) -> Result<Vec<ProteinVectors>, AlignError> {
        if sequences.len() != structure_inputs.len() {
            return Err(AlignError::Data(format!(
                "{} sequences but {} structure inputs",
                sequences.len(),
                structure_inputs.len()
            )));
        }
        let sequence = self.embed_sequences(sequences, device).await?;
        let structure = self.embed_structures(structure_inputs, device).await?;
        Ok(sequence
            .into_iter()
            .zip(structure)
            .map(|(sequence, structure)| ProteinVectors {
                fused: fuse(&sequence, &structure, self.config.structure_weight),
                sequence,
                structure,
            })
            .collect())
    }
}

/// The alignment model, its bank and (for a stage-2 model) its tuned score network, checked to
/// belong together; everything search and "likely function" need.
#[derive(Debug)]
pub struct SearchAssets {
    pub manifest: AlignManifest,
    pub model: AlignTrained,
    pub bank: Bank,
    /// The stage-2 model's own score network (`manifest.structure_network`), if it has one.
    pub structure: Option<Embedder>,
    /// The tuned network is loaded elsewhere ([`Self::with_network_elsewhere`]).
    network_elsewhere: bool,
    compute: Compute,
}

impl AlignManifest {
    /// The manifest from its JSON (`align.json`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, AlignError> {
        serde_json::from_slice(bytes)
            .map_err(|e| AlignError::Weights(format!("not an alignment manifest ({e})")))
    }

    /// Whether a score network (by its weights' SHA-256) is the one the model was trained to
    /// read structures through ([`Self::structure_network`]).
    pub fn check_structure_network(&self, sha256: &str) -> Result<(), QueryError> {
        if sha256 == self.structure_weights_sha256 {
            return Ok(());
        }
        Err(QueryError::Mismatch(format!(
            "{} is not the structure network the alignment model was trained with",
            self.structure_network
                .as_deref()
                .unwrap_or("the score network")
        )))
    }
}

impl SearchAssets {
    /// Load the model (`align.safetensors`), the bank and, when the manifest names one, the
    /// tuned score network (`tuned`: that file's bytes), on `compute`'s device. The tuned
    /// network must be the one the manifest names by SHA-256, and the bank's vectors must live
    /// in the model's space.
    pub fn new(
        manifest: AlignManifest,
        weights: &[u8],
        bank: &[u8],
        tuned: Option<&[u8]>,
        compute: Compute,
    ) -> Result<Self, QueryError> {
        let structure = match (&manifest.structure_network, tuned) {
            (Some(_), Some(bytes)) => {
                let network = Embedder::from_bytes(bytes, compute.clone())?;
                manifest.check_structure_network(&network.weights_sha256)?;
                Some(network)
            }
            (Some(file), None) => {
                return Err(QueryError::Mismatch(format!(
                    "the alignment model reads structures through its own network {file}, which was not given"
                )));
            }
            (None, _) => None,
        };
        Self::assemble(manifest, weights, bank, structure, false, compute)
    }

    /// As [`Self::new`], with the tuned score network (when the manifest names one) loaded and
    /// run elsewhere (the page runs score networks in a worker): the caller checks it with
    /// [`AlignManifest::check_structure_network`], pools its features and asks
    /// [`Self::protein_vector_from_features`]; [`Self::protein_vector`] then refuses.
    pub fn with_network_elsewhere(
        manifest: AlignManifest,
        weights: &[u8],
        bank: &[u8],
        compute: Compute,
    ) -> Result<Self, QueryError> {
        let elsewhere = manifest.structure_network.is_some();
        Self::assemble(manifest, weights, bank, None, elsewhere, compute)
    }

    fn assemble(
        manifest: AlignManifest,
        weights: &[u8],
        bank: &[u8],
        structure: Option<Embedder>,
        network_elsewhere: bool,
        compute: Compute,
    ) -> Result<Self, QueryError> {
        let model = AlignTrained::from_parts(&manifest, weights, &compute.device)?;
        let bank = Bank::from_bytes(bank)?;
        if bank.dim != model.config.dim {
            return Err(QueryError::Mismatch(format!(
                "the bank's vectors have {} dimensions, the model's space {}",
                bank.dim, model.config.dim
            )));
        }
        Ok(Self {
            manifest,
            model,
            bank,
            structure,
            network_elsewhere,
            compute,
        })
    }

    /// The score network structure vectors come from: the model's tuned one, else `default`.
    pub fn structure_network<'a>(&'a self, default: &'a Embedder) -> &'a Embedder {
        self.structure.as_ref().unwrap_or(default)
    }

    /// A chain's query vector: its structure (through [`Self::structure_network`]) and its
    /// sequence, each through its tower and head, fused.
    pub async fn protein_vector(
        &self,
        default_network: &Embedder,
        chain: &Chain,
    ) -> Result<Vec<f32>, QueryError> {
        if self.network_elsewhere && self.structure.is_none() {
            return Err(QueryError::Mismatch(
                "the alignment model's own structure network was loaded elsewhere: pool its features there (protein_vector_from_features)".into(),
            ));
        }
        let network = self.structure_network(default_network);
        let config = &self.model.config;
        let input = structure_features(
            network,
            chain,
            config.level(network),
            config.structure_windows,
        )
        .await?;
        self.protein_vector_from_features(&chain.sequence, &input)
            .await
    }

    /// A chain's query vector from its sequence and its structure tower's input (pooled by
    /// [`structure_features`] through [`Self::structure_network`] at
    /// [`super::model::AlignConfig::level_of`] with the model's `structure_windows`).
    pub async fn protein_vector_from_features(
        &self,
        sequence: &str,
        structure_input: &[f32],
    ) -> Result<Vec<f32>, QueryError> {
        let mut vectors = self
            .model
            .embed_proteins(&[sequence], &[structure_input], &self.compute.device)
            .await?;
        vectors
            .pop()
            .map(|v| v.fused)
            .ok_or_else(|| QueryError::Mismatch("the model returned no vector".into()))
    }

    /// A text's query vector from its MiniLM vector (the text tower's output).
    pub async fn text_vector(&self, minilm: &[f32]) -> Result<Vec<f32>, QueryError> {
        self.model
            .embed_texts(&[minilm], &self.compute.device)
            .await?
            .pop()
            .ok_or_else(|| QueryError::Mismatch("the model returned no vector".into()))
    }

    /// The `k` bank proteins nearest to a query vector, with their cosine.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(&BankEntry, f32)>, QueryError> {
        let hits: Vec<Hit> = self.bank.search(query, k)?;
        Ok(hits
            .iter()
            .filter_map(|h| self.bank.entries.get(h.index).map(|e| (e, h.score)))
            .collect())
    }

    /// The `k` GO molecular-function terms most likely for a protein's query vector, transferred
    /// from its [`TRANSFER_NEIGHBOURS`] nearest bank proteins.
    pub fn likely_functions(
        &self,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(String, f32)>, QueryError> {
        Ok(self.bank.transferred_terms(query, TRANSFER_NEIGHBOURS, k)?)
    }
}
