//! The protein–protein interaction site benchmark (GraphPPIS split: Train_335, Test_60,
//! Test_315): reading, per-residue features, spatial neighbours and classifier batches.

use nalgebra::Vector3;
use serde::Deserialize;

use crate::io::{json_lines, maybe_gunzip};
use crate::profile::PROFILE_FEATURES;
use crate::structure::ReadError;

/// One benchmark chain.
#[derive(Debug, Clone, PartialEq)]
pub struct PpiChain {
    /// Chain id (`2v9tA`).
    pub id: String,
    /// One-letter sequence.
    pub sequence: String,
    /// Interface residue (true) or not, one per residue.
    pub labels: Vec<bool>,
    /// C-alpha coordinates; `None` for residues without one (or every residue, where the source
    /// has no coordinates for the chain).
    pub ca: Vec<Option<[f32; 3]>>,
}

impl PpiChain {
    /// Residues.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the chain has no residue.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Indices of the residues that have a C-alpha.
    pub fn present(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.ca[i].is_some()).collect()
    }
}

#[derive(Deserialize)]
struct Line {
    id: String,
    seq: String,
    label: String,
    ca: Option<Vec<Option<[f32; 3]>>>,
}

/// Read a benchmark file (JSON lines, plain or gzip). A line that does not parse, or whose
/// labels or coordinates disagree in length with the sequence, is an error naming the line.
pub fn read_ppi_jsonl(bytes: &[u8]) -> Result<Vec<PpiChain>, ReadError> {
    let data = maybe_gunzip(bytes, 1 << 30)?;
    let text = std::str::from_utf8(&data)
        .map_err(|e| ReadError::NotStructure(format!("the JSON lines are not UTF-8 ({e})")))?;
    let mut out = Vec::new();
    for (line_no, raw) in json_lines(text) {
        let bad = |message: String| ReadError::Json {
            line: line_no,
            message,
        };
        let line: Line = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let n = line.seq.chars().count();
        if line.label.len() != n {
            return Err(bad(format!(
                "{}: {} labels for {n} residues",
                line.id,
                line.label.len()
            )));
        }
        let labels = line
            .label
            .bytes()
            .map(|b| match b {
                b'0' => Ok(false),
                b'1' => Ok(true),
                other => Err(bad(format!(
                    "{}: label '{}' is not 0 or 1",
                    line.id, other as char
                ))),
            })
            .collect::<Result<Vec<bool>, _>>()?;
        let ca = match line.ca {
            Some(ca) if ca.len() == n => ca,
            Some(ca) => {
                return Err(bad(format!(
                    "{}: {} coordinates for {n} residues",
                    line.id,
                    ca.len()
                )));
            }
            None => vec![None; n],
        };
        out.push(PpiChain {
            id: line.id,
            sequence: line.seq,
            labels,
            ca,
        });
    }
    if out.is_empty() {
        return Err(ReadError::NotStructure(
            "the file holds no benchmark chain".into(),
        ));
    }
    Ok(out)
}

/// Per-residue features that need no model: one-hot residue type (20), whether the residue has
/// a C-alpha, neighbour counts within 8, 12 and 16 Å (÷ 10, 20, 40), relative depth (distance
/// to the centroid ÷ the largest such distance), relative sequence position, and the log chain
/// length.
pub const BASE_FEATURES: usize = 27;

const AMINO: &[u8; 20] = b"ACDEFGHIKLMNPQRSTVWY";

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The mean of some points (the origin for none).
fn centroid(present: &[[f32; 3]]) -> [f32; 3] {
    let mut c = [0.0f32; 3];
    for p in present {
        for k in 0..3 {
            c[k] += p[k] / present.len() as f32;
        }
    }
    c
}

/// The [`BASE_FEATURES`] of every residue, `[L][BASE_FEATURES]`.
pub fn base_features(chain: &PpiChain) -> Vec<[f32; BASE_FEATURES]> {
    let n = chain.len();
    let present: Vec<[f32; 3]> = chain.ca.iter().flatten().copied().collect();
    let centroid = centroid(&present);
    let max_depth = present
        .iter()
        .map(|p| dist(*p, centroid))
        .fold(0.0f32, f32::max)
        .max(1e-3);
    let log_len = (n.max(1) as f32).ln() / 7.0;
    chain
        .sequence
        .bytes()
        .enumerate()
        .map(|(i, aa)| {
            let mut f = [0.0f32; BASE_FEATURES];
            if let Some(k) = AMINO.iter().position(|&a| a == aa) {
                f[k] = 1.0;
            }
            if let Some(Some(x)) = chain.ca.get(i) {
                f[20] = 1.0;
                let mut counts = [0usize; 3];
                for p in &present {
                    let d = dist(*x, *p);
                    for (c, cut) in counts.iter_mut().zip([8.0, 12.0, 16.0]) {
                        if d < cut && d > 0.0 {
                            *c += 1;
                        }
                    }
                }
                f[21] = counts[0] as f32 / 10.0;
                f[22] = counts[1] as f32 / 20.0;
                f[23] = counts[2] as f32 / 40.0;
                f[24] = dist(*x, centroid) / max_depth;
            }
            f[25] = if n > 1 {
                i as f32 / (n - 1) as f32
            } else {
                0.0
            };
            f[26] = log_len;
            f
        })
        .collect()
}

/// Exposure features from the C-alpha trace alone: half-sphere exposure (Hamelryck 2005,
/// HSE-CA: C-alphas within 13 Å on the side of the approximate side-chain direction — the
/// bisector pointing away from the two sequence neighbours — and on the other side, ÷ 20), the
/// length of the mean unit vector to those C-alphas (0 when they surround the residue evenly, near
/// 1 when they all lie on one side: a residue on the surface), and the cosine between the
/// side-chain direction and the direction out of the chain's centroid.
pub const EXPOSURE_FEATURES: usize = 4;

/// Radius of the half spheres, Å.
const HSE_RADIUS: f32 = 13.0;

/// The [`EXPOSURE_FEATURES`] of every residue (zeros without a C-alpha), `[L][4]`.
pub fn exposure_features(ca: &[Option<[f32; 3]>]) -> Vec<[f32; EXPOSURE_FEATURES]> {
    let present: Vec<Vector3<f32>> = ca.iter().flatten().map(|&p| p.into()).collect();
    let points: Vec<[f32; 3]> = ca.iter().flatten().copied().collect();
    let centroid = Vector3::from(centroid(&points));
    (0..ca.len())
        .map(|i| {
            let mut f = [0.0f32; EXPOSURE_FEATURES];
            let Some(x) = ca[i].map(Vector3::from) else {
                return f;
            };
            // Away from the sequence neighbours that have a C-alpha.
            let away: Vector3<f32> = [i.checked_sub(1), Some(i + 1)]
                .into_iter()
                .flatten()
                .filter_map(|j| ca.get(j).copied().flatten())
                .filter_map(|y| (x - Vector3::from(y)).try_normalize(1e-4))
                .sum();
            let side = away.try_normalize(1e-4);
            let (mut up, mut down, mut n) = (0usize, 0usize, 0usize);
            let mut pull = Vector3::zeros();
            for p in &present {
                let v = p - x;
                let d = v.norm();
                if d <= 1e-4 || d >= HSE_RADIUS {
                    continue;
                }
                n += 1;
                pull += v / d;
                match side {
                    Some(u) if v.dot(&u) > 0.0 => up += 1,
                    Some(_) => down += 1,
                    None => {}
                }
            }
            if side.is_none() {
                // No direction (an isolated residue): the count split evenly.
                (up, down) = (n / 2, n - n / 2);
            }
            f[0] = up as f32 / 20.0;
            f[1] = down as f32 / 20.0;
            if n > 0 {
                f[2] = pull.norm() / n as f32;
            }
            if let (Some(u), Some(out)) = (side, (x - centroid).try_normalize(1e-4)) {
                f[3] = u.dot(&out);
            }
            f
        })
        .collect()
}

/// Per-residue features from the score model's implausibility (its score magnitude ‖g_i‖ on
/// each C-alpha, `crate::score::refine::residue_plausibility`).
pub const PLAUSIBILITY_FEATURES: usize = 2;

/// Plausibility features of a chain from ‖g_i‖ of its residues with a C-alpha (`norms`, in the
/// order of [`PpiChain::present`]): `ln(1 + ‖g_i‖)` and `ln(1 + mean ‖g_j‖)` over the residues
/// within `radius` Å (the page's neighbourhood mean); zeros for residues without a C-alpha.
/// The classifiers see them standardised ([`PlausibilityScaler`]).
pub fn plausibility_features(
    ca: &[Option<[f32; 3]>],
    norms: &[f32],
    radius: f32,
) -> Vec<[f32; PLAUSIBILITY_FEATURES]> {
    let present: Vec<usize> = (0..ca.len()).filter(|&i| ca[i].is_some()).collect();
    let xyz: Vec<[f32; 3]> = ca.iter().flatten().copied().collect();
    let mut out = vec![[0.0; PLAUSIBILITY_FEATURES]; ca.len()];
    if norms.len() != xyz.len() {
        return out;
    }
    let smooth = crate::quality::neighbourhood_mean(&xyz, norms, radius);
    for (p, &i) in present.iter().enumerate() {
        out[i] = [norms[p].max(0.0).ln_1p(), smooth[p].max(0.0).ln_1p()];
    }
    out
}

/// Per-feature mean and standard deviation of the plausibility features over the residues with
/// a C-alpha of a training set, to standardise them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlausibilityScaler {
    pub moments: Vec<(f32, f32)>,
}

impl PlausibilityScaler {
    /// Statistics over the training chains that have plausibility features.
    pub fn fit(chains: &[PreparedChain]) -> Option<Self> {
        let rows = chains.iter().flat_map(|ch| {
            let f = ch.plausibility.as_deref().unwrap_or(&[]);
            (0..f.len())
                .filter(move |&i| ch.base[i][20] > 0.0)
                .map(move |i| f[i].to_vec())
        });
        let moments = moments(rows, PLAUSIBILITY_FEATURES);
        chains
            .iter()
            .any(|c| c.plausibility.is_some())
            .then_some(Self { moments })
    }

    /// Standardise a chain's plausibility features in place (residues without a C-alpha stay 0).
    pub fn apply(&self, chain: &mut PreparedChain) {
        if let Some(f) = chain.plausibility.as_mut() {
            for (row, base) in f.iter_mut().zip(&chain.base) {
                if base[20] > 0.0 {
                    for (v, (m, s)) in row.iter_mut().zip(&self.moments) {
                        *v = (*v - m) / s;
                    }
                }
            }
        }
    }
}

/// Spatial neighbours of each residue: the `k` nearest residues with a C-alpha (not itself),
/// `[L][k]`; rows are padded with the residue itself and `valid = false` where fewer exist
/// (residues without a C-alpha have none).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    /// Neighbour index, `[L * k]`.
    pub index: Vec<u32>,
    /// C-alpha distance (Å), `[L * k]`.
    pub distance: Vec<f32>,
    /// Whether the slot holds a real neighbour, `[L * k]`.
    pub valid: Vec<bool>,
}

/// The `k` nearest neighbours of every residue (ties by index).
pub fn neighbours(ca: &[Option<[f32; 3]>], k: usize) -> Neighbours {
    let n = ca.len();
    let mut out = Neighbours {
        k,
        index: Vec::with_capacity(n * k),
        distance: Vec::with_capacity(n * k),
        valid: Vec::with_capacity(n * k),
    };
    let mut cand: Vec<(f32, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        cand.clear();
        if let Some(x) = ca[i] {
            for (j, p) in ca.iter().enumerate() {
                if let (true, Some(p)) = (j != i, p) {
                    cand.push((dist(x, *p), j));
                }
            }
            cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        for slot in 0..k {
            match cand.get(slot) {
                Some(&(d, j)) => {
                    out.index.push(j as u32);
                    out.distance.push(d);
                    out.valid.push(true);
                }
                None => {
                    out.index.push(i as u32);
                    out.distance.push(0.0);
                    out.valid.push(false);
                }
            }
        }
    }
    out
}

/// Everything a classifier sees of one chain.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedChain {
    pub id: String,
    pub labels: Vec<bool>,
    /// `[L][BASE_FEATURES]`.
    pub base: Vec<[f32; BASE_FEATURES]>,
    /// Residue embedding `[L * C]` (zeros for residues without a C-alpha), if computed.
    pub residue_embedding: Option<Vec<f32>>,
    pub neighbours: Neighbours,
    /// Pair embedding of each neighbour slot, `e_ij` for j the slot's neighbour, `[L * k * C]`.
    pub edge_embedding: Option<Vec<f32>>,
    /// Embedding channels C (0 without embeddings).
    pub channels: usize,
    /// Sequence profile `[L][PROFILE_FEATURES]` (see [`crate::profile`]), if computed; it joins
    /// the base features in the window.
    pub profile: Option<Vec<[f32; PROFILE_FEATURES]>>,
    /// Exposure features `[L][EXPOSURE_FEATURES]`, if asked for; they join the base features.
    pub exposure: Option<Vec<[f32; EXPOSURE_FEATURES]>>,
    /// The score model's implausibility `[L][PLAUSIBILITY_FEATURES]` (see
    /// [`plausibility_features`]), if asked for; it joins the base features after the exposure.
    pub plausibility: Option<Vec<[f32; PLAUSIBILITY_FEATURES]>>,
}

impl PreparedChain {
    /// Residues.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the chain has no residue.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl PreparedChain {
    /// Replace the residue embedding (the pair embedding averaged over every residue j, as the
    /// published model defines it) by its average over the residue's spatial neighbours only:
    /// `r_i = mean_j e_ij` over the valid neighbour slots of `i` (the `k` nearest C-alphas), so
    /// that it describes the residue's surroundings rather than the whole chain. Residues with no
    /// neighbour get zeros. Nothing changes without edge embeddings.
    pub fn use_neighbourhood_embedding(&mut self) {
        let (Some(edge), c, k) = (&self.edge_embedding, self.channels, self.neighbours.k) else {
            return;
        };
        if c == 0 {
            return;
        }
        let mut out = vec![0.0f32; self.len() * c];
        for (i, row) in out.chunks_exact_mut(c).enumerate() {
            let slots: Vec<usize> = (i * k..(i + 1) * k)
                .filter(|&s| self.neighbours.valid[s])
                .collect();
            for &s in &slots {
                for (o, v) in row.iter_mut().zip(&edge[s * c..(s + 1) * c]) {
                    *o += v;
                }
            }
            if !slots.is_empty() {
                let n = slots.len() as f32;
                row.iter_mut().for_each(|o| *o /= n);
            }
        }
        self.residue_embedding = Some(out);
    }
}

/// Per-channel mean and standard deviation of the residue and pair embeddings over a training
/// set, to standardise them.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardiser {
    pub residue: Vec<(f32, f32)>,
    pub edge: Vec<(f32, f32)>,
}

fn moments(chunks: impl Iterator<Item = Vec<f32>>, c: usize) -> Vec<(f32, f32)> {
    let mut sum = vec![0.0f64; c];
    let mut sq = vec![0.0f64; c];
    let mut n = 0usize;
    for row in chunks {
        for (k, v) in row.iter().enumerate() {
            sum[k] += *v as f64;
            sq[k] += (*v as f64) * (*v as f64);
        }
        n += 1;
    }
    let n = n.max(1) as f64;
    sum.iter()
        .zip(&sq)
        .map(|(s, q)| {
            let m = s / n;
            let var = (q / n - m * m).max(0.0);
            (m as f32, (var.sqrt() as f32).max(1e-6))
        })
        .collect()
}

impl Standardiser {
    /// Statistics over the residues with a C-alpha (and real neighbour slots) of `chains`.
    pub fn fit(chains: &[PreparedChain]) -> Option<Self> {
        let c = chains.iter().find(|ch| ch.channels > 0)?.channels;
        let residue = moments(
            chains.iter().flat_map(|ch| {
                let emb = ch.residue_embedding.as_deref().unwrap_or(&[]);
                (0..ch.len())
                    .filter(move |&i| ch.base[i][20] > 0.0 && !emb.is_empty())
                    .map(move |i| emb[i * c..(i + 1) * c].to_vec())
            }),
            c,
        );
        let edge = moments(
            chains.iter().flat_map(|ch| {
                let emb = ch.edge_embedding.as_deref().unwrap_or(&[]);
                (0..ch.neighbours.valid.len())
                    .filter(move |&s| ch.neighbours.valid[s] && !emb.is_empty())
                    .map(move |s| emb[s * c..(s + 1) * c].to_vec())
            }),
            c,
        );
        Some(Self { residue, edge })
    }

    /// Standardise a chain's embeddings in place (missing residues and slots stay zero).
    pub fn apply(&self, chain: &mut PreparedChain) {
        let c = chain.channels;
        if let Some(emb) = chain.residue_embedding.as_mut() {
            for i in 0..chain.base.len() {
                if chain.base[i][20] > 0.0 {
                    for (v, (m, s)) in emb[i * c..(i + 1) * c].iter_mut().zip(&self.residue) {
                        *v = (*v - m) / s;
                    }
                }
            }
        }
        if let Some(emb) = chain.edge_embedding.as_mut() {
            for s in 0..chain.neighbours.valid.len() {
                if chain.neighbours.valid[s] {
                    for (v, (m, sd)) in emb[s * c..(s + 1) * c].iter_mut().zip(&self.edge) {
                        *v = (*v - m) / sd;
                    }
                }
            }
        }
    }
}

/// Radial basis encoding of neighbour distances: 8 Gaussians, centres 2–16 Å, width 2 Å.
pub const DISTANCE_RBF: usize = 8;

fn rbf(d: f32) -> [f32; DISTANCE_RBF] {
    let mut out = [0.0; DISTANCE_RBF];
    for (k, o) in out.iter_mut().enumerate() {
        let c = 2.0 + 2.0 * k as f32;
        *o = (-((d - c) / 2.0).powi(2)).exp();
    }
    out
}

/// Inputs of a batch of chains, row-major, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Residues N.
    pub rows: usize,
    /// Node input `[N, node_width]`: the window of base features (and profiles) around each
    /// residue, its embedding, then the chain's mean base features (profile) and embedding.
    pub nodes: Vec<f32>,
    pub node_width: usize,
    /// Neighbour slots `[N * k]`, as row indices into this batch.
    pub neighbour: Vec<i64>,
    /// Edge input `[N * k, edge_width]`: distance RBF, then the pair embedding.
    pub edges: Vec<f32>,
    pub edge_width: usize,
    /// 1 for a real neighbour, `[N, k]`.
    pub edge_mask: Vec<f32>,
    pub k: usize,
    /// Labels `[N]` (0/1).
    pub labels: Vec<f32>,
}

/// Append row `i` of optional per-residue features to `v` (zeros where there is none).
fn extend_row<const N: usize>(v: &mut Vec<f32>, rows: Option<&[[f32; N]]>, i: usize) {
    match rows.and_then(|r| r.get(i)) {
        Some(row) => v.extend_from_slice(row),
        None => v.extend(std::iter::repeat_n(0.0, N)),
    }
}

/// Build a batch: the base features (and profile, where the chains have one) of `window`
/// residues on either side (zero-padded at the ends), then — only if `embeddings` — the
/// residue's own embedding (the embedding already describes its surroundings; a window of them
/// would multiply the inputs by 2·window + 1 for 335 training chains), then the chain's mean
/// base features, profile (and embedding). Either every chain of a batch has a profile or none;
/// the same for exposure features, which follow the profile, and plausibility features, which
/// follow them.
pub fn batch(chains: &[&PreparedChain], window: usize, embeddings: bool) -> Batch {
    let c = chains.first().map(|ch| ch.channels).unwrap_or(0);
    let embeddings = embeddings && c > 0;
    let ce = if embeddings { c } else { 0 };
    let profiles = chains.iter().all(|ch| ch.profile.is_some()) && !chains.is_empty();
    let exposures = chains.iter().all(|ch| ch.exposure.is_some()) && !chains.is_empty();
    let plausible = chains.iter().all(|ch| ch.plausibility.is_some()) && !chains.is_empty();
    let per_residue = BASE_FEATURES
        + if profiles { PROFILE_FEATURES } else { 0 }
        + if exposures { EXPOSURE_FEATURES } else { 0 }
        + if plausible { PLAUSIBILITY_FEATURES } else { 0 };
    let node_width = per_residue * (2 * window + 1) + ce + per_residue + ce;
    let k = chains.first().map(|ch| ch.neighbours.k).unwrap_or(0);
    let edge_width = DISTANCE_RBF + ce;
    let rows: usize = chains.iter().map(|ch| ch.len()).sum();
    let mut b = Batch {
        rows,
        nodes: Vec::with_capacity(rows * node_width),
        node_width,
        neighbour: Vec::with_capacity(rows * k),
        edges: Vec::with_capacity(rows * k * edge_width),
        edge_width,
        edge_mask: Vec::with_capacity(rows * k),
        k,
        labels: Vec::with_capacity(rows),
    };
    let mut offset = 0usize;
    for ch in chains {
        let n = ch.len();
        let zeros = vec![0.0f32; ce];
        let emb = |i: usize| -> &[f32] {
            match &ch.residue_embedding {
                Some(e) if embeddings => &e[i * c..(i + 1) * c],
                _ => &zeros,
            }
        };
        let residue = |i: usize| -> Vec<f32> {
            let mut v = ch.base[i].to_vec();
            if profiles {
                extend_row(&mut v, ch.profile.as_deref(), i);
            }
            if exposures {
                extend_row(&mut v, ch.exposure.as_deref(), i);
            }
            if plausible {
                extend_row(&mut v, ch.plausibility.as_deref(), i);
            }
            v
        };
        let features: Vec<Vec<f32>> = (0..n).map(residue).collect();
        let mut mean = vec![0.0f32; per_residue + ce];
        for (i, f) in features.iter().enumerate() {
            for (m, v) in mean.iter_mut().zip(f.iter().chain(emb(i))) {
                *m += v / n.max(1) as f32;
            }
        }
        for i in 0..n {
            for d in -(window as isize)..=(window as isize) {
                let j = i as isize + d;
                if j >= 0 && (j as usize) < n {
                    b.nodes.extend_from_slice(&features[j as usize]);
                } else {
                    b.nodes.extend(std::iter::repeat_n(0.0, per_residue));
                }
            }
            b.nodes.extend_from_slice(emb(i));
            b.nodes.extend_from_slice(&mean);
            for s in i * k..(i + 1) * k {
                b.neighbour
                    .push((offset + ch.neighbours.index[s] as usize) as i64);
                let valid = ch.neighbours.valid[s];
                b.edge_mask.push(if valid { 1.0 } else { 0.0 });
                if valid {
                    b.edges.extend_from_slice(&rbf(ch.neighbours.distance[s]));
                } else {
                    b.edges.extend([0.0; DISTANCE_RBF]);
                }
                if embeddings {
                    match (&ch.edge_embedding, valid) {
                        (Some(e), true) => b.edges.extend_from_slice(&e[s * c..(s + 1) * c]),
                        _ => b.edges.extend(std::iter::repeat_n(0.0, c)),
                    }
                }
            }
            b.labels.push(if ch.labels[i] { 1.0 } else { 0.0 });
        }
        offset += n;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> PpiChain {
        PpiChain {
            id: "t".into(),
            sequence: "ACDX".into(),
            labels: vec![false, true, false, true],
            ca: vec![
                Some([0.0, 0.0, 0.0]),
                Some([3.8, 0.0, 0.0]),
                None,
                Some([3.8, 3.8, 0.0]),
            ],
        }
    }

    #[test]
    fn reads_the_benchmark_format_and_rejects_bad_lines() {
        let ok = br#"{"id":"1abcA","set":"Test_60","seq":"AC","label":"01","ca":[[0,0,0],null]}
{"id":"2abcA","set":"Test_60","seq":"AC","label":"10","ca":null}"#;
        let chains = read_ppi_jsonl(ok).expect("valid");
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0].labels, vec![false, true]);
        assert_eq!(chains[0].ca[1], None);
        assert_eq!(chains[1].ca, vec![None, None]);
        for bad in [
            &br#"{"id":"x","seq":"AC","label":"0","ca":null}"#[..],
            br#"{"id":"x","seq":"AC","label":"02","ca":null}"#,
            br#"{"id":"x","seq":"AC","label":"01","ca":[[0,0,0]]}"#,
            b"not json",
            b"",
        ] {
            let e = read_ppi_jsonl(bad).expect_err("invalid");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn features_and_neighbours() {
        let ch = toy();
        let f = base_features(&ch);
        assert_eq!(f[0][0], 1.0); // A
        assert_eq!(f[3][..20].iter().sum::<f32>(), 0.0); // X
        assert_eq!(f[2][20], 0.0); // no C-alpha
        assert_eq!(f[0][21], 0.2); // 2 neighbours within 8 Å, ÷ 10
        let nb = neighbours(&ch.ca, 3);
        // Residue 0: 1 (3.8 Å), 3 (5.37 Å), then padding.
        assert_eq!(&nb.index[0..3], &[1, 3, 0]);
        assert_eq!(&nb.valid[0..3], &[true, true, false]);
        // Residue 2 has no C-alpha: no neighbours.
        assert!(nb.valid[6..9].iter().all(|v| !v));
    }

    #[test]
    fn batch_layout() {
        let ch = toy();
        let p = PreparedChain {
            id: ch.id.clone(),
            labels: ch.labels.clone(),
            base: base_features(&ch),
            residue_embedding: Some(vec![1.0; 4 * 2]),
            neighbours: neighbours(&ch.ca, 2),
            edge_embedding: Some(vec![2.0; 4 * 2 * 2]),
            channels: 2,
            profile: None,
            exposure: None,
            plausibility: None,
        };
        let b = batch(&[&p, &p], 1, true);
        assert_eq!(b.rows, 8);
        assert_eq!(b.node_width, BASE_FEATURES * 3 + 2 + BASE_FEATURES + 2);
        assert_eq!(b.nodes.len(), 8 * b.node_width);
        // The second chain's neighbour indices are offset by the first chain's length.
        assert_eq!(b.neighbour[8], 4 + 1);
        assert_eq!(b.edge_width, DISTANCE_RBF + 2);
        // Window padding: residue 0's left neighbour is zeros; its own embedding follows the
        // window.
        assert!(b.nodes[..BASE_FEATURES].iter().all(|&v| v == 0.0));
        assert_eq!(
            &b.nodes[BASE_FEATURES * 3..BASE_FEATURES * 3 + 2],
            &[1.0, 1.0]
        );
        let without = batch(&[&p], 1, false);
        assert_eq!(without.node_width, BASE_FEATURES * 4);
        assert_eq!(without.edge_width, DISTANCE_RBF);
        // A profile joins the base features in the window and the chain mean.
        let mut q = p.clone();
        q.profile = Some(vec![[0.5; PROFILE_FEATURES]; 4]);
        let with = batch(&[&q], 1, false);
        let per = BASE_FEATURES + PROFILE_FEATURES;
        assert_eq!(with.node_width, per * 4);
        // Residue 0's own block (the window's middle) ends in its profile.
        assert_eq!(with.nodes[2 * per - 1], 0.5);
        assert_eq!(
            with.nodes[per + BASE_FEATURES - 1],
            p.base[0][BASE_FEATURES - 1]
        );
        // Mixed batches fall back to no profile.
        assert_eq!(batch(&[&q, &p], 1, false).node_width, BASE_FEATURES * 4);
        // Exposure features follow the profile.
        q.exposure = Some(vec![[0.25; EXPOSURE_FEATURES]; 4]);
        let with = batch(&[&q], 1, false);
        let per = BASE_FEATURES + PROFILE_FEATURES + EXPOSURE_FEATURES;
        assert_eq!(with.node_width, per * 4);
        assert_eq!(with.nodes[2 * per - 1], 0.25);
        assert_eq!(with.nodes[2 * per - EXPOSURE_FEATURES - 1], 0.5);
        // Plausibility features follow the exposure.
        q.plausibility = Some(vec![[-1.5; PLAUSIBILITY_FEATURES]; 4]);
        let with = batch(&[&q], 1, false);
        let per = per + PLAUSIBILITY_FEATURES;
        assert_eq!(with.node_width, per * 4);
        assert_eq!(with.nodes[2 * per - 1], -1.5);
        assert_eq!(with.nodes[2 * per - PLAUSIBILITY_FEATURES - 1], 0.25);
    }

    #[test]
    fn neighbourhood_embedding_averages_the_neighbour_slots() {
        let ch = toy();
        let nb = neighbours(&ch.ca, 2);
        // Edge embeddings: slot s holds [s, 10 s].
        let edge: Vec<f32> = (0..4 * 2)
            .flat_map(|s| [s as f32, 10.0 * s as f32])
            .collect();
        let mut p = PreparedChain {
            id: ch.id.clone(),
            labels: ch.labels.clone(),
            base: base_features(&ch),
            residue_embedding: Some(vec![7.0; 4 * 2]),
            neighbours: nb.clone(),
            edge_embedding: Some(edge),
            channels: 2,
            profile: None,
            exposure: None,
            plausibility: None,
        };
        p.use_neighbourhood_embedding();
        let r = p.residue_embedding.clone().expect("set");
        for i in 0..4 {
            let slots: Vec<usize> = (i * 2..i * 2 + 2).filter(|&s| nb.valid[s]).collect();
            let mean = if slots.is_empty() {
                0.0
            } else {
                slots.iter().sum::<usize>() as f32 / slots.len() as f32
            };
            assert_eq!(r[i * 2], mean, "residue {i}");
            assert_eq!(r[i * 2 + 1], 10.0 * mean, "residue {i}");
        }
        // Residue 2 has no C-alpha, hence no neighbours: zeros.
        assert_eq!(&r[4..6], &[0.0, 0.0]);
        // Without edge embeddings nothing changes.
        let mut q = p.clone();
        q.edge_embedding = None;
        q.residue_embedding = Some(vec![7.0; 8]);
        q.use_neighbourhood_embedding();
        assert_eq!(q.residue_embedding, Some(vec![7.0; 8]));
    }

    #[test]
    fn plausibility_features_and_their_scaling() {
        let ch = toy();
        // Residues 0, 1, 3 have C-alphas (3.8, 5.4 and 3.8 Å apart); residue 2 has none.
        let f = plausibility_features(&ch.ca, &[1.0, 3.0, 5.0], 4.0);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0][0], 2.0f32.ln());
        assert_eq!(f[3][0], 6.0f32.ln());
        // Within 4 Å of residue 0: itself and residue 1 (3.8 Å), not residue 3 (5.37 Å).
        assert!((f[0][1] - 3.0f32.ln()).abs() < 1e-6, "{:?}", f[0]);
        assert_eq!(f[2], [0.0; PLAUSIBILITY_FEATURES]);
        // A norm count that does not match the C-alphas gives zeros, not a panic.
        assert!(
            plausibility_features(&ch.ca, &[1.0], 4.0)
                .iter()
                .all(|r| r == &[0.0; 2])
        );
        let mut p = PreparedChain {
            id: ch.id.clone(),
            labels: ch.labels.clone(),
            base: base_features(&ch),
            residue_embedding: None,
            neighbours: neighbours(&ch.ca, 2),
            edge_embedding: None,
            channels: 0,
            profile: None,
            exposure: None,
            plausibility: Some(f),
        };
        let s = PlausibilityScaler::fit(std::slice::from_ref(&p)).expect("has features");
        s.apply(&mut p);
        let g = p.plausibility.expect("kept");
        let mean: f32 = [0, 1, 3].iter().map(|&i| g[i][0]).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-5, "{g:?}");
        assert_eq!(g[2], [0.0; PLAUSIBILITY_FEATURES]);
    }

    #[test]
    fn half_sphere_exposure_sees_which_side_the_neighbours_are_on() {
        // A straight-ish strand along x at y = 0 (residues 0–4, kinked at 2 so it has a side-chain
        // direction), and a cluster of 6 C-alphas above it (y = 5) and none below.
        let mut ca: Vec<Option<[f32; 3]>> = vec![
            Some([-7.6, 0.0, 0.0]),
            Some([-3.8, 0.0, 0.0]),
            Some([0.0, -1.0, 0.0]),
            Some([3.8, 0.0, 0.0]),
            Some([7.6, 0.0, 0.0]),
        ];
        ca.extend((0..6).map(|k| Some([k as f32 - 2.5, 5.0, 1.0])));
        ca.push(None);
        let f = exposure_features(&ca);
        assert_eq!(f.len(), 12);
        // Residue 2 is kinked down (−y), so its side-chain side ("up") is −y: the other four
        // strand C-alphas and the 6 of the cluster all lie on the far side.
        let (up, down) = (f[2][0] * 20.0, f[2][1] * 20.0);
        assert_eq!(up.round(), 0.0, "{:?}", f[2]);
        assert_eq!(down.round(), 10.0, "{:?}", f[2]);
        // Everything lies on one side of it: the mean unit vector is long.
        assert!(f[2][2] > 0.5, "{:?}", f[2]);
        // A residue without a C-alpha has no exposure features.
        assert_eq!(f[11], [0.0; EXPOSURE_FEATURES]);
        // An isolated residue (no sequence neighbour with a C-alpha) splits its count evenly.
        let lone = exposure_features(&[
            Some([0.0; 3]),
            None,
            Some([1.0, 2.0, 2.0]),
            Some([-1.0, -2.0, -2.0]),
        ]);
        assert_eq!(lone[0][0], lone[0][1]);
        assert_eq!(lone[0][3], 0.0);
    }
}
