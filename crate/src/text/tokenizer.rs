//! The WordPiece tokenizer of all-MiniLM-L6-v2, read from its `tokenizer.json` by the
//! Hugging Face `tokenizers` crate (pure Rust, also on wasm32).

use tokenizers::Tokenizer;

use super::TextError;

/// The token ids of one text, as the model reads them (`[CLS] … [SEP]`, at most the model's
/// maximum, unpadded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Token ids, `[CLS]` first and `[SEP]` last.
    pub ids: Vec<u32>,
    /// The text's full token count (with `[CLS]`/`[SEP]`) when it was longer than the model
    /// reads and was cut; `None` when it fitted.
    pub truncated_from: Option<usize>,
}

/// Tokenizer with the sentence-transformers settings: the text stripped of surrounding
/// whitespace, no padding, cut to `max_tokens` ids (`[CLS]` and `[SEP]` included).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_tokens: usize,
    sep: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

impl TextTokenizer {
    /// Read `tokenizer.json`. `max_tokens` is the model's maximum sequence length
    /// (sentence-transformers' `max_seq_length`, 256 for all-MiniLM-L6-v2): the file's own
    /// truncation (128) and fixed padding are replaced, as sentence-transformers does.
    pub fn from_json(json: &[u8], max_tokens: usize) -> Result<Self, TextError> {
        let mut inner =
            Tokenizer::from_bytes(json).map_err(|e| TextError::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let sep = inner
            .token_to_id("[SEP]")
            .ok_or_else(|| TextError::Tokenizer("the vocabulary has no [SEP] token".into()))?;
        if max_tokens < 2 {
            return Err(TextError::Tokenizer(format!(
                "a maximum of {max_tokens} tokens leaves no room for [CLS] and [SEP]"
            )));
        }
        Ok(Self {
            inner,
            max_tokens,
            sep,
        })
    }

    /// The most ids a text becomes.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Vocabulary size (special tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenize one text. Longer texts keep their first `max_tokens − 1` ids and end in
    /// `[SEP]` (what the `longest_first` truncation of a single text does).
    pub fn encode(&self, text: &str) -> Result<Tokens, TextError> {
        let encoding = self
            .inner
            .encode(text.trim(), true)
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let mut ids = encoding.get_ids().to_vec();
        let truncated_from = (ids.len() > self.max_tokens).then_some(ids.len());
        if truncated_from.is_some() {
            ids.truncate(self.max_tokens - 1);
            ids.push(self.sep);
        }
        Ok(Tokens {
            ids,
            truncated_from,
        })
    }

    /// The tokens (word pieces) of ids, for display.
    pub fn pieces(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.inner
                    .id_to_token(id)
                    .unwrap_or_else(|| "[?]".to_string())
            })
            .collect()
    }
}
