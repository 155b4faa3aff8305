//! The BERT encoder of all-MiniLM-L6-v2 (post-LayerNorm, exact GELU), mean pooling over real
//! tokens and L2 normalisation, on any burn device.
//!
//! Field names follow the Hugging Face `BertModel` state dict (`embeddings.word_embeddings`,
//! `encoder.layer.{i}.attention.self.query`, …); see [`super::weights`] for the mapping.

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};
use serde::{Deserialize, Serialize};

/// The encoder's shape, read from the Hugging Face `config.json` (field names as there) plus
/// sentence-transformers' `max_seq_length`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiniLmConfig {
    /// Vocabulary size (30522).
    pub vocab_size: usize,
    /// Width of the residual stream (384).
    pub hidden_size: usize,
    /// Transformer layers (6).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (12, of 32 channels each).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer (1536).
    pub intermediate_size: usize,
    /// Learned positions (512).
    pub max_position_embeddings: usize,
    /// Token types (2; only type 0 is used).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Activation; only `gelu` (exact, erf) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// The most tokens a text becomes, `[CLS]`/`[SEP]` included (sentence-transformers'
    /// `max_seq_length`: 256).
    #[serde(default = "default_max_seq")]
    pub max_seq_length: usize,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_max_seq() -> usize {
    256
}

impl MiniLmConfig {
    /// Check that the configuration describes an encoder this code runs.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "activation {:?} is not supported (only exact gelu)",
                self.hidden_act
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden size {} does not split into {} heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.max_seq_length < 2 || self.max_seq_length > self.max_position_embeddings {
            return Err(format!(
                "max_seq_length {} must lie in 2..={} (the learned positions)",
                self.max_seq_length, self.max_position_embeddings
            ));
        }
        if self.type_vocab_size == 0 || self.vocab_size == 0 {
            return Err("empty vocabulary".into());
        }
        Ok(())
    }

    /// An encoder with these shapes and random weights (the weights loader replaces them).
    pub fn init(&self, device: &Device) -> MiniLm {
        let h = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                query: LinearConfig::new(h, h).init(device),
                key: LinearConfig::new(h, h).init(device),
                value: LinearConfig::new(h, h).init(device),
                attention_output: LinearConfig::new(h, h).init(device),
                attention_norm: norm(),
                intermediate: LinearConfig::new(h, self.intermediate_size).init(device),
                output: LinearConfig::new(self.intermediate_size, h).init(device),
                output_norm: norm(),
                heads: self.num_attention_heads,
            })
            .collect();
        MiniLm {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
            embeddings_norm: norm(),
            layers,
        }
    }
}

/// One post-LayerNorm transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) attention_output: Linear,
    pub(crate) attention_norm: LayerNorm,
    pub(crate) intermediate: Linear,
    pub(crate) output: Linear,
    pub(crate) output_norm: LayerNorm,
    pub(crate) heads: usize,
}

impl BertLayer {
    /// `x` [B, T, H], `key_bias` [B, 1, 1, T] (0 for real keys, very negative for padding)
    /// → [B, T, H].
    pub fn forward(&self, x: Tensor<3>, key_bias: Tensor<4>) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let d = h / self.heads;
        // [B, T, H] → [B, heads, T, d]
        let split = |y: Tensor<3>| y.reshape([b, t, self.heads, d]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt() + key_bias;
        let probs = softmax(scores, 3);
        let context = probs.matmul(v).swap_dims(1, 2).reshape([b, t, h]);
        let x = self
            .attention_norm
            .forward(self.attention_output.forward(context) + x);
        let inner = gelu(self.intermediate.forward(x.clone()));
        self.output_norm.forward(self.output.forward(inner) + x)
    }
}

/// The encoder: embeddings (word + position + type 0, LayerNorm) and the layers.
#[derive(Module, Debug)]
pub struct MiniLm {
    pub(crate) word_embeddings: Embedding,
    pub(crate) position_embeddings: Embedding,
    pub(crate) token_type_embeddings: Embedding,
    pub(crate) embeddings_norm: LayerNorm,
    pub(crate) layers: Vec<BertLayer>,
}

/// Added to the attention scores of padded keys: their softmax weight underflows to 0.
const PADDING_BIAS: f64 = -1.0e30;

impl MiniLm {
    /// Last hidden state. `ids` [B, T] token ids (right-padded with anything), `mask` [B, T]
    /// 1 for real tokens and 0 for padding → [B, T, H].
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let positions = self
            .position_embeddings
            .weight
            .val()
            .slice(0..t)
            .unsqueeze_dim::<3>(0);
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .slice(0..1)
            .unsqueeze_dim::<3>(0);
        let x = self.word_embeddings.forward(ids) + positions + token_type;
        let mut x = self.embeddings_norm.forward(x);
        let key_bias = ((mask.neg() + 1.0) * PADDING_BIAS).reshape([b, 1, 1, t]);
        for layer in &self.layers {
            x = layer.forward(x, key_bias.clone());
        }
        x
    }

    /// Sentence embeddings: the mean of the last hidden state over real tokens, L2-normalised
    /// (sentence-transformers' Pooling + Normalize). Returns (`pooled` [B, H],
    /// `normalised` [B, H]).
    pub fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let [b, t] = ids.dims();
        let hidden = self.forward(ids, mask.clone());
        let h = hidden.dims()[2];
        let weights = mask.clone().reshape([b, t, 1]);
        let sum = (hidden * weights).sum_dim(1).reshape([b, h]);
        let count = mask.sum_dim(1).clamp_min(1e-9);
        let pooled = sum / count;
        let norm = pooled
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        let normalised = pooled.clone() / norm;
        (pooled, normalised)
    }
}
