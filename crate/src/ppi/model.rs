//! Per-residue interface classifiers over the benchmark features (and, optionally, the score
//! model's embeddings):
//!
//! - `Window`: DeepPPISP in spirit — the features of a sequence window around each residue and
//!   the chain's mean features (global context), through an MLP.
//! - `Graph`: the same node input, then message passing over the k nearest residues in space,
//!   whose edges carry the distance and, with embeddings, the residue-pair embedding e_ij
//!   (the representation the paper found strongest for this task).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, relu};
use serde::{Deserialize, Serialize};

/// Which classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PpiModelKind {
    Window,
    Graph,
}

/// The network: input layer, then one hidden layer (window) or message-passing layers (graph).
#[derive(Module, Debug)]
pub struct PpiNet {
    input: Linear,
    hidden: Vec<Linear>,
    messages: Vec<Linear>,
    updates: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
}

/// Shapes and sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpiNetConfig {
    pub kind: PpiModelKind,
    pub node_width: usize,
    pub edge_width: usize,
    pub hidden: usize,
    /// Message-passing layers (graph) or hidden layers (window).
    pub layers: usize,
    pub dropout: f64,
}

impl PpiNetConfig {
    pub fn init(&self, device: &Device) -> PpiNet {
        let h = self.hidden;
        let (hidden, messages, updates) = match self.kind {
            PpiModelKind::Window => (
                (0..self.layers)
                    .map(|_| LinearConfig::new(h, h).init(device))
                    .collect(),
                Vec::new(),
                Vec::new(),
            ),
            PpiModelKind::Graph => (
                Vec::new(),
                (0..self.layers)
                    .map(|_| LinearConfig::new(h + self.edge_width, h).init(device))
                    .collect(),
                (0..self.layers)
                    .map(|_| LinearConfig::new(2 * h, h).init(device))
                    .collect(),
            ),
        };
        PpiNet {
            input: LinearConfig::new(self.node_width, h).init(device),
            hidden,
            messages,
            updates,
            output: LinearConfig::new(h, 1).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl PpiNet {
    /// Interface logits.
    ///
    /// - `nodes`: `[N, node_width]`
    /// - `neighbour`: `[N * k]`, row indices into `nodes`
    /// - `edges`: `[N * k, edge_width]`
    /// - `edge_mask`: `[N, k]`, 1 for real neighbours
    /// - output: `[N]`
    pub fn forward(
        &self,
        nodes: Tensor<2>,
        neighbour: Tensor<1, Int>,
        edges: Tensor<2>,
        edge_mask: Tensor<2>,
    ) -> Tensor<1> {
        let [n, _] = nodes.dims();
        let [_, k] = edge_mask.dims();
        let mut h = self.dropout.forward(relu(self.input.forward(nodes)));
        for layer in &self.hidden {
            h = self.dropout.forward(relu(layer.forward(h)));
        }
        if !self.messages.is_empty() {
            let mask = edge_mask.clone().reshape([n, k, 1]);
            let count = edge_mask.sum_dim(1).add_scalar(1e-6).reshape([n, 1]);
            for (message, update) in self.messages.iter().zip(&self.updates) {
                let hj = h.clone().select(0, neighbour.clone());
                let m = relu(message.forward(Tensor::cat(vec![hj, edges.clone()], 1)));
                let hidden = m.dims()[1];
                let agg = (m.reshape([n, k, hidden]) * mask.clone())
                    .sum_dim(1)
                    .reshape([n, hidden])
                    / count.clone();
                let u = relu(update.forward(Tensor::cat(vec![h.clone(), agg], 1)));
                h = self.dropout.forward(h + u);
            }
        }
        let out = self.output.forward(h);
        out.reshape([n])
    }
}

/// Class-weighted binary cross-entropy on logits: `−(w·y·log σ(z) + (1−y)·log σ(−z))`, mean.
///
/// - `logits`, `labels`: `[N]`
pub fn weighted_bce(logits: Tensor<1>, labels: Tensor<1>, positive_weight: f32) -> Tensor<1> {
    let pos = log_sigmoid(logits.clone()) * labels.clone().mul_scalar(positive_weight);
    let neg = log_sigmoid(logits.neg()) * labels.neg().add_scalar(1.0);
    (pos + neg).neg().mean()
}
