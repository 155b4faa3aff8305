//! Score-network weights: read from safetensors (ours and the published tensors) or a PyTorch
//! checkpoint (`.pth`, zip format), checked key for key against the configuration, and turned
//! into a [`ScoreNet`] on any device; and written back as safetensors.
//!
//! Key names are the published model's (docs/score-model.md §7); any missing key, extra key or
//! shape mismatch is an error that lists them.

use std::collections::BTreeMap;

use burn::module::{Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compute::{ComputeError, read_f32};
use crate::io::{SafetensorsEntry, serialize_safetensors};
use crate::score::network::{Bottleneck, CondBatchNorm, ScoreNet, ScoreNetConfig};

/// Metadata key under which our safetensors files carry the model configuration (JSON).
pub const CONFIG_METADATA_KEY: &str = "foldspace.config";

/// Safetensors metadata key of a one-line description of exported weights (what they are, how
/// they score), which the page shows.
pub const DESCRIPTION_METADATA_KEY: &str = "foldspace.description";

/// Why weights could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    /// Neither safetensors nor a PyTorch zip checkpoint.
    #[error("the weights file is neither safetensors nor a PyTorch checkpoint: {0}")]
    Format(String),
    /// A tensor has an element type we cannot read.
    #[error("tensor {key} has unsupported element type {dtype}")]
    DType { key: String, dtype: String },
    /// Keys differ from what the configuration expects.
    #[error(
        "the weights do not match the model: {}",
        describe_mismatch(missing, unexpected)
    )]
    Keys {
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("tensor {key} has shape {found:?}, the model expects {expected:?}")]
    Shape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The configuration stored in the file is invalid.
    #[error("the model configuration in the weights file is invalid: {0}")]
    Config(String),
    /// A tensor holds NaN or infinity.
    #[error("tensor {0} holds values that are not finite")]
    NotFinite(String),
}

fn describe_mismatch(missing: &[String], unexpected: &[String]) -> String {
    let list = |v: &[String]| {
        let shown: Vec<&str> = v.iter().take(8).map(String::as_str).collect();
        let more = v.len().saturating_sub(8);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    match (missing.is_empty(), unexpected.is_empty()) {
        (false, false) => format!(
            "{} missing ({}); {} unexpected ({})",
            missing.len(),
            list(missing),
            unexpected.len(),
            list(unexpected)
        ),
        (false, true) => format!("{} missing ({})", missing.len(), list(missing)),
        (true, false) => format!("{} unexpected ({})", unexpected.len(), list(unexpected)),
        (true, true) => "no difference".into(),
    }
}

/// One tensor of a weights file, as f32 (integer buffers such as `num_batches_tracked` too).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// Extents, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
    /// Whether the file stored it as an integer.
    pub integer: bool,
}

/// All tensors of a weights file by name, plus the file's text metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightMap {
    /// Tensors by key.
    pub tensors: BTreeMap<String, WeightTensor>,
    /// Text metadata (safetensors header `__metadata__`).
    pub metadata: BTreeMap<String, String>,
}

fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

fn bf16_to_f32(bits: u16) -> f32 {
    half::bf16::from_bits(bits).to_f32()
}

pub(crate) fn decode(
    key: &str,
    dtype: &str,
    bytes: &[u8],
) -> Result<(Vec<f32>, bool), WeightsError> {
    let chunks = |n: usize| bytes.chunks_exact(n);
    let array = |c: &[u8], n: usize| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(c);
        a
    };
    Ok(match dtype {
        "F32" => (
            chunks(4)
                .map(|c| f32::from_le_bytes(array(c, 4)[..4].try_into().unwrap_or_default()))
                .collect(),
            false,
        ),
        "F64" => (
            chunks(8)
                .map(|c| f64::from_le_bytes(array(c, 8)) as f32)
                .collect(),
            false,
        ),
        "F16" => (
            chunks(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            false,
        ),
        "BF16" => (
            chunks(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            false,
        ),
        "I64" => (
            chunks(8)
                .map(|c| i64::from_le_bytes(array(c, 8)) as f32)
                .collect(),
            true,
        ),
        "I32" => (
            chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            true,
        ),
        other => {
            return Err(WeightsError::DType {
                key: key.to_string(),
                dtype: other.to_string(),
            });
        }
    })
}

impl WeightMap {
    /// Read weights from bytes: safetensors (what the browser loads). A PyTorch checkpoint keeps
    /// its tensors outside the pickle, so it is read from a file ([`Self::from_file`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeightsError> {
        if bytes.starts_with(b"PK\x03\x04") {
            return Err(WeightsError::Format(
                "this is a PyTorch checkpoint: read it from a file with the native command line, \
                 or convert it to .safetensors for the browser"
                    .into(),
            ));
        }
        Self::from_safetensors(bytes)
    }

    /// Read a weights file (PyTorch `.pth` zip checkpoint or safetensors, by content) and
    /// return it with the SHA-256 of its bytes.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_file(path: &std::path::Path) -> Result<(Self, String), WeightsError> {
        let bytes = std::fs::read(path)
            .map_err(|e| WeightsError::Format(format!("cannot read {}: {e}", path.display())))?;
        let sha = crate::io::sha256_hex(&bytes);
        let map = if bytes.starts_with(b"PK\x03\x04") {
            Self::from_pytorch_file(path)?
        } else {
            Self::from_safetensors(&bytes)?
        };
        Ok((map, sha))
    }

    /// Read a safetensors file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, WeightsError> {
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| WeightsError::Format(e.to_string()))?;
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| WeightsError::Format(e.to_string()))?;
        let mut map = WeightMap::default();
        if let Some(meta) = header.metadata() {
            map.metadata = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        for (key, view) in file.iter() {
            let (values, integer) = decode(key, &format!("{:?}", view.dtype()), view.data())?;
            map.tensors.insert(
                key.to_string(),
                WeightTensor {
                    shape: scalar_shape(key, view.shape()),
                    values,
                    integer,
                },
            );
        }
        Ok(map)
    }

    /// Read a PyTorch checkpoint file (`torch.save` zip format) holding a state dict.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_pytorch_file(path: &std::path::Path) -> Result<Self, WeightsError> {
        use burn::store::pytorch_reader::{DType, PytorchReader};
        let reader = PytorchReader::new(path).map_err(|e| WeightsError::Format(e.to_string()))?;
        let mut map = WeightMap::default();
        for (key, tensor) in reader.into_tensors() {
            let dtype = match tensor.dtype() {
                DType::F32 => "F32",
                DType::F64 => "F64",
                DType::F16 => "F16",
                DType::BF16 => "BF16",
                DType::I64 => "I64",
                DType::I32 => "I32",
                other => {
                    return Err(WeightsError::DType {
                        key,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            let raw = tensor
                .read()
                .map_err(|e| WeightsError::Format(format!("{key}: {e}")))?;
            let (values, integer) = decode(&key, dtype, &raw)?;
            let shape = scalar_shape(&key, tensor.shape());
            map.tensors.insert(
                key,
                WeightTensor {
                    shape,
                    values,
                    integer,
                },
            );
        }
        Ok(map)
    }

    /// Fold the configuration's `output_scale` into `conv_out` (weight and bias times the scale)
    /// and set it to 1: the same score map from the published architecture. A no-op when the
    /// scale is already 1.
    pub fn fold_output_scale(&mut self) -> Result<(), WeightsError> {
        let mut config = self.config()?;
        let scale = config.output_scale;
        if scale == 1.0 {
            return Ok(());
        }
        for key in ["conv_out.weight", "conv_out.bias"] {
            let t = self
                .tensors
                .get_mut(key)
                .ok_or_else(|| WeightsError::Config(format!("{key} is missing")))?;
            for v in &mut t.values {
                *v = (f64::from(*v) * scale) as f32;
            }
        }
        config.output_scale = 1.0;
        self.metadata.insert(
            CONFIG_METADATA_KEY.to_string(),
            serde_json::to_string(&config).map_err(|e| WeightsError::Config(e.to_string()))?,
        );
        Ok(())
    }

    /// The model configuration: from the metadata if the file carries one, else inferred from
    /// the tensor shapes with the reference's dilations and noise ladder.
    pub fn config(&self) -> Result<ScoreNetConfig, WeightsError> {
        if let Some(json) = self.metadata.get(CONFIG_METADATA_KEY) {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| WeightsError::Config(e.to_string()))?;
            let config = ScoreNetConfig::from_json(value).map_err(WeightsError::Config)?;
            config.validate().map_err(WeightsError::Config)?;
            return Ok(config);
        }
        let shape = |key: &str| self.tensors.get(key).map(|t| t.shape.clone());
        let mut config = ScoreNetConfig::reference();
        if let Some(s) = shape("conv_in.weight").filter(|s| s.len() == 4) {
            config.hidden_channels = s[0];
            config.in_channels = s[1];
        }
        if let Some(s) = shape("blocks_hid.0.conv1.weight").filter(|s| !s.is_empty()) {
            config.bottleneck_channels = s[0];
        }
        if let Some(s) = shape("norm_out.embed_gamma.weight").filter(|s| !s.is_empty()) {
            config.levels = s[0];
        }
        let blocks = self
            .tensors
            .keys()
            .filter_map(|k| {
                k.strip_prefix("blocks_hid.")?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max();
        config.blocks = blocks.map_or(0, |b| b + 1);
        config.validate().map_err(WeightsError::Config)?;
        Ok(config)
    }

    fn tensor<const D: usize>(
        &self,
        key: &str,
        device: &Device,
    ) -> Result<Tensor<D>, WeightsError> {
        let t = self.tensors.get(key).ok_or_else(|| WeightsError::Keys {
            missing: vec![key.to_string()],
            unexpected: vec![],
        })?;
        Ok(Tensor::from_data(
            TensorData::new(t.values.clone(), t.shape.clone()),
            device,
        ))
    }
}

/// PyTorch's `num_batches_tracked` is a 0-d scalar; the published safetensors stores it with
/// shape `[1]`. Both read as the scalar they are.
fn scalar_shape(key: &str, shape: &[usize]) -> Vec<usize> {
    if key.ends_with("num_batches_tracked") && shape == [1] {
        Vec::new()
    } else {
        shape.to_vec()
    }
}

/// Every key (with its shape) the configuration's network has, buffers included.
pub fn expected_keys(config: &ScoreNetConfig) -> BTreeMap<String, Vec<usize>> {
    let mut keys = BTreeMap::new();
    let (c, m, l) = (
        config.hidden_channels,
        config.bottleneck_channels,
        config.levels,
    );
    let mut conv = |p: &str, cout: usize, cin: usize, k: usize| {
        keys.insert(format!("{p}.weight"), vec![cout, cin, k, k]);
        keys.insert(format!("{p}.bias"), vec![cout]);
    };
    conv("conv_in", c, config.in_channels, 3);
    conv("conv_out", 1, c, 3);
    for b in 0..config.blocks {
        conv(&format!("blocks_hid.{b}.conv1"), m, c, 1);
        conv(&format!("blocks_hid.{b}.conv2"), m, m, 3);
        conv(&format!("blocks_hid.{b}.conv3"), c, m, 1);
    }
    let mut norm = |p: &str, ch: usize| {
        keys.insert(format!("{p}.norm.running_mean"), vec![ch]);
        keys.insert(format!("{p}.norm.running_var"), vec![ch]);
        keys.insert(format!("{p}.norm.num_batches_tracked"), vec![]);
        keys.insert(format!("{p}.embed_gamma.weight"), vec![l, ch]);
        keys.insert(format!("{p}.embed_beta.weight"), vec![l, ch]);
    };
    for b in 0..config.blocks {
        norm(&format!("blocks_hid.{b}.norm1"), c);
        norm(&format!("blocks_hid.{b}.norm2"), m);
        norm(&format!("blocks_hid.{b}.norm3"), m);
    }
    norm("norm_out", c);
    keys
}

/// Check the map against the configuration: same keys, same shapes, finite values.
pub fn validate(map: &WeightMap, config: &ScoreNetConfig) -> Result<(), WeightsError> {
    let expected = expected_keys(config);
    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !map.tensors.contains_key(*k))
        .cloned()
        .collect();
    let unexpected: Vec<String> = map
        .tensors
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(WeightsError::Keys {
            missing,
            unexpected,
        });
    }
    for (key, shape) in &expected {
        let t = &map.tensors[key];
        if &t.shape != shape {
            return Err(WeightsError::Shape {
                key: key.clone(),
                expected: shape.clone(),
                found: t.shape.clone(),
            });
        }
        if t.values.iter().any(|v| !v.is_finite()) {
            return Err(WeightsError::NotFinite(key.clone()));
        }
    }
    Ok(())
}

/// A trainable parameter whose id is derived from its key (FNV-1a), so that optimiser state
/// saved in a checkpoint finds its parameter again after the model is rebuilt from weights.
fn param<const D: usize>(
    map: &WeightMap,
    key: &str,
    device: &Device,
) -> Result<Param<Tensor<D>>, WeightsError> {
    let id = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let (_, value, mapper) = Param::from_tensor(map.tensor::<D>(key, device)?).consume();
    Ok(Param::from_mapped_value(ParamId::from(id), value, mapper))
}

fn set_conv(
    conv: &mut Conv2d,
    map: &WeightMap,
    p: &str,
    device: &Device,
) -> Result<(), WeightsError> {
    conv.weight = param(map, &format!("{p}.weight"), device)?;
    conv.bias = Some(param(map, &format!("{p}.bias"), device)?);
    Ok(())
}

fn set_norm(
    norm: &mut CondBatchNorm,
    map: &WeightMap,
    p: &str,
    device: &Device,
) -> Result<(), WeightsError> {
    use burn::module::RunningState;
    norm.norm.running_mean =
        RunningState::new(map.tensor(&format!("{p}.norm.running_mean"), device)?);
    norm.norm.running_var =
        RunningState::new(map.tensor(&format!("{p}.norm.running_var"), device)?);
    norm.embed_gamma.weight = param(map, &format!("{p}.embed_gamma.weight"), device)?;
    norm.embed_beta.weight = param(map, &format!("{p}.embed_beta.weight"), device)?;
    Ok(())
}

/// Build the network from validated weights on `device` (an autodiff device gives a trainable
/// network). Parameter ids are stable functions of the keys.
pub fn load_model(
    map: &WeightMap,
    config: &ScoreNetConfig,
    device: &Device,
) -> Result<ScoreNet, WeightsError> {
    config.validate().map_err(WeightsError::Config)?;
    validate(map, config)?;
    let mut model = config.init(device);
    set_conv(&mut model.conv_in, map, "conv_in", device)?;
    set_conv(&mut model.conv_out, map, "conv_out", device)?;
    set_norm(&mut model.norm_out, map, "norm_out", device)?;
    for (b, block) in model.blocks_hid.iter_mut().enumerate() {
        let p = format!("blocks_hid.{b}");
        set_block(block, map, &p, device)?;
    }
    Ok(model)
}

fn set_block(
    block: &mut Bottleneck,
    map: &WeightMap,
    p: &str,
    device: &Device,
) -> Result<(), WeightsError> {
    set_norm(&mut block.norm1, map, &format!("{p}.norm1"), device)?;
    set_conv(&mut block.conv1, map, &format!("{p}.conv1"), device)?;
    set_norm(&mut block.norm2, map, &format!("{p}.norm2"), device)?;
    set_conv(&mut block.conv2, map, &format!("{p}.conv2"), device)?;
    set_norm(&mut block.norm3, map, &format!("{p}.norm3"), device)?;
    set_conv(&mut block.conv3, map, &format!("{p}.conv3"), device)?;
    Ok(())
}

/// Floating-point precision of written weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// 32-bit floats (exact).
    F32,
    /// 16-bit floats for the learned parameters (half the download); batch-norm running
    /// statistics stay f32, their range does not fit f16 safely.
    F16,
}

/// Serialise a weight map as safetensors (f32 tensors, integer buffers as i64), with its metadata.
pub fn to_safetensors(map: &WeightMap) -> Result<Vec<u8>, WeightsError> {
    to_safetensors_with(map, Precision::F32)
}

/// Serialise a weight map as safetensors in the given precision, with its metadata.
pub fn to_safetensors_with(map: &WeightMap, precision: Precision) -> Result<Vec<u8>, WeightsError> {
    let entries: Vec<SafetensorsEntry> = map
        .tensors
        .iter()
        .map(|(k, t)| {
            if t.integer {
                let bytes = t
                    .values
                    .iter()
                    .flat_map(|&v| (v as i64).to_le_bytes())
                    .collect();
                (k.clone(), "I64", t.shape.clone(), bytes)
            } else if precision == Precision::F16 && !k.contains(".norm.running_") {
                let bytes = t
                    .values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect();
                (k.clone(), "F16", t.shape.clone(), bytes)
            } else {
                let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k.clone(), "F32", t.shape.clone(), bytes)
            }
        })
        .collect();
    serialize_safetensors(&entries, &map.metadata).map_err(WeightsError::Format)
}

async fn read_param<const D: usize>(
    map: &mut WeightMap,
    key: String,
    t: Tensor<D>,
) -> Result<(), ComputeError> {
    let shape = t.dims().to_vec();
    let values = read_f32(t).await?;
    map.tensors.insert(
        key,
        WeightTensor {
            shape,
            values,
            integer: false,
        },
    );
    Ok(())
}

async fn read_norm(
    map: &mut WeightMap,
    p: &str,
    norm: &CondBatchNorm,
    batches_tracked: u64,
) -> Result<(), ComputeError> {
    read_param(
        map,
        format!("{p}.norm.running_mean"),
        norm.norm.running_mean.value_sync(),
    )
    .await?;
    read_param(
        map,
        format!("{p}.norm.running_var"),
        norm.norm.running_var.value_sync(),
    )
    .await?;
    map.tensors.insert(
        format!("{p}.norm.num_batches_tracked"),
        WeightTensor {
            shape: vec![],
            values: vec![batches_tracked as f32],
            integer: true,
        },
    );
    read_param(
        map,
        format!("{p}.embed_gamma.weight"),
        norm.embed_gamma.weight.val(),
    )
    .await?;
    read_param(
        map,
        format!("{p}.embed_beta.weight"),
        norm.embed_beta.weight.val(),
    )
    .await
}

async fn read_conv(map: &mut WeightMap, p: &str, conv: &Conv2d) -> Result<(), ComputeError> {
    read_param(map, format!("{p}.weight"), conv.weight.val()).await?;
    if let Some(bias) = &conv.bias {
        read_param(map, format!("{p}.bias"), bias.val()).await?;
    }
    Ok(())
}

/// The network's tensors under the published key names (the inverse of [`load_model`]), with
/// the configuration in the metadata. `batches_tracked` fills PyTorch's `num_batches_tracked`
/// (the number of training batches seen; f32-exact up to 2^24).
pub async fn weight_map(
    model: &ScoreNet,
    config: &ScoreNetConfig,
    batches_tracked: u64,
) -> Result<WeightMap, ComputeError> {
    let mut map = WeightMap::default();
    read_conv(&mut map, "conv_in", &model.conv_in).await?;
    for (b, block) in model.blocks_hid.iter().enumerate() {
        let p = format!("blocks_hid.{b}");
        read_norm(
            &mut map,
            &format!("{p}.norm1"),
            &block.norm1,
            batches_tracked,
        )
        .await?;
        read_conv(&mut map, &format!("{p}.conv1"), &block.conv1).await?;
        read_norm(
            &mut map,
            &format!("{p}.norm2"),
            &block.norm2,
            batches_tracked,
        )
        .await?;
        read_conv(&mut map, &format!("{p}.conv2"), &block.conv2).await?;
        read_norm(
            &mut map,
            &format!("{p}.norm3"),
            &block.norm3,
            batches_tracked,
        )
        .await?;
        read_conv(&mut map, &format!("{p}.conv3"), &block.conv3).await?;
    }
    read_norm(&mut map, "norm_out", &model.norm_out, batches_tracked).await?;
    read_conv(&mut map, "conv_out", &model.conv_out).await?;
    map.metadata.insert(
        CONFIG_METADATA_KEY.to_string(),
        serde_json::to_string(config).map_err(|e| ComputeError::Read(e.to_string()))?,
    );
    Ok(map)
}
