//! Inference: from a chain to its score map, coordinate gradient and embeddings at three levels
//! (docs/score-model.md §4 "Returned embedding", §5 gradient recovery).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compute::{Compute, ComputeError, read_f32};
use crate::io::sha256_hex;
use crate::score::inputs::{RESIDUE_CHANNELS, encode_inputs, residue_features};
use crate::score::network::{NormMode, ScoreNet, ScoreNetConfig, ScoreOutput};
use crate::score::weights::{WeightMap, WeightsError, load_model};
use crate::structure::Chain;

/// Why an embedding could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// The weights could not be used.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The device failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// The noise level is outside the ladder.
    #[error("noise level {level} is out of range: the model has levels 0..={}", levels - 1)]
    BadLevel { level: usize, levels: usize },
    /// The chain has too few residues.
    #[error("chain {chain} has {residues} residue(s); at least 2 are needed")]
    TooShort { chain: String, residues: usize },
}

/// Everything the model says about one chain. Arrays are row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainEmbedding {
    /// Number of residues L.
    pub length: usize,
    /// Embedding channels C.
    pub channels: usize,
    /// Noise-level index used.
    pub noise_level: usize,
    /// Its standard deviation (Å).
    pub sigma: f32,
    /// Score map H, `[L, L]` (`conv_out`).
    pub score: Vec<f32>,
    /// Estimated score of the coordinates, `[L, 3]`: `(g_p + g_s) / (2σ)` with the chain-rule
    /// gradients of §5 (`g_i = Σ_j 2(h_ij + h_ji)(x_i − x_j)` split into row and column parts).
    pub gradient: Vec<f32>,
    /// Pair embedding, `[L, L, C]` (channel-last; the reference stores C×L×L).
    pub pair: Vec<f32>,
    /// Residue embedding, `[L, C]`: the pair embedding averaged over the column axis j.
    pub residue: Vec<f32>,
    /// Protein embedding, `[C]`: averaged over both axes.
    pub protein: Vec<f32>,
    /// The C-alpha coordinates used, `[L, 3]`.
    pub ca: Vec<f32>,
}

impl ChainEmbedding {
    /// Per-residue magnitude of the estimated score, ‖g_i‖ (`[L]`).
    pub fn gradient_norms(&self) -> Vec<f32> {
        self.gradient
            .chunks_exact(3)
            .map(|g| (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt())
            .collect()
    }
}

/// The model on a device, ready to embed chains.
#[derive(Debug)]
pub struct Embedder {
    /// The network.
    pub model: ScoreNet,
    /// Its configuration.
    pub config: ScoreNetConfig,
    /// Where it runs.
    pub compute: Compute,
    /// SHA-256 of the weights file it was loaded from.
    pub weights_sha256: String,
    /// What the weights are and how they score, as `foldspace export` wrote it into the file
    /// (metadata key [`crate::score::weights::DESCRIPTION_METADATA_KEY`]); `None` for other files.
    pub description: Option<String>,
    sigmas: Vec<f32>,
}

/// Pair inputs of one full map on the device, `[1, 149, L, L]`.
pub async fn chain_inputs(
    compute: &Compute,
    ca: &[[f32; 3]],
    sequence: &str,
) -> Result<Tensor<4>, ComputeError> {
    let l = ca.len();
    let device = &compute.device;
    let distances = compute.distance_map(ca, ca).await?;
    let features: Vec<f32> = residue_features(sequence).into_iter().flatten().collect();
    let features =
        Tensor::<3>::from_data(TensorData::new(features, [1, l, RESIDUE_CHANNELS]), device);
    let distances = Tensor::<3>::from_data(TensorData::new(distances, [1, l, l]), device);
    Ok(encode_inputs(distances, features.clone(), features))
}

/// Chain-rule gradients of the coordinates from a score map (§5), before division by σ.
///
/// # Shapes
/// - `g`: `[B, H, W]` masked score map, `xp`: `[B, H, 3]` row coordinates, `xs`: `[B, W, 3]`
/// - output: (`gp` `[B, H, 3]`, `gs` `[B, W, 3]`)
pub fn recover_gradients(g: Tensor<3>, xp: Tensor<3>, xs: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    let gt = g.clone().swap_dims(1, 2);
    let gp = (g.clone().sum_dim(2) * xp.clone() - g.matmul(xs.clone())).mul_scalar(2.0);
    let gs = (gt.clone().sum_dim(2) * xs - gt.matmul(xp)).mul_scalar(2.0);
    (gp, gs)
}

impl Embedder {
    /// The model of a weight map on a device; `sha256` identifies the file it came from.
    pub fn new(map: &WeightMap, sha256: String, compute: Compute) -> Result<Self, EmbedError> {
        let config = map.config()?;
        let model = load_model(map, &config, &compute.device)?;
        Ok(Self {
            sigmas: config.sigmas(),
            model,
            config,
            compute,
            weights_sha256: sha256,
            description: map
                .metadata
                .get(crate::score::weights::DESCRIPTION_METADATA_KEY)
                .cloned(),
        })
    }

    /// Load safetensors weights from bytes (as the browser does).
    pub fn from_bytes(bytes: &[u8], compute: Compute) -> Result<Self, EmbedError> {
        Self::new(&WeightMap::from_bytes(bytes)?, sha256_hex(bytes), compute)
    }

    /// Load a weights file: safetensors or a PyTorch `.pth` checkpoint.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_file(path: &std::path::Path, compute: Compute) -> Result<Self, EmbedError> {
        let (map, sha) = WeightMap::from_file(path)?;
        Self::new(&map, sha, compute)
    }

    /// Noise standard deviations, by level (decreasing).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The level used by default for embeddings: the smallest sigma.
    pub fn default_level(&self) -> usize {
        self.sigmas.len().saturating_sub(1)
    }

    /// The noise standard deviation (Å) of a level, or an error if the ladder has no such level.
    pub fn sigma(&self, level: usize) -> Result<f32, EmbedError> {
        self.sigmas.get(level).copied().ok_or(EmbedError::BadLevel {
            level,
            levels: self.sigmas.len(),
        })
    }

    /// Inputs and raw network outputs for one chain at one level (eval mode, full map).
    pub async fn forward(
        &self,
        ca: &[[f32; 3]],
        sequence: &str,
        level: usize,
    ) -> Result<(Tensor<4>, ScoreOutput), EmbedError> {
        self.sigma(level)?;
        let inputs = chain_inputs(&self.compute, ca, sequence).await?;
        let levels = Tensor::<1, Int>::from_ints([level as i64], &self.compute.device);
        let out = self.model.forward(inputs.clone(), levels, NormMode::Eval);
        Ok((inputs, out))
    }

    /// Score map, gradient and embeddings of a chain at noise level `level`.
    pub async fn embed(&self, chain: &Chain, level: usize) -> Result<ChainEmbedding, EmbedError> {
        let sigma = self.sigma(level)?;
        let l = chain.len();
        if l < 2 {
            return Err(EmbedError::TooShort {
                chain: chain.id.clone(),
                residues: l,
            });
        }
        let (_, out) = self.forward(&chain.ca, &chain.sequence, level).await?;
        let c = self.config.hidden_channels;
        let device = &self.compute.device;
        let ca: Vec<f32> = chain.ca.iter().flatten().copied().collect();
        let x = Tensor::<3>::from_data(TensorData::new(ca.clone(), [1, l, 3]), device);
        let score = out.score.reshape([1, l, l]);
        let (gp, gs) = recover_gradients(score.clone(), x.clone(), x);
        let gradient = (gp + gs).div_scalar(2.0 * sigma);
        let features = out.features.reshape([c, l, l]);
        let residue = features.clone().mean_dim(2).reshape([c, l]).transpose();
        let protein = features.clone().mean_dims(&[1, 2]).reshape([c]);
        let pair = features.permute([1, 2, 0]);
        Ok(ChainEmbedding {
            length: l,
            channels: c,
            noise_level: level,
            sigma,
            score: read_f32(score).await?,
            gradient: read_f32(gradient).await?,
            pair: read_f32(pair).await?,
            residue: read_f32(residue).await?,
            protein: read_f32(protein).await?,
            ca,
        })
    }
}

/// Names of the arrays in an embedding `.npz` (the page and `foldspace embed` write the same).
pub const ARRAY_NAMES: [&str; 6] = ["pair", "residue", "protein", "score", "gradient", "ca"];

impl ChainEmbedding {
    /// One array by name (see [`ARRAY_NAMES`]): its shape and values.
    pub fn array(&self, name: &str) -> Option<(Vec<usize>, &[f32])> {
        let (l, c) = (self.length, self.channels);
        Some(match name {
            "pair" => (vec![l, l, c], &self.pair),
            "residue" => (vec![l, c], &self.residue),
            "protein" => (vec![c], &self.protein),
            "score" => (vec![l, l], &self.score),
            "gradient" => (vec![l, 3], &self.gradient),
            "ca" => (vec![l, 3], &self.ca),
            _ => return None,
        })
    }

    /// The `.npz` archive of all arrays: `pair [L, L, C]`, `residue [L, C]`, `protein [C]`,
    /// `score [L, L]`, `gradient [L, 3]`, `ca [L, 3]`.
    pub fn npz(&self) -> Result<Vec<u8>, crate::export::ExportError> {
        self.npz_of(&ARRAY_NAMES)
    }

    /// The `.npz` archive of the named arrays only (see [`ARRAY_NAMES`]; other names are
    /// skipped), e.g. without `pair`, which is `L² × C` numbers.
    pub fn npz_of(&self, names: &[&str]) -> Result<Vec<u8>, crate::export::ExportError> {
        let arrays: Vec<(&str, Vec<usize>, &[f32])> = names
            .iter()
            .filter_map(|name| self.array(name).map(|(shape, v)| (*name, shape, v)))
            .collect();
        let views: Vec<crate::export::Array<'_>> = arrays
            .iter()
            .map(|(name, shape, values)| crate::export::Array {
                name,
                shape,
                values,
            })
            .collect();
        crate::export::npz_bytes(&views)
    }

    /// One array as a `.npy` file, or `None` for an unknown name.
    pub fn npy(&self, name: &str) -> Option<Result<Vec<u8>, crate::export::ExportError>> {
        let (shape, values) = self.array(name)?;
        Some(crate::export::npy_bytes(crate::export::Array {
            name,
            shape: &shape,
            values,
        }))
    }

    /// Per-residue table: residue number, name, one-letter code, ‖g_i‖, the B-factor column and
    /// the residue embedding (`e0` … `e{C-1}`, the `residue` array's row).
    pub fn residue_csv(&self, chain: &Chain) -> String {
        let mut out =
            String::from("index,chain,residue_number,residue_name,aa,score_magnitude,b_factor");
        for k in 0..self.channels {
            out.push_str(&format!(",e{k}"));
        }
        out.push('\n');
        for (i, norm) in self.gradient_norms().iter().enumerate() {
            let number = chain
                .residue_numbers
                .get(i)
                .map(|n| n.to_string())
                .unwrap_or_default();
            let name = chain.residue_names.get(i).map(String::as_str).unwrap_or("");
            let aa = chain.sequence.chars().nth(i).unwrap_or('X');
            let b = chain.b_factors.get(i).copied().unwrap_or(0.0);
            out.push_str(&format!(
                "{i},{},{number},{name},{aa},{norm:.6e},{b:.2}",
                chain.id
            ));
            let row = self
                .residue
                .get(i * self.channels..(i + 1) * self.channels)
                .unwrap_or(&[]);
            for v in row {
                out.push_str(&format!(",{v:.6e}"));
            }
            out.push('\n');
        }
        out
    }

    /// The residue embeddings as rows (`[L][C]`), for JSON.
    pub fn residue_rows(&self) -> Vec<&[f32]> {
        self.residue.chunks(self.channels.max(1)).collect()
    }
}

/// Where an embedding came from, written beside it as JSON (the page and `foldspace embed`).
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    /// File name or path as the user gave it.
    pub file: &'a str,
    /// SHA-256 of the weights file.
    pub weights_sha256: &'a str,
    /// The device, as [`Compute::describe`] writes it.
    pub backend: &'a str,
}

/// The JSON metadata of one chain's embedding, with its protein embedding (`[C]`) and residue
/// embeddings (`[L][C]`); the pair embedding is in the `.npz` only (`L² × C` numbers).
pub fn metadata(
    provenance: &Provenance<'_>,
    structure: &crate::structure::Structure,
    chain: &Chain,
    e: &ChainEmbedding,
) -> serde_json::Value {
    metadata_of(provenance, structure, chain, e, &ARRAY_NAMES)
}

/// [`metadata`] for an `.npz` that holds only the named arrays (its `arrays` lists those).
pub fn metadata_of(
    provenance: &Provenance<'_>,
    structure: &crate::structure::Structure,
    chain: &Chain,
    e: &ChainEmbedding,
    arrays: &[&str],
) -> serde_json::Value {
    serde_json::json!({
        "file": provenance.file,
        "chain": chain.id,
        "sequence": chain.sequence,
        "residue_names": chain.residue_names,
        "residue_numbers": chain.residue_numbers.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "length": e.length,
        "channels": e.channels,
        "noise_level": e.noise_level,
        "sigma": e.sigma,
        "weights_sha256": provenance.weights_sha256,
        "backend": provenance.backend,
        "foldspace_version": crate::VERSION,
        "title": structure.description.title,
        "b_factor_kind": structure.b_factor_kind,
        "b_factors": chain.b_factors,
        "protein_embedding": e.protein,
        "residue_embeddings": e.residue_rows(),
        "arrays": arrays.iter().filter_map(|n| e.array(n).map(|(s, _)| (n.to_string(), s))).collect::<std::collections::BTreeMap<_, _>>(),
    })
}
