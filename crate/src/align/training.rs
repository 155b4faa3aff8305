//! Contrastive training of the tri-modal model on mixed batches: proteins with all three
//! modalities, sequence–structure pairs (chains without annotations) and sequence–text pairs
//! (Swiss-Prot entries without a structure). Each step draws some of each; every pairwise loss
//! uses the items of the batch that have both of its modalities.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use rand::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::loss::{info_nce, positive_mask};
use super::model::{
    AlignConfig, AlignError, AlignModel, AlignTrained, MASK_TOKEN, sequence_tokens, token_tensor,
};
use super::structure::{STRUCTURE_WINDOW, central_window, pool_features};
use crate::compute::{Compute, read_f32};
use crate::score::embed::chain_inputs;
use crate::score::network::{NormMode, Numerics, ScoreNet};

/// One protein for training: its sequence and whatever else it has.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignItem {
    /// Amino-acid letters.
    pub sequence: String,
    /// Structure tower output (`[structure_width]`), raw (standardised by the model's config).
    pub structure: Option<Vec<f32>>,
    /// C-alpha coordinates, one per residue of `sequence`: what stage 2 feeds the score network
    /// (stage 1 reads `structure` only).
    pub coordinates: Option<Arc<[[f32; 3]]>>,
    /// Indices into the text-vector table: its phrasings (empty: no text).
    pub texts: Vec<usize>,
    /// Items with the same function label: their texts are not each other's negatives.
    pub group: Option<u64>,
    /// What the item is known to be (interned GO ids and EC numbers), sorted: a text is a
    /// positive for it when the item has every fact the text states.
    pub facts: Vec<u32>,
}

/// Whether every element of sorted `small` is in sorted `large`.
pub fn is_subset(small: &[u32], large: &[u32]) -> bool {
    small.iter().all(|x| large.binary_search(x).is_ok())
}

/// The positive mask between items (rows) and the texts chosen for the same items (columns):
/// the diagonal, and every item that has all the facts a column's text states. `[B, B]`.
pub fn describes_mask(item_facts: &[&[u32]], text_facts: &[&[u32]]) -> Vec<f32> {
    let n = item_facts.len();
    let mut m = vec![0f32; n * n];
    for r in 0..n {
        for c in 0..n {
            let yes =
                r == c || (!text_facts[c].is_empty() && is_subset(text_facts[c], item_facts[r]));
            m[r * n + c] = if yes { 1.0 } else { 0.0 };
        }
    }
    m
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignTrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Items per step with all three modalities.
    pub triples: usize,
    /// Items per step with sequence and structure only.
    pub sequence_structure: usize,
    /// Items per step with sequence and text only.
    pub sequence_text: usize,
    /// AdamW learning rate and weight decay.
    pub learning_rate: f64,
    /// Where a cosine schedule takes the learning rate by the last step (`None`: constant).
    #[serde(default)]
    pub final_learning_rate: Option<f64>,
    /// Steps over which the learning rate rises linearly from 0 (a fresh optimiser's first
    /// steps move every weight by about the learning rate, whatever its gradient).
    #[serde(default)]
    pub warmup_steps: usize,
    pub weight_decay: f32,
    /// Loss weights: sequence–structure, sequence–text, structure–text.
    pub weight_sequence_structure: f32,
    pub weight_sequence_text: f32,
    pub weight_structure_text: f32,
    /// Intra-modal terms: two phrasings of a text; two views of a structure (stage 1: noise on
    /// its pooled vector; stage 2: two crops of the structure through the score network).
    pub weight_text_views: f32,
    pub weight_structure_views: f32,
    /// Two maskings of a sequence (doubles the sequence encoder's cost when > 0).
    pub weight_sequence_views: f32,
    /// Fraction of residues masked in training (and for the second view).
    pub mask_fraction: f64,
    /// Noise (in standard deviations) of the structure views (stage 1).
    pub structure_noise: f32,
    /// Gaussian noise (Å) on the C-alpha coordinates of the second crop (stage 2).
    #[serde(default = "half")]
    pub coordinate_noise: f32,
    /// Fraction of the text-bearing items of a batch drawn as near misses of the others (sharing
    /// a specific GO term or EC number, of another function): harder negatives than random ones.
    #[serde(default)]
    pub near_misses: f32,
    /// Random seed.
    pub seed: u64,
}

fn half() -> f32 {
    0.5
}

impl AlignTrainConfig {
    /// The learning rate of `step` (1-based): constant, or cosine from `learning_rate` at step 1
    /// to `final_learning_rate` at the last step; times `step / warmup_steps` during the warm-up.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        let warm = if step < self.warmup_steps {
            step as f64 / self.warmup_steps as f64
        } else {
            1.0
        };
        warm * match self.final_learning_rate {
            None => self.learning_rate,
            Some(last) => {
                let t = if self.steps > 1 {
                    (step.saturating_sub(1) as f64 / (self.steps - 1) as f64).min(1.0)
                } else {
                    1.0
                };
                last + (self.learning_rate - last) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

impl Default for AlignTrainConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            triples: 48,
            sequence_structure: 24,
            sequence_text: 24,
            learning_rate: 1e-3,
            final_learning_rate: None,
            warmup_steps: 0,
            weight_decay: 1e-4,
            weight_sequence_structure: 1.0,
            weight_sequence_text: 1.0,
            weight_structure_text: 1.0,
            weight_text_views: 0.2,
            weight_structure_views: 0.2,
            weight_sequence_views: 0.0,
            mask_fraction: 0.1,
            structure_noise: 0.3,
            coordinate_noise: 0.5,
            near_misses: 0.0,
            seed: 0,
        }
    }
}

/// Per-feature mean and standard deviation of the structure vectors of `items` (1 where flat).
pub fn structure_statistics(items: &[AlignItem], width: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f64; width];
    let mut square = vec![0f64; width];
    let mut n = 0usize;
    for v in items.iter().filter_map(|i| i.structure.as_ref()) {
        n += 1;
        for (k, &x) in v.iter().enumerate().take(width) {
            sum[k] += x as f64;
            square[k] += (x as f64) * (x as f64);
        }
    }
    let n = n.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sum
        .iter()
        .zip(&square)
        .map(|(s, q)| {
            let v = (q / n - (s / n) * (s / n)).max(0.0).sqrt() as f32;
            if v > 1e-6 { v } else { 1.0 }
        })
        .collect();
    (mean, std)
}

/// `slot += value`, where an empty slot is zero.
fn accumulate(slot: &mut Option<Tensor<1>>, value: Tensor<1>) {
    *slot = Some(match slot.take() {
        Some(x) => x + value,
        None => value,
    });
}

/// A random window of at most `max` residues, with `fraction` of them masked.
fn training_tokens(sequence: &str, max: usize, fraction: f64, rng: &mut StdRng) -> Vec<i64> {
    let len = sequence.len();
    let w = len.min(max);
    let start = if len > w {
        rng.random_range(0..=len - w)
    } else {
        0
    };
    let mut t = sequence_tokens(sequence, start, w);
    for x in &mut t {
        if rng.random_bool(fraction) {
            *x = MASK_TOKEN;
        }
    }
    t
}

/// One [`training_tokens`] draw per item, in order.
fn batch_tokens(
    batch: &[&AlignItem],
    max: usize,
    fraction: f64,
    rng: &mut StdRng,
) -> Vec<Vec<i64>> {
    batch
        .iter()
        .map(|i| training_tokens(&i.sequence, max, fraction, rng))
        .collect()
}

fn draw<'a>(pool: &[&'a AlignItem], n: usize, rng: &mut StdRng) -> Vec<&'a AlignItem> {
    if pool.is_empty() {
        return Vec::new();
    }
    (0..n)
        .map(|_| pool[rng.random_range(0..pool.len())])
        .collect()
}

/// Items that share a specific fact (a GO term or EC number that at most 2 % of the pool has)
/// without having the same function: each other's hardest negatives.
struct NearMisses {
    /// Pool indices by specific fact.
    by_fact: HashMap<u32, Vec<usize>>,
}

impl NearMisses {
    fn new(pool: &[&AlignItem]) -> Self {
        let mut by_fact: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, item) in pool.iter().enumerate() {
            for &f in &item.facts {
                by_fact.entry(f).or_default().push(i);
            }
        }
        let most = (pool.len() / 50).max(2);
        by_fact.retain(|_, members| (2..=most).contains(&members.len()));
        Self { by_fact }
    }

    /// An item of `pool` sharing a specific fact with `anchor` but not its function group.
    fn near<'a>(
        &self,
        pool: &[&'a AlignItem],
        anchor: &AlignItem,
        rng: &mut StdRng,
    ) -> Option<&'a AlignItem> {
        let mut facts: Vec<&Vec<usize>> = anchor
            .facts
            .iter()
            .filter_map(|f| self.by_fact.get(f))
            .collect();
        facts.shuffle(rng);
        for members in facts {
            let other: Vec<&'a AlignItem> = members
                .iter()
                .map(|&i| pool[i])
                .filter(|x| {
                    !std::ptr::eq(*x, anchor) && (x.group.is_none() || x.group != anchor.group)
                })
                .collect();
            if let Some(x) = other.choose(rng) {
                return Some(x);
            }
        }
        None
    }

    /// `n` items: `1 - fraction` of them at random, the rest near misses of those (random where
    /// an item has none).
    fn draw<'a>(
        &self,
        pool: &[&'a AlignItem],
        n: usize,
        fraction: f32,
        rng: &mut StdRng,
    ) -> Vec<&'a AlignItem> {
        if pool.is_empty() {
            return Vec::new();
        }
        let hard = ((n as f32 * fraction).round() as usize).min(n.saturating_sub(1));
        let mut out = draw(pool, n - hard, rng);
        for _ in 0..hard {
            let anchor = out[rng.random_range(0..n - hard)];
            let item = match self.near(pool, anchor, rng) {
                Some(x) => x,
                None => pool[rng.random_range(0..pool.len())],
            };
            out.push(item);
        }
        out
    }
}

/// Stage 2: the score network of the structure tower, trained through the pooling with the rest.
///
/// Its batch norms keep their running statistics (eval mode, as at inference); its convolutions
/// and conditional scales and shifts learn. Each structure item is read through its central
/// window of [`STRUCTURE_WINDOW`] residues (as at inference); the structure-view term compares
/// that with a random window of the same length, its coordinates jittered by
/// `coordinate_noise`.
#[derive(Debug)]
pub struct StructureTuning {
    /// The network, on `compute`'s (autodiff) device.
    pub network: ScoreNet,
    /// Where the inputs are built: the training device.
    pub compute: Compute,
    /// Noise level the embeddings are taken at (the embedder's default).
    pub level: usize,
    /// The network's learning rate (the schedule of the rest scales it alike).
    pub learning_rate: f64,
}

/// A window of at most [`STRUCTURE_WINDOW`] residues: the central one, or a random one.
fn structure_window(len: usize, rng: Option<&mut StdRng>) -> std::ops::Range<usize> {
    match rng {
        None => central_window(len, STRUCTURE_WINDOW),
        Some(rng) => {
            let w = len.min(STRUCTURE_WINDOW);
            let start = rng.random_range(0..=len - w);
            start..start + w
        }
    }
}

/// One window fed to the network: (item, its C-alphas, its residue letters).
type Window = (usize, Vec<[f32; 3]>, String);

/// Pooled, standardised structure-tower inputs of some items through the network being tuned:
/// `[n, structure_width]`, differentiable in the network. `noise`: (Å, rng) for a random,
/// jittered window instead of the central one.
async fn tuned_structure_rows(
    tuning: &StructureTuning,
    items: &[&AlignItem],
    mean: &Tensor<1>,
    std: &Tensor<1>,
    mut noise: Option<(f32, &mut StdRng)>,
) -> Result<Tensor<2>, AlignError> {
    let device = &tuning.compute.device;
    // Windows of one length go through the network together.
    // (item, C-alphas, residues) of each window, by window length.
    let mut by_length: BTreeMap<usize, Vec<Window>> = BTreeMap::new();
    for (k, item) in items.iter().enumerate() {
        let Some(ca) = &item.coordinates else {
            return Err(AlignError::Data(
                "stage 2 needs the coordinates of every structure item".into(),
            ));
        };
        if ca.len() != item.sequence.len() || ca.len() < 2 {
            return Err(AlignError::Data(format!(
                "a structure item has {} C-alpha positions for {} residues",
                ca.len(),
                item.sequence.len()
            )));
        }
        let range = structure_window(ca.len(), noise.as_mut().map(|(_, rng)| &mut **rng));
        let mut window: Vec<[f32; 3]> = ca[range.clone()].to_vec();
        if let Some((sigma, rng)) = noise.as_mut() {
            for x in window.iter_mut().flatten() {
                *x += rng.sample::<f32, _>(rand_distr::StandardNormal) * *sigma;
            }
        }
        let sequence: String = item
            .sequence
            .chars()
            .skip(range.start)
            .take(range.len())
            .collect();
        by_length
            .entry(range.len())
            .or_default()
            .push((k, window, sequence));
    }
    let mut pooled = Vec::new();
    let mut order = Vec::with_capacity(items.len());
    for group in by_length.values() {
        let mut inputs = Vec::with_capacity(group.len());
        for (k, ca, sequence) in group {
            inputs.push(chain_inputs(&tuning.compute, ca, sequence).await?);
            order.push(*k);
        }
        let levels = Tensor::<1, Int>::from_data(
            TensorData::new(vec![tuning.level as i64; group.len()], [group.len()]),
            device,
        );
        // Running statistics as at inference; the training arithmetic (`Numerics::Fast`: on
        // the CPU the convolutions as one autodiff operation on matrix products), whose
        // differences from inference's are float32 rounding.
        let out = tuning.network.forward_with(
            Tensor::cat(inputs, 0),
            levels,
            NormMode::Eval,
            Numerics::Fast,
        );
        pooled.push(pool_features(out.features));
    }
    // Back to the items' order.
    let mut position = vec![0i64; items.len()];
    for (row, &k) in order.iter().enumerate() {
        position[k] = row as i64;
    }
    let rows = Tensor::cat(pooled, 0).select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(position, [items.len()]), device),
    );
    Ok((rows - mean.clone().unsqueeze::<2>()) / std.clone().unsqueeze::<2>())
}

/// What one batch's loss terms read besides the batch: the text vectors and the facts they
/// state, the structure standardisation, the configurations and the device.
struct BatchData<'a> {
    texts: &'a [Vec<f32>],
    text_facts: &'a [Vec<u32>],
    mean: &'a [f32],
    std: &'a [f32],
    mean_tensor: &'a Tensor<1>,
    std_tensor: &'a Tensor<1>,
    model_config: &'a AlignConfig,
    config: &'a AlignTrainConfig,
    device: &'a Device,
}

/// The rows of a batch with a structure vector, with texts, and with both.
fn modality_rows(batch: &[&AlignItem]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let with_structure: Vec<usize> = (0..batch.len())
        .filter(|&k| batch[k].structure.is_some())
        .collect();
    let with_text: Vec<usize> = (0..batch.len())
        .filter(|&k| !batch[k].texts.is_empty())
        .collect();
    let both: Vec<usize> = with_structure
        .iter()
        .copied()
        .filter(|k| with_text.contains(k))
        .collect();
    (with_structure, with_text, both)
}

/// `rows` as an index tensor `[rows.len()]`.
fn index_tensor(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(
        TensorData::new(
            rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
            [rows.len()],
        ),
        device,
    )
}

/// The positives of an InfoNCE over `rows` (`[rows.len(), rows.len()]`): each row itself, and
/// with `by_group` the rows of its group.
fn group_mask(batch: &[&AlignItem], rows: &[usize], by_group: bool, device: &Device) -> Tensor<2> {
    let groups: Vec<Option<u64>> = rows
        .iter()
        .map(|&r| if by_group { batch[r].group } else { None })
        .collect();
    Tensor::<2>::from_data(
        TensorData::new(positive_mask(&groups), [rows.len(), rows.len()]),
        device,
    )
}

/// The standardised structure vectors of `rows` (`[rows.len(), width]`), with Gaussian noise of
/// standard deviation `noise` added (drawn from `rng` in row-major order) when it is positive.
fn standardised_structures(
    batch: &[&AlignItem],
    rows: &[usize],
    (mean, std): (&[f32], &[f32]),
    width: usize,
    noise: f32,
    rng: &mut StdRng,
    device: &Device,
) -> Tensor<2> {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for &k in rows {
        if let Some(v) = &batch[k].structure {
            for (c, &x) in v.iter().enumerate() {
                let z = (x - mean[c]) / std[c];
                let e: f32 = if noise > 0.0 {
                    rng.sample::<f32, _>(rand_distr::StandardNormal) * noise
                } else {
                    0.0
                };
                flat.push(z + e);
            }
        }
    }
    Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

/// Two different phrasings (text indices) per item of `rows` where it has two, the first drawn
/// from `rng`.
fn text_picks(batch: &[&AlignItem], rows: &[usize], rng: &mut StdRng) -> Vec<(usize, usize)> {
    rows.iter()
        .map(|&k| {
            let t = &batch[k].texts;
            let a = rng.random_range(0..t.len());
            (t[a], t[(a + 1) % t.len()])
        })
        .collect()
}

/// One batch's weighted loss terms `[seq–str, seq–text, str–text, views]` (a term is `None`
/// where the batch has too few items for it). Draws from `rng` in a fixed order: masked
/// tokens, text phrasings, structure noise or crops, the second sequence view.
async fn batch_terms(
    model: &AlignModel,
    batch: &[&AlignItem],
    data: &BatchData<'_>,
    tuning: Option<&StructureTuning>,
    rng: &mut StdRng,
) -> Result<[Option<Tensor<1>>; 4], AlignError> {
    let BatchData {
        texts,
        text_facts,
        mean,
        std,
        mean_tensor,
        std_tensor,
        model_config,
        config,
        device,
    } = *data;
    let width = model_config.structure_width;
    let tokens = batch_tokens(batch, model_config.max_sequence, config.mask_fraction, rng);
    let seq = model.embed_sequence(token_tensor(&tokens, device));
    let scale = model.scale();
    let (with_structure, with_text, both) = modality_rows(batch);
    let index = |rows: &[usize]| index_tensor(rows, device);
    let mask = |rows: &[usize], by_group: bool| group_mask(batch, rows, by_group, device);
    // Structure vectors (standardised), and a noisy second view for the intra-modal term.
    let structure_rows = |noise: f32, rng: &mut StdRng| {
        standardised_structures(
            batch,
            &with_structure,
            (mean, std),
            width,
            noise,
            rng,
            device,
        )
    };
    let picks = text_picks(batch, &with_text, rng);
    let text_rows = |view: usize| {
        let mut flat = Vec::with_capacity(with_text.len() * model_config.text_width);
        for p in &picks {
            flat.extend_from_slice(&texts[if view == 0 { p.0 } else { p.1 }]);
        }
        Tensor::<2>::from_data(
            TensorData::new(flat, [with_text.len(), model_config.text_width]),
            device,
        )
    };
    let describes = |rows: &[usize]| {
        let items: Vec<&[u32]> = rows.iter().map(|&k| batch[k].facts.as_slice()).collect();
        let stated: Vec<&[u32]> = rows
            .iter()
            .map(|k| {
                let at = with_text.iter().position(|x| x == k).unwrap_or(0);
                text_facts[picks[at].0].as_slice()
            })
            .collect();
        Tensor::<2>::from_data(
            TensorData::new(describes_mask(&items, &stated), [rows.len(), rows.len()]),
            device,
        )
    };
    let mut terms: [Option<Tensor<1>>; 4] = [None, None, None, None];
    let mut structure_embedded = None;
    if with_structure.len() >= 2 {
        let structure_items: Vec<&AlignItem> = with_structure.iter().map(|&k| batch[k]).collect();
        let rows = match tuning {
            Some(t) => {
                tuned_structure_rows(t, &structure_items, mean_tensor, std_tensor, None).await?
            }
            None => structure_rows(0.0, rng),
        };
        let s = model.embed_structure(rows);
        let loss = info_nce(
            seq.clone().select(0, index(&with_structure)),
            s.clone(),
            scale.clone(),
            mask(&with_structure, false),
        );
        terms[0] = Some(loss.mul_scalar(config.weight_sequence_structure));
        if config.weight_structure_views > 0.0 {
            let (s1, s2) = match tuning {
                // Two crops of the structure: the central window and a jittered random one.
                Some(t) => {
                    let crop = tuned_structure_rows(
                        t,
                        &structure_items,
                        mean_tensor,
                        std_tensor,
                        Some((config.coordinate_noise, rng)),
                    )
                    .await?;
                    (s.clone(), model.embed_structure(crop))
                }
                None => (
                    model.embed_structure(structure_rows(config.structure_noise, rng)),
                    model.embed_structure(structure_rows(config.structure_noise, rng)),
                ),
            };
            terms[3] = Some(
                info_nce(s1, s2, scale.clone(), mask(&with_structure, false))
                    .mul_scalar(config.weight_structure_views),
            );
        }
        structure_embedded = Some(s);
    }
    if with_text.len() >= 2 {
        let t = model.embed_text(text_rows(0));
        let loss = info_nce(
            seq.clone().select(0, index(&with_text)),
            t.clone(),
            scale.clone(),
            describes(&with_text),
        );
        terms[1] = Some(loss.mul_scalar(config.weight_sequence_text));
        if config.weight_text_views > 0.0 {
            let t2 = model.embed_text(text_rows(1));
            let v = info_nce(t.clone(), t2, scale.clone(), mask(&with_text, true))
                .mul_scalar(config.weight_text_views);
            accumulate(&mut terms[3], v);
        }
        if both.len() >= 2
            && let Some(s) = &structure_embedded
        {
            let pos_s: Vec<usize> = both
                .iter()
                .filter_map(|k| with_structure.iter().position(|x| x == k))
                .collect();
            let pos_t: Vec<usize> = both
                .iter()
                .filter_map(|k| with_text.iter().position(|x| x == k))
                .collect();
            let loss = info_nce(
                s.clone().select(0, index(&pos_s)),
                t.select(0, index(&pos_t)),
                scale.clone(),
                describes(&both),
            );
            terms[2] = Some(loss.mul_scalar(config.weight_structure_text));
        }
    }
    if config.weight_sequence_views > 0.0 {
        let second = batch_tokens(batch, model_config.max_sequence, config.mask_fraction, rng);
        let seq2 = model.embed_sequence(token_tensor(&second, device));
        let all: Vec<usize> = (0..batch.len()).collect();
        let v = info_nce(seq.clone(), seq2, scale.clone(), mask(&all, false))
            .mul_scalar(config.weight_sequence_views);
        accumulate(&mut terms[3], v);
    }
    Ok(terms)
}

/// Train the heads and the sequence encoder; the text tower is frozen (its outputs are inputs
/// here), and so is the structure tower unless `tuning` is given (stage 2). `texts` holds the text tower's vectors the items point into and
/// `text_facts` what each states (sorted).
/// `init`: a trained model to continue from (its weights and its structure standardisation are
/// kept; the optimiser starts afresh), or `None` for a new one from `model_config`.
/// `tuning`: stage 2, the score network trained too (it needs `init`, a stage-1 model, whose
/// structure standardisation it keeps); it is returned trained.
/// `progress(step, losses)` is called after every step with
/// `[total, seq–str, seq–text, str–text, views]`.
#[allow(clippy::too_many_arguments)]
pub async fn train(
    items: &[AlignItem],
    texts: &[Vec<f32>],
    text_facts: &[Vec<u32>],
    model_config: AlignConfig,
    init: Option<AlignTrained>,
    mut tuning: Option<StructureTuning>,
    config: &AlignTrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, [f64; 5]),
) -> Result<(AlignTrained, Option<ScoreNet>), AlignError> {
    if tuning.is_some() && init.is_none() {
        return Err(AlignError::Data(
            "stage 2 (tuning the score network) continues a stage-1 model".into(),
        ));
    }
    let triples: Vec<&AlignItem> = items
        .iter()
        .filter(|i| i.structure.is_some() && !i.texts.is_empty())
        .collect();
    let seq_str: Vec<&AlignItem> = items
        .iter()
        .filter(|i| i.structure.is_some() && i.texts.is_empty())
        .collect();
    let seq_text: Vec<&AlignItem> = items
        .iter()
        .filter(|i| i.structure.is_none() && !i.texts.is_empty())
        .collect();
    if triples.len() < 2 && (seq_str.len() < 2 || seq_text.len() < 2) {
        return Err(AlignError::Data(format!(
            "too few items: {} with all three modalities, {} sequence–structure, {} sequence–text",
            triples.len(),
            seq_str.len(),
            seq_text.len()
        )));
    }
    if text_facts.len() != texts.len() {
        return Err(AlignError::Data("one fact list per text is needed".into()));
    }
    if let Some(bad) = texts.iter().find(|t| t.len() != model_config.text_width) {
        return Err(AlignError::Data(format!(
            "a text vector has {} values, not {}",
            bad.len(),
            model_config.text_width
        )));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    device.seed(config.seed);
    let (mut model, mean, std) = match init {
        Some(t) => {
            if t.config != model_config {
                return Err(AlignError::Data(format!(
                    "the model to continue from has another configuration ({:?}) than this run ({:?})",
                    t.config, model_config
                )));
            }
            (t.model.train(), t.structure_mean, t.structure_std)
        }
        None => {
            let (mean, std) = structure_statistics(items, model_config.structure_width);
            (model_config.init(device), mean, std)
        }
    };
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init();
    // The score network: Adam without weight decay, as it was pretrained.
    let mut network_optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
    let mean_tensor = Tensor::<1>::from_data(TensorData::new(mean.clone(), [mean.len()]), device);
    let std_tensor = Tensor::<1>::from_data(TensorData::new(std.clone(), [std.len()]), device);
    let near_triples = NearMisses::new(&triples);
    let near_seq_text = NearMisses::new(&seq_text);
    for step in 1..=config.steps {
        let mut batch = near_triples.draw(&triples, config.triples, config.near_misses, &mut rng);
        batch.extend(draw(&seq_str, config.sequence_structure, &mut rng));
        batch.extend(near_seq_text.draw(
            &seq_text,
            config.sequence_text,
            config.near_misses,
            &mut rng,
        ));
        let data = BatchData {
            texts,
            text_facts,
            mean: &mean,
            std: &std,
            mean_tensor: &mean_tensor,
            std_tensor: &std_tensor,
            model_config: &model_config,
            config,
            device,
        };
        let terms = batch_terms(&model, &batch, &data, tuning.as_ref(), &mut rng).await?;
        let mut losses = [0f64; 5];
        let mut total: Option<Tensor<1>> = None;
        for (k, t) in terms.into_iter().enumerate() {
            if let Some(t) = t {
                losses[k + 1] = read_f32(t.clone())
                    .await?
                    .first()
                    .copied()
                    .unwrap_or(f32::NAN) as f64;
                accumulate(&mut total, t);
            }
        }
        let Some(total) = total else {
            return Err(AlignError::Data("a batch had no pair of modalities".into()));
        };
        losses[0] = losses[1..].iter().sum();
        if !losses[0].is_finite() {
            return Err(AlignError::Data(format!(
                "the loss is not finite at step {step}"
            )));
        }
        let mut grads = total.backward();
        let rate = config.learning_rate_at(step);
        if let Some(t) = tuning.as_mut() {
            let network_grads = GradientsParams::from_module(&mut grads, &t.network);
            let network_rate = if config.learning_rate > 0.0 {
                t.learning_rate * rate / config.learning_rate
            } else {
                t.learning_rate
            };
            t.network = network_optimizer.step(network_rate, t.network.clone(), network_grads);
        }
        let grads = GradientsParams::from_grads(grads, &model);
        model = optimizer.step(rate, model, grads);
        progress(step, losses);
    }
    Ok((
        AlignTrained {
            model: model.valid(),
            config: model_config,
            structure_mean: mean,
            structure_std: std,
        },
        tuning.map(|t| t.network.valid()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(facts: &[u32], group: u64) -> AlignItem {
        AlignItem {
            sequence: "MKV".into(),
            structure: None,
            coordinates: None,
            texts: vec![0],
            group: Some(group),
            facts: facts.to_vec(),
        }
    }

    #[test]
    fn near_misses_share_a_specific_fact_but_not_the_function() {
        // 200 items all with the general fact 0; items 0–2 also share the specific fact 1 (0 and 1
        // in one function group, 2 in another); the rest have their own fact and group.
        let mut items: Vec<AlignItem> = (0..200u32)
            .map(|i| item(&[0, 100 + i], u64::from(i)))
            .collect();
        items[0] = item(&[0, 1], 7);
        items[1] = item(&[0, 1], 7);
        items[2] = item(&[0, 1], 8);
        let pool: Vec<&AlignItem> = items.iter().collect();
        let near = NearMisses::new(&pool);
        assert!(
            !near.by_fact.contains_key(&0),
            "a general fact is not specific"
        );
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            // Item 0's near miss is item 2 (item 1 has the same function, the rest share only 0).
            let x = near.near(&pool, pool[0], &mut rng).expect("a near miss");
            assert!(std::ptr::eq(x, pool[2]));
            let y = near.near(&pool, pool[2], &mut rng).expect("a near miss");
            assert!(std::ptr::eq(y, pool[0]) || std::ptr::eq(y, pool[1]));
        }
        assert!(near.near(&pool, pool[50], &mut rng).is_none());
        // A batch: 6 random items and 2 drawn as near misses (or at random where there are none).
        let batch = near.draw(&pool, 8, 0.25, &mut rng);
        assert_eq!(batch.len(), 8);
        assert_eq!(near.draw(&pool, 8, 0.0, &mut rng).len(), 8);
        assert_eq!(near.draw(&pool, 1, 1.0, &mut rng).len(), 1);
    }

    /// A helix-like trace of `n` C-alphas (3.8 Å apart), turned by `phase`.
    fn trace(n: usize, phase: f32) -> Arc<[[f32; 3]]> {
        (0..n)
            .map(|i| {
                let t = i as f32 * 1.745 + phase;
                [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f32]
            })
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn stage_two_pools_as_inference_does() {
        // The tuned path's arithmetic (`Numerics::Fast`) against inference's (`Exact`, the
        // arithmetic the stage-1 vectors were pooled with): the same pooled rows to rounding.
        let compute = Compute::cpu().autodiff();
        let device = compute.device.clone();
        let network = crate::score::network::ScoreNetConfig::new()
            .with_hidden_channels(8)
            .with_bottleneck_channels(4)
            .with_blocks(2)
            .init(&device);
        let items: Vec<AlignItem> = [("MKVLAAGIVEKL", 0.0), ("GSHMTTPQRL", 1.0)]
            .iter()
            .enumerate()
            .map(|(k, (s, phase))| AlignItem {
                sequence: (*s).to_string(),
                structure: Some(vec![0.0; 16]),
                coordinates: Some(trace(s.len(), *phase)),
                texts: vec![k],
                group: None,
                facts: Vec::new(),
            })
            .collect();
        let tuning = StructureTuning {
            network: network.clone(),
            compute: compute.clone(),
            level: 30,
            learning_rate: 1e-3,
        };
        let refs: Vec<&AlignItem> = items.iter().collect();
        let zeros = Tensor::<1>::zeros([16], &device);
        let ones = Tensor::<1>::ones([16], &device);
        let rows = pollster::block_on(tuned_structure_rows(&tuning, &refs, &zeros, &ones, None))
            .expect("tuned rows");
        let got = pollster::block_on(read_f32(rows.reshape([-1]))).expect("f32");
        let mut want = Vec::new();
        for item in &items {
            let ca = item.coordinates.as_deref().expect("coordinates");
            let inputs =
                pollster::block_on(chain_inputs(&compute, ca, &item.sequence)).expect("inputs");
            let levels = Tensor::<1, Int>::from_data(TensorData::new(vec![30i64], [1]), &device);
            let features = network.forward(inputs, levels, NormMode::Eval).features;
            want.extend(
                pollster::block_on(read_f32(pool_features(features).reshape([-1]))).expect("f32"),
            );
        }
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * scale, "{g} vs {w} (scale {scale})");
        }
    }

    #[test]
    fn stage_two_trains_the_score_network_through_the_pooling() {
        let compute = Compute::cpu().autodiff();
        let device = compute.device.clone();
        // A small score network (2 blocks of 8 channels): structure width 16.
        let net_config = crate::score::network::ScoreNetConfig::new()
            .with_hidden_channels(8)
            .with_bottleneck_channels(4)
            .with_blocks(2);
        let network = net_config.init(&device);
        let before = pollster::block_on(read_f32(network.conv_in.weight.val())).expect("f32");
        let sequences = ["MKVLAAGIVE", "GSHMTTPQRL", "AAAAKKKKEE", "PPGWYYLVND"];
        let items: Vec<AlignItem> = sequences
            .iter()
            .enumerate()
            .map(|(k, s)| AlignItem {
                // Lengths 10, 9, 8, 7: the network reads windows of several lengths.
                sequence: s[..s.len() - k].to_string(),
                structure: Some(vec![0.0; 16]),
                coordinates: Some(trace(s.len() - k, k as f32)),
                texts: vec![k],
                group: Some(k as u64),
                facts: vec![k as u32],
            })
            .collect();
        let texts: Vec<Vec<f32>> = (0..4)
            .map(|k| (0..8).map(|c| ((k * 8 + c) as f32 * 0.7).sin()).collect())
            .collect();
        let text_facts: Vec<Vec<u32>> = (0..4).map(|k| vec![k]).collect();
        let model_config = AlignConfig {
            dim: 8,
            head_hidden: 16,
            sequence_embedding: 4,
            sequence_channels: 8,
            dilations: vec![2],
            structure_width: 16,
            text_width: 8,
            ..AlignConfig::default()
        };
        let stage_one = || AlignTrained {
            model: model_config.init(&device),
            config: model_config.clone(),
            structure_mean: vec![0.0; 16],
            structure_std: vec![1.0; 16],
        };
        let config = AlignTrainConfig {
            steps: 2,
            triples: 4,
            sequence_structure: 0,
            sequence_text: 0,
            ..AlignTrainConfig::default()
        };
        // Stage 2 of `items` from `init` with `network`; the losses of each step.
        let run = |items: &[AlignItem], init: Option<AlignTrained>, network: ScoreNet| {
            let mut losses = Vec::new();
            let tuning = StructureTuning {
                network,
                compute: compute.clone(),
                level: 60,
                learning_rate: 1e-2,
            };
            pollster::block_on(train(
                items,
                &texts,
                &text_facts,
                model_config.clone(),
                init,
                Some(tuning),
                &config,
                &device,
                |_, l| losses.push(l),
            ))
            .map(|(_, tuned)| (tuned, losses))
        };
        // Items whose coordinates do not match their sequence are refused, not misread.
        let mut bad = items.clone();
        bad[0].coordinates = Some(trace(3, 0.0));
        let err = run(&bad, Some(stage_one()), net_config.init(&device))
            .expect_err("mismatched coordinates");
        assert!(err.to_string().contains("C-alpha"), "{err}");
        // Stage 2 without a stage-1 model is refused.
        let err = run(&items, None, net_config.init(&device)).expect_err("no stage-1 model");
        assert!(err.to_string().contains("stage-1"), "{err}");
        let (tuned, losses) = run(&items, Some(stage_one()), network).expect("stage 2 trains");
        assert_eq!(losses.len(), 2);
        // Every term ran, the crop views included, and is finite.
        for l in &losses {
            assert!(l.iter().all(|x| x.is_finite() && *x > 0.0), "{l:?}");
        }
        let tuned = tuned.expect("the tuned network");
        let after = pollster::block_on(read_f32(tuned.conv_in.weight.val())).expect("f32");
        let changed = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| (*a - *b).abs() > 1e-6)
            .count();
        assert!(
            changed > before.len() / 2,
            "the score network learnt: {changed} of {} input weights changed",
            before.len()
        );
    }

    #[test]
    fn the_learning_rate_is_constant_or_falls_on_a_cosine() {
        let mut c = AlignTrainConfig {
            steps: 101,
            ..AlignTrainConfig::default()
        };
        assert_eq!(c.learning_rate_at(1), 1e-3);
        assert_eq!(c.learning_rate_at(101), 1e-3);
        c.final_learning_rate = Some(1e-4);
        assert!((c.learning_rate_at(1) - 1e-3).abs() < 1e-12);
        assert!((c.learning_rate_at(51) - 5.5e-4).abs() < 1e-12);
        assert!((c.learning_rate_at(101) - 1e-4).abs() < 1e-12);
        let rates: Vec<f64> = (1..=101).map(|s| c.learning_rate_at(s)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
        // Past the end (never called so) it stays at the final rate.
        assert!((c.learning_rate_at(500) - 1e-4).abs() < 1e-12);
        // A warm-up of 4 steps: 1/4, 2/4, 3/4 of the schedule, then the schedule.
        c.warmup_steps = 4;
        c.final_learning_rate = None;
        assert!((c.learning_rate_at(1) - 2.5e-4).abs() < 1e-12);
        assert!((c.learning_rate_at(3) - 7.5e-4).abs() < 1e-12);
        assert_eq!(c.learning_rate_at(4), 1e-3);
    }

    #[test]
    fn a_text_describes_every_item_with_its_facts() {
        assert!(is_subset(&[2, 5], &[1, 2, 3, 5]));
        assert!(!is_subset(&[2, 4], &[1, 2, 3, 5]));
        assert!(is_subset(&[], &[1]));
        // Items: {1, 2}, {1}, {3}; texts chosen for them state {1, 2}, {1}, {3}.
        let items: [&[u32]; 3] = [&[1, 2], &[1], &[3]];
        let texts: [&[u32]; 3] = [&[1, 2], &[1], &[3]];
        // Text 1 ("1") describes item 0 too; text 0 ("1 and 2") does not describe item 1.
        assert_eq!(
            describes_mask(&items, &texts),
            vec![1., 1., 0., 0., 1., 0., 0., 0., 1.]
        );
        // A text that states nothing describes only its own item.
        let empty: [&[u32]; 3] = [&[], &[], &[]];
        assert_eq!(
            describes_mask(&items, &empty),
            vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]
        );
    }
}
