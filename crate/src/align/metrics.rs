//! Retrieval and function-prediction metrics: recall at k, mean average precision, and the
//! protein-centric Fmax of CAFA.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Retrieval quality over a set of queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Fraction of queries with a hit at rank 1.
    pub r1: f64,
    /// Fraction of queries with a hit in the top 10.
    pub r10: f64,
    /// Mean over queries of the average precision of the whole ranking.
    pub map: f64,
}

/// Candidate indices by decreasing score (ties: lower index first, so results are reproducible).
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Average precision of a ranking against a relevance predicate (0 when nothing is relevant).
pub fn average_precision(order: &[usize], relevant: impl Fn(usize) -> bool) -> f64 {
    let (mut hits, mut sum) = (0usize, 0.0f64);
    for (rank, &c) in order.iter().enumerate() {
        if relevant(c) {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    if hits == 0 { 0.0 } else { sum / hits as f64 }
}

/// R@1, R@10 and MAP of queries over candidates: `scores(q)` gives the candidates' scores of query
/// `q`, `relevant(q, c)` whether candidate `c` is a hit for it.
pub fn retrieval(
    queries: usize,
    mut scores: impl FnMut(usize) -> Vec<f32>,
    relevant: impl Fn(usize, usize) -> bool,
) -> Retrieval {
    if queries == 0 {
        return Retrieval::default();
    }
    let (mut r1, mut r10, mut map) = (0usize, 0usize, 0.0f64);
    for q in 0..queries {
        let order = ranking(&scores(q));
        if order.first().is_some_and(|&c| relevant(q, c)) {
            r1 += 1;
        }
        if order.iter().take(10).any(|&c| relevant(q, c)) {
            r10 += 1;
        }
        map += average_precision(&order, |c| relevant(q, c));
    }
    let n = queries as f64;
    Retrieval {
        r1: r1 as f64 / n,
        r10: r10 as f64 / n,
        map: map / n,
    }
}

/// CAFA's protein-centric Fmax.
///
/// `predictions[i]` maps terms to scores in [0, 1] for protein i (already propagated), `truth[i]`
/// its true terms (propagated, roots removed). At each threshold t, precision is averaged over
/// the proteins with at least one term scored ≥ t, recall over all proteins; Fmax is the largest
/// harmonic mean over the thresholds 0.01, 0.02, …, 1.00. Proteins without true terms are skipped.
pub fn fmax(predictions: &[HashMap<String, f32>], truth: &[BTreeSet<String>]) -> f64 {
    let pairs: Vec<(&HashMap<String, f32>, &BTreeSet<String>)> = predictions
        .iter()
        .zip(truth)
        .filter(|(_, t)| !t.is_empty())
        .collect();
    if pairs.is_empty() {
        return 0.0;
    }
    let mut best = 0.0f64;
    for step in 1..=100 {
        let t = step as f32 / 100.0;
        let (mut precision, mut covered, mut recall) = (0.0f64, 0usize, 0.0f64);
        for (p, truth) in &pairs {
            let predicted: Vec<&String> =
                p.iter().filter(|(_, s)| **s >= t).map(|(k, _)| k).collect();
            let correct = predicted
                .iter()
                .filter(|k| truth.contains(k.as_str()))
                .count();
            if !predicted.is_empty() {
                covered += 1;
                precision += correct as f64 / predicted.len() as f64;
            }
            recall += correct as f64 / truth.len() as f64;
        }
        if covered == 0 {
            continue;
        }
        let p = precision / covered as f64;
        let r = recall / pairs.len() as f64;
        if p + r > 0.0 {
            best = best.max(2.0 * p * r / (p + r));
        }
    }
    best
}

/// How well raw vectors place proteins of one function near each other, leave one out (no
/// model is trained on them: a probe of what a representation carries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NeighbourProbe {
    /// Proteins with at least one other protein of their function set (the retrieval queries).
    pub queries: usize,
    /// Protein → protein retrieval over the others (a hit: the same function set).
    pub retrieval: Retrieval,
    /// Fmax of the terms of the `neighbours` nearest others, similarity-weighted
    /// ([`super::search::transfer`]), over every protein.
    pub fmax_transfer: f64,
}

/// [`NeighbourProbe`] of `vectors` (one per protein, any width): each channel is standardised
/// over the proteins, each vector scaled to unit length, similarity is the cosine.
/// `same(i, j)`: whether proteins i and j have the same function set; `truth[i]`: protein i's
/// propagated terms (roots removed).
pub fn neighbour_probe(
    vectors: &[Vec<f32>],
    same: impl Fn(usize, usize) -> bool,
    truth: &[BTreeSet<String>],
    neighbours: usize,
) -> NeighbourProbe {
    let n = vectors.len();
    let width = vectors.first().map_or(0, Vec::len);
    let mut mean = vec![0f64; width];
    let mut square = vec![0f64; width];
    for v in vectors {
        for (c, &x) in v.iter().enumerate().take(width) {
            mean[c] += f64::from(x);
            square[c] += f64::from(x) * f64::from(x);
        }
    }
    let count = n.max(1) as f64;
    let std: Vec<f64> = mean
        .iter()
        .zip(&square)
        .map(|(m, s)| {
            (s / count - (m / count) * (m / count))
                .max(0.0)
                .sqrt()
                .max(1e-8)
        })
        .collect();
    let unit: Vec<Vec<f32>> = vectors
        .iter()
        .map(|v| {
            let z: Vec<f64> = (0..width)
                .map(|c| (f64::from(v.get(c).copied().unwrap_or(0.0)) - mean[c] / count) / std[c])
                .collect();
            let norm = z.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            z.iter().map(|x| (x / norm) as f32).collect()
        })
        .collect();
    let cosine =
        |a: usize, b: usize| -> f32 { unit[a].iter().zip(&unit[b]).map(|(x, y)| x * y).sum() };
    let queries: Vec<usize> = (0..n)
        .filter(|&q| (0..n).any(|c| c != q && same(q, c)))
        .collect();
    let retrieval = retrieval(
        queries.len(),
        |k| {
            let q = queries[k];
            (0..n)
                .map(|c| {
                    if c == q {
                        f32::NEG_INFINITY
                    } else {
                        cosine(q, c)
                    }
                })
                .collect()
        },
        |k, c| c != queries[k] && same(queries[k], c),
    );
    let predictions: Vec<HashMap<String, f32>> = (0..n)
        .map(|q| {
            let mut near: Vec<(f32, usize)> = (0..n)
                .filter(|&c| c != q)
                .map(|c| (cosine(q, c), c))
                .collect();
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            near.truncate(neighbours.max(1));
            super::search::transfer(near.iter().map(|&(s, c)| (s, &truth[c])))
                .into_iter()
                .collect()
        })
        .collect();
    NeighbourProbe {
        queries: queries.len(),
        retrieval,
        fmax_transfer: fmax(&predictions, truth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_probe_finds_a_clean_grouping_and_not_a_shuffled_one() {
        // Two functions, four proteins each; the vectors cluster by function (plus a constant
        // offset per channel, which standardisation removes).
        let truth: Vec<BTreeSet<String>> = (0..8)
            .map(|i| BTreeSet::from([if i < 4 { "GO:1" } else { "GO:2" }.to_string()]))
            .collect();
        let vectors: Vec<Vec<f32>> = (0..8)
            .map(|i| {
                let side = if i < 4 { 1.0 } else { -1.0 };
                vec![
                    100.0 + side + 0.01 * i as f32,
                    5.0 - side + 0.01 * (i % 2) as f32,
                ]
            })
            .collect();
        let same = |a: usize, b: usize| truth[a] == truth[b];
        let p = neighbour_probe(&vectors, same, &truth, 3);
        assert_eq!(p.queries, 8);
        assert!((p.retrieval.map - 1.0).abs() < 1e-9, "{p:?}");
        assert!((p.fmax_transfer - 1.0).abs() < 1e-9, "{p:?}");
        // Interleaved: each protein's nearest neighbours are of the other function.
        let mixed: Vec<Vec<f32>> = (0..8)
            .map(|i| vectors[(i % 2) * 4 + i / 2].clone())
            .collect();
        let q = neighbour_probe(&mixed, same, &truth, 3);
        assert!(q.retrieval.map < 0.75, "{q:?}");
        assert!(q.fmax_transfer < p.fmax_transfer, "{q:?}");
    }

    #[test]
    fn retrieval_on_a_hand_made_case() {
        // Two queries over three candidates; query 0's hits {0}, query 1's hits {1, 2}.
        let scores = [vec![0.1, 0.9, 0.5], vec![0.2, 0.9, 0.1]];
        let hits = [vec![0], vec![1, 2]];
        let r = retrieval(2, |q| scores[q].clone(), |q, c| hits[q].contains(&c));
        // Query 0: ranking 1, 2, 0 → hit at rank 3: AP 1/3; query 1: ranking 1, 0, 2 → ranks 1, 3:
        // AP (1 + 2/3) / 2 = 5/6.
        assert_eq!(r.r1, 0.5);
        assert_eq!(r.r10, 1.0);
        assert!((r.map - (1.0 / 3.0 + 5.0 / 6.0) / 2.0).abs() < 1e-12);
        assert_eq!(ranking(&[0.5, 0.5, 0.7]), vec![2, 0, 1]);
        assert_eq!(average_precision(&[0, 1], |_| false), 0.0);
    }

    #[test]
    fn fmax_on_a_hand_made_case() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let map = |v: &[(&str, f32)]| v.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        let truth = vec![set(&["a", "b"]), set(&["c"])];
        // Protein 0: a 0.9 (right), x 0.6 (wrong); protein 1: c 0.3 (right).
        let pred = vec![map(&[("a", 0.9), ("x", 0.6)]), map(&[("c", 0.3)])];
        // t ≤ 0.3: P = (1/2 + 1)/2 = 0.75, R = (1/2 + 1)/2 = 0.75 → F 0.75.
        // 0.3 < t ≤ 0.6: P = (1/2)/1, R = (1/2 + 0)/2 = 0.25 → 0.333; 0.6 < t ≤ 0.9: P = 1, R = 0.25 → 0.4.
        assert!((fmax(&pred, &truth) - 0.75).abs() < 1e-12);
        // Perfect predictions give 1; nothing predicted gives 0.
        let perfect = vec![map(&[("a", 1.0), ("b", 1.0)]), map(&[("c", 1.0)])];
        assert!((fmax(&perfect, &truth) - 1.0).abs() < 1e-12);
        assert_eq!(fmax(&[HashMap::new(), HashMap::new()], &truth), 0.0);
    }
}
