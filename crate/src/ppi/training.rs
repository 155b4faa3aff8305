//! Training a PPI-site classifier: a validation carve-out of the training chains (early
//! stopping and the decision threshold come from it, never from a test set), AdamW, class-
//! weighted cross-entropy.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::data::{Batch, PreparedChain, batch};
use super::model::{PpiModelKind, PpiNet, PpiNetConfig, weighted_bce};
use crate::compute::{ComputeError, read_f32};
use crate::stats::{auprc, best_mcc_threshold};

/// Hyper-parameters of one training run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PpiTrainConfig {
    pub kind: PpiModelKind,
    /// Use the structure embeddings (residue embeddings in the node input, pair embeddings on
    /// the graph's edges).
    pub embeddings: bool,
    /// Residues on either side in the node input.
    pub window: usize,
    pub hidden: usize,
    pub layers: usize,
    pub dropout: f64,
    pub learning_rate: f64,
    pub weight_decay: f32,
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation AUPRC.
    pub patience: usize,
    /// Chains per optimiser step.
    pub batch_chains: usize,
    /// Fraction of the training chains held out for validation.
    pub val_fraction: f64,
    pub seed: u64,
}

impl PpiTrainConfig {
    /// Defaults for a model kind.
    pub fn new(kind: PpiModelKind, embeddings: bool, seed: u64) -> Self {
        Self {
            kind,
            embeddings,
            window: 3,
            hidden: 128,
            layers: 2,
            dropout: 0.2,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            max_epochs: 40,
            patience: 6,
            batch_chains: 8,
            val_fraction: 0.15,
            seed,
        }
    }
}

/// A trained classifier with its threshold.
#[derive(Debug)]
pub struct TrainedPpi {
    pub net: PpiNet,
    pub config: PpiTrainConfig,
    /// Decision threshold on the probability: the MCC-best one on the validation carve-out.
    pub threshold: f32,
    /// Best validation AUPRC and the epoch (1-based) it was reached.
    pub val_auprc: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum PpiTrainError {
    #[error("too few training chains ({0}) for a validation carve-out")]
    TooFewChains(usize),
    #[error("the training chains have no interface residue")]
    NoPositives,
    #[error(transparent)]
    Compute(#[from] ComputeError),
}

struct Tensors {
    nodes: Tensor<2>,
    neighbour: Tensor<1, Int>,
    edges: Tensor<2>,
    mask: Tensor<2>,
    labels: Tensor<1>,
}

fn to_tensors(b: Batch, device: &Device) -> Tensors {
    let n = b.rows;
    Tensors {
        nodes: Tensor::from_data(TensorData::new(b.nodes, [n, b.node_width]), device),
        neighbour: Tensor::from_data(TensorData::new(b.neighbour, [n * b.k]), device),
        edges: Tensor::from_data(TensorData::new(b.edges, [n * b.k, b.edge_width]), device),
        mask: Tensor::from_data(TensorData::new(b.edge_mask, [n, b.k]), device),
        labels: Tensor::from_data(TensorData::new(b.labels, [n]), device),
    }
}

/// Interface probabilities of each chain (inference; `net` on a plain device).
pub async fn predict(
    net: &PpiNet,
    config: &PpiTrainConfig,
    chains: &[&PreparedChain],
    device: &Device,
) -> Result<Vec<Vec<f32>>, ComputeError> {
    let mut out = Vec::with_capacity(chains.len());
    for group in chains.chunks(16) {
        let b = batch(group, config.window, config.embeddings);
        let t = to_tensors(b, device);
        let p = read_f32(sigmoid(net.forward(t.nodes, t.neighbour, t.edges, t.mask))).await?;
        let mut at = 0;
        for ch in group {
            out.push(p[at..at + ch.len()].to_vec());
            at += ch.len();
        }
    }
    Ok(out)
}

/// Train on `chains` (a carve-out of them validates). `device` must be an autodiff device;
/// `progress(epoch, train_loss, val_auprc)` is called after every epoch.
pub async fn train(
    chains: &[PreparedChain],
    config: PpiTrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, f64, f64),
) -> Result<TrainedPpi, PpiTrainError> {
    if chains.len() < 4 {
        return Err(PpiTrainError::TooFewChains(chains.len()));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..chains.len()).collect();
    order.shuffle(&mut rng);
    let n_val =
        ((chains.len() as f64 * config.val_fraction).round() as usize).clamp(1, chains.len() - 1);
    let val: Vec<&PreparedChain> = order[..n_val].iter().map(|&i| &chains[i]).collect();
    let mut train_idx: Vec<usize> = order[n_val..].to_vec();
    let (pos, total) = train_idx.iter().fold((0usize, 0usize), |(p, t), &i| {
        (
            p + chains[i].labels.iter().filter(|&&y| y).count(),
            t + chains[i].len(),
        )
    });
    if pos == 0 {
        return Err(PpiTrainError::NoPositives);
    }
    let positive_weight = ((total - pos) as f32 / pos as f32).max(1.0);
    let plain = device.clone().without_autodiff();
    device.seed(config.seed);
    let first = batch(&[&chains[0]], config.window, config.embeddings);
    let mut net = PpiNetConfig {
        kind: config.kind,
        node_width: first.node_width,
        edge_width: first.edge_width,
        hidden: config.hidden,
        layers: config.layers,
        dropout: config.dropout,
    }
    .init(device);
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init();
    let val_labels: Vec<bool> = val.iter().flat_map(|c| c.labels.iter().copied()).collect();
    let mut best: Option<(f64, usize, PpiNet)> = None;
    let mut epochs_run = 0;
    for epoch in 1..=config.max_epochs {
        epochs_run = epoch;
        train_idx.shuffle(&mut rng);
        let (mut loss_sum, mut steps) = (0.0f64, 0usize);
        for group in train_idx.chunks(config.batch_chains) {
            let refs: Vec<&PreparedChain> = group.iter().map(|&i| &chains[i]).collect();
            let t = to_tensors(batch(&refs, config.window, config.embeddings), device);
            let logits = net.forward(t.nodes, t.neighbour, t.edges, t.mask);
            let loss = weighted_bce(logits, t.labels, positive_weight);
            loss_sum += read_f32(loss.clone())
                .await?
                .first()
                .copied()
                .unwrap_or(f32::NAN) as f64;
            steps += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optimizer.step(config.learning_rate, net, grads);
        }
        let valid = net.valid();
        let p: Vec<f32> = predict(&valid, &config, &val, &plain).await?.concat();
        let score = auprc(&p, &val_labels);
        progress(epoch, loss_sum / steps.max(1) as f64, score);
        let improved = best.as_ref().is_none_or(|(b, _, _)| score > *b);
        if improved {
            best = Some((score, epoch, valid));
        } else if best
            .as_ref()
            .is_some_and(|(_, e, _)| epoch - e >= config.patience)
        {
            break;
        }
    }
    let (val_auprc, best_epoch, net) = match best {
        Some(b) => b,
        None => (0.0, 0, net.valid()),
    };
    let p: Vec<f32> = predict(&net, &config, &val, &plain).await?.concat();
    let threshold = best_mcc_threshold(&p, &val_labels);
    Ok(TrainedPpi {
        net,
        config,
        threshold,
        val_auprc,
        best_epoch,
        epochs_run,
    })
}
