//! The tri-modal model: a sequence encoder of our own (dilated 1D CNN), and for each modality a
//! 2-layer MLP projection head into one shared, L2-normalised space.
//!
//! The structure tower (the frozen score network, [`super::structure`]) and the text tower (the
//! frozen MiniLM, [`crate::text`]) are computed before; their heads take their outputs.

use burn::module::Param;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig, PaddingConfig1d,
};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::gelu;
use serde::{Deserialize, Serialize};

use super::structure::StructureWindows;
use crate::compute::{ComputeError, read_f32};

/// Sequence tokens: 0 padding, 1–20 the standard amino acids, 21 anything else, 22 masked.
pub const SEQUENCE_VOCAB: usize = 23;
/// The masked-residue token.
pub const MASK_TOKEN: i64 = 22;
const AMINO_ACIDS: &[u8; 20] = b"ACDEFGHIKLMNPQRSTVWY";

/// Token of one residue letter.
pub fn residue_token(c: u8) -> i64 {
    match AMINO_ACIDS
        .iter()
        .position(|&a| a == c.to_ascii_uppercase())
    {
        Some(i) => i as i64 + 1,
        None => 21,
    }
}

/// Tokens of the window `start..start + len` of a sequence.
pub fn sequence_tokens(sequence: &str, start: usize, len: usize) -> Vec<i64> {
    sequence
        .bytes()
        .skip(start)
        .take(len)
        .map(residue_token)
        .collect()
}

/// Sizes of the model (stored with the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignConfig {
    /// Shared space width.
    pub dim: usize,
    /// Hidden width of the projection heads.
    pub head_hidden: usize,
    /// Residue embedding width of the sequence encoder.
    pub sequence_embedding: usize,
    /// Channels of the sequence encoder.
    pub sequence_channels: usize,
    /// Kernel width of its convolutions.
    pub kernel: usize,
    /// Dilations of its residual convolutions.
    pub dilations: Vec<usize>,
    /// Longest sequence window it reads (longer sequences: a window; see `sequence_window`).
    pub max_sequence: usize,
    /// Structure tower output width (2 × the score network's channels).
    pub structure_width: usize,
    /// Text tower output width (MiniLM: 384).
    pub text_width: usize,
    /// Dropout in the heads.
    pub dropout: f64,
    /// Initial temperature of the contrastive losses.
    pub temperature: f64,
    /// Weight of the structure vector in a protein's vector (the sequence vector's is 1): see
    /// [`super::search::fuse`]. Not used in training; chosen on the val split (TRAINING.md).
    #[serde(default = "one")]
    pub structure_weight: f32,
    /// Noise level at which the frozen score network's residue embeddings are taken for the
    /// structure tower (chosen on the val split, TRAINING.md). `None` (models from before the
    /// level was chosen): the network's smallest σ. See [`AlignConfig::level`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_level: Option<usize>,
    /// Which residues of a chain the structure tower reads (one central window, or the whole
    /// chain in windows; chosen on the val split, TRAINING.md). Models without it: central.
    #[serde(default, skip_serializing_if = "StructureWindows::is_central")]
    pub structure_windows: StructureWindows,
}

fn one() -> f32 {
    1.0
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            dim: 256,
            head_hidden: 512,
            sequence_embedding: 32,
            sequence_channels: 96,
            kernel: 5,
            dilations: vec![2, 4, 8],
            max_sequence: 256,
            structure_width: 128,
            text_width: 384,
            dropout: 0.1,
            temperature: 0.07,
            structure_weight: 1.0,
            structure_level: None,
            structure_windows: StructureWindows::Central,
        }
    }
}

/// The central window of a sequence the model reads (inference).
pub fn sequence_window(len: usize, max: usize) -> (usize, usize) {
    let w = len.min(max);
    ((len - w) / 2, w)
}

/// Two linear layers with GELU between, after a LayerNorm of the input; output L2-normalised.
#[derive(Module, Debug)]
pub struct Projection {
    norm: LayerNorm,
    first: Linear,
    second: Linear,
    dropout: Dropout,
}

impl Projection {
    fn new(input: usize, hidden: usize, output: usize, dropout: f64, device: &Device) -> Self {
        Self {
            norm: LayerNormConfig::new(input).init(device),
            first: LinearConfig::new(input, hidden).init(device),
            second: LinearConfig::new(hidden, output).init(device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// `[B, input]` → `[B, dim]`, unit rows.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self
            .dropout
            .forward(gelu(self.first.forward(self.norm.forward(x))));
        l2_normalise(self.second.forward(h))
    }
}

/// Rows divided by their norm.
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8);
    x / norm
}

/// The sequence encoder: residue embedding, a convolution, residual dilated convolutions, then
/// the masked mean and max over residues.
#[derive(Module, Debug)]
pub struct SequenceEncoder {
    embedding: Embedding,
    input: Conv1d,
    blocks: Vec<Conv1d>,
}

impl SequenceEncoder {
    fn new(c: &AlignConfig, device: &Device) -> Self {
        let pad =
            |d: usize| PaddingConfig1d::Explicit(d * (c.kernel - 1) / 2, d * (c.kernel - 1) / 2);
        Self {
            embedding: EmbeddingConfig::new(SEQUENCE_VOCAB, c.sequence_embedding).init(device),
            input: Conv1dConfig::new(c.sequence_embedding, c.sequence_channels, c.kernel)
                .with_padding(pad(1))
                .init(device),
            blocks: c
                .dilations
                .iter()
                .map(|&d| {
                    Conv1dConfig::new(c.sequence_channels, c.sequence_channels, c.kernel)
                        .with_dilation(d)
                        .with_padding(pad(d))
                        .init(device)
                })
                .collect(),
        }
    }

    /// - `tokens`: `[B, L]` (0 = padding)
    /// - output: `[B, 2 × channels]` (masked mean, masked max)
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let [b, l] = tokens.dims();
        let mask = tokens.clone().greater_elem(0).float().reshape([b, 1, l]);
        let x = self.embedding.forward(tokens).swap_dims(1, 2);
        let mut h = gelu(self.input.forward(x)) * mask.clone();
        for block in &self.blocks {
            h = h.clone() + gelu(block.forward(h)) * mask.clone();
        }
        let c = h.dims()[1];
        let count = mask.clone().sum_dim(2).clamp_min(1.0);
        let mean = (h.clone().sum_dim(2) / count).reshape([b, c]);
        // Padding positions cannot win the max.
        let max = (h + (mask - 1.0) * 1e4).max_dim(2).reshape([b, c]);
        Tensor::cat(vec![mean, max], 1)
    }
}

/// The whole model.
#[derive(Module, Debug)]
pub struct AlignModel {
    /// Sequence tower.
    pub sequence: SequenceEncoder,
    /// Heads into the shared space.
    pub sequence_head: Projection,
    pub structure_head: Projection,
    pub text_head: Projection,
    /// log(1 / temperature), learnt.
    pub log_scale: Param<Tensor<1>>,
}

impl AlignConfig {
    /// The noise level the structure tower's inputs are pooled at, through `network`.
    pub fn level(&self, network: &crate::score::embed::Embedder) -> usize {
        self.level_of(network.default_level())
    }

    /// As [`Self::level`], for a network whose default level is `default_level`.
    pub fn level_of(&self, default_level: usize) -> usize {
        self.structure_level.unwrap_or(default_level)
    }

    /// A freshly initialised model.
    pub fn init(&self, device: &Device) -> AlignModel {
        let h = self.head_hidden;
        AlignModel {
            sequence: SequenceEncoder::new(self, device),
            sequence_head: Projection::new(
                2 * self.sequence_channels,
                h,
                self.dim,
                self.dropout,
                device,
            ),
            structure_head: Projection::new(
                self.structure_width,
                h,
                self.dim,
                self.dropout,
                device,
            ),
            text_head: Projection::new(self.text_width, h, self.dim, self.dropout, device),
            log_scale: Param::from_tensor(Tensor::from_floats(
                [(1.0 / self.temperature).ln() as f32],
                device,
            )),
        }
    }
}

/// Largest logit scale (CLIP's clamp: temperature ≥ 0.01).
pub const MAX_SCALE: f32 = 100.0;

impl AlignModel {
    /// Sequence tokens `[B, L]` → shared space `[B, dim]`.
    pub fn embed_sequence(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        self.sequence_head.forward(self.sequence.forward(tokens))
    }

    /// Structure tower outputs `[B, structure_width]` → `[B, dim]`.
    pub fn embed_structure(&self, x: Tensor<2>) -> Tensor<2> {
        self.structure_head.forward(x)
    }

    /// Text tower outputs `[B, text_width]` → `[B, dim]`.
    pub fn embed_text(&self, x: Tensor<2>) -> Tensor<2> {
        self.text_head.forward(x)
    }

    /// The logit scale 1/τ, `[1]`, clamped to [1, MAX_SCALE].
    pub fn scale(&self) -> Tensor<1> {
        self.log_scale.val().exp().clamp(1.0, MAX_SCALE)
    }
}

/// Why training or embedding failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignError {
    /// The device failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// The data cannot train the model.
    #[error("the alignment data cannot be used: {0}")]
    Data(String),
    /// Weights could not be written or read.
    #[error("the alignment weights cannot be used: {0}")]
    Weights(String),
}

/// The trained model with everything needed to use it.
#[derive(Debug)]
pub struct AlignTrained {
    pub model: AlignModel,
    pub config: AlignConfig,
    pub structure_mean: Vec<f32>,
    pub structure_std: Vec<f32>,
}

/// What the exported JSON beside the weights says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignManifest {
    pub config: AlignConfig,
    pub structure_mean: Vec<f32>,
    pub structure_std: Vec<f32>,
    /// SHA-256 of the score-network weights the structure vectors came from.
    pub structure_weights_sha256: String,
    /// The file, beside `align.json`, of the score network the structure vectors come from (in
    /// the format of the shipped score weights): stage 2's fine-tuned network, or the frozen one
    /// a stage-1 model was trained on, kept with the model when the default score weights move
    /// on. `None`: the default score weights, which `structure_weights_sha256` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_network: Option<String>,
    /// SHA-256 of the text encoder's source weights.
    pub text_weights_sha256: String,
    /// Free-form training record (steps, data counts, …).
    pub training: serde_json::Value,
}

impl AlignTrained {
    /// The weights as safetensors bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, AlignError> {
        let mut store = SafetensorsStore::from_bytes(None);
        self.model
            .save_into(&mut store)
            .map_err(|e| AlignError::Weights(e.to_string()))?;
        store
            .get_bytes()
            .map_err(|e| AlignError::Weights(e.to_string()))
    }

    /// A model from its manifest and safetensors bytes.
    pub fn from_parts(
        manifest: &AlignManifest,
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, AlignError> {
        let mut model = manifest.config.init(device);
        let mut store = SafetensorsStore::from_bytes(Some(weights.to_vec()));
        model
            .load_from(&mut store)
            .map_err(|e| AlignError::Weights(e.to_string()))?;
        if manifest.structure_mean.len() != manifest.config.structure_width
            || manifest.structure_std.len() != manifest.config.structure_width
        {
            return Err(AlignError::Weights(
                "the structure statistics do not match the structure width".into(),
            ));
        }
        Ok(Self {
            model,
            config: manifest.config.clone(),
            structure_mean: manifest.structure_mean.clone(),
            structure_std: manifest.structure_std.clone(),
        })
    }

    fn standardise(&self, v: &[f32]) -> Vec<f32> {
        v.iter()
            .zip(self.structure_mean.iter().zip(&self.structure_std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    }

    /// Sequences → unit vectors in the shared space (central window of `max_sequence`).
    pub async fn embed_sequences(
        &self,
        sequences: &[&str],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, AlignError> {
        let mut out = Vec::with_capacity(sequences.len());
        // Batches of similar length waste less padding.
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&i| sequences[i].len());
        let mut vectors = vec![Vec::new(); sequences.len()];
        for chunk in order.chunks(64) {
            let tokens: Vec<Vec<i64>> = chunk
                .iter()
                .map(|&i| {
                    let (start, len) =
                        sequence_window(sequences[i].len(), self.config.max_sequence);
                    sequence_tokens(sequences[i], start, len)
                })
                .collect();
            let e = self.model.embed_sequence(token_tensor(&tokens, device));
            let values = read_f32(e).await?;
            for (row, &i) in chunk.iter().enumerate() {
                vectors[i] = values[row * self.config.dim..(row + 1) * self.config.dim].to_vec();
            }
        }
        out.extend(vectors);
        Ok(out)
    }

    /// Structure tower outputs → unit vectors.
    pub async fn embed_structures(
        &self,
        inputs: &[&[f32]],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, AlignError> {
        self.rows(inputs, device, true).await
    }

    /// Text tower outputs (MiniLM vectors) → unit vectors.
    pub async fn embed_texts(
        &self,
        inputs: &[&[f32]],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, AlignError> {
        self.rows(inputs, device, false).await
    }

    async fn rows(
        &self,
        inputs: &[&[f32]],
        device: &Device,
        structure: bool,
    ) -> Result<Vec<Vec<f32>>, AlignError> {
        let width = if structure {
            self.config.structure_width
        } else {
            self.config.text_width
        };
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(512) {
            let mut flat = Vec::with_capacity(chunk.len() * width);
            for v in chunk {
                if v.len() != width {
                    return Err(AlignError::Data(format!(
                        "an input has {} values; the model expects {width}",
                        v.len()
                    )));
                }
                if structure {
                    flat.extend(self.standardise(v));
                } else {
                    flat.extend_from_slice(v);
                }
            }
            let x = Tensor::<2>::from_data(TensorData::new(flat, [chunk.len(), width]), device);
            let e = if structure {
                self.model.embed_structure(x)
            } else {
                self.model.embed_text(x)
            };
            let values = read_f32(e).await?;
            out.extend(values.chunks_exact(self.config.dim).map(<[f32]>::to_vec));
        }
        Ok(out)
    }
}

/// Token rows (right-padded with 0) → `[B, L]`.
pub(crate) fn token_tensor(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let l = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut flat = vec![0i64; rows.len() * l];
    for (r, row) in rows.iter().enumerate() {
        flat[r * l..r * l + row.len()].copy_from_slice(row);
    }
    Tensor::from_data(TensorData::new(flat, [rows.len(), l]), device)
}
