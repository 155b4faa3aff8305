//! Evaluating the shared space on function: cross-modal retrieval, and GO molecular-function
//! prediction by the model (zero-shot from term names, transfer from neighbours) and by
//! baselines (random, naive term frequency, nearest sequence). Every predictor gives each
//! protein a map of propagated terms to scores in [0, 1], for [`super::metrics::fmax`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::prelude::*;
use rand::rngs::StdRng;

use super::data::{MF_ROOT, Ontology};
use super::metrics::{Retrieval, retrieval};
use super::search::transfer;
use crate::sequence::{KmerIndex, local_identity};

/// One protein's predicted terms and their scores.
pub type Predictions = HashMap<String, f32>;

/// An annotated reference protein (a training chain): what the baselines and the transfer
/// predictor draw terms from.
#[derive(Debug, Clone)]
pub struct Reference<'a> {
    /// Its name (a protein is never its own reference).
    pub name: &'a str,
    /// Its sequence.
    pub sequence: &'a str,
    /// Its molecular-function terms, propagated, the root removed.
    pub terms: BTreeSet<String>,
}

/// A protein's molecular-function terms propagated over the ontology, the root removed.
pub fn propagated_function(ontology: &Ontology, function: &[String]) -> BTreeSet<String> {
    let mut p = ontology.propagate(function);
    p.remove(MF_ROOT);
    p
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Text → protein and protein → text retrieval between `proteins[i]` and `texts[i]` (unit
/// vectors); `hit(q, c)`: whether item c answers query q.
pub fn cross_modal(
    proteins: &[Vec<f32>],
    texts: &[Vec<f32>],
    hit: impl Fn(usize, usize) -> bool + Copy,
) -> (Retrieval, Retrieval) {
    let n = proteins.len().min(texts.len());
    let t2p = retrieval(
        n,
        |q| proteins.iter().map(|v| dot(v, &texts[q])).collect(),
        hit,
    );
    let p2t = retrieval(
        n,
        |q| texts.iter().map(|t| dot(t, &proteins[q])).collect(),
        hit,
    );
    (t2p, p2t)
}

/// The candidate terms (every term of the references, sorted) and the share of references that
/// have each.
pub fn candidate_terms(references: &[Reference]) -> (Vec<String>, HashMap<String, f64>) {
    let mut frequency: HashMap<String, f64> = HashMap::new();
    for r in references {
        for t in &r.terms {
            *frequency.entry(t.clone()).or_default() += 1.0;
        }
    }
    let mut terms: Vec<String> = frequency.keys().cloned().collect();
    terms.sort();
    let count = references.len().max(1) as f64;
    for f in frequency.values_mut() {
        *f /= count;
    }
    (terms, frequency)
}

/// Zero-shot: each protein vector against the text vectors of the candidate terms' names, the
/// best `k` terms (cosine mapped to [0, 1]) propagated.
pub fn zero_shot(
    ontology: &Ontology,
    vectors: &[Vec<f32>],
    terms: &[String],
    term_vectors: &[Vec<f32>],
    k: usize,
) -> Vec<Predictions> {
    vectors
        .iter()
        .map(|v| {
            let scores = terms
                .iter()
                .zip(term_vectors)
                .map(|(t, tv)| (t.clone(), (dot(v, tv) + 1.0) / 2.0))
                .collect();
            ontology.propagate_scores(scores, k)
        })
        .collect()
}

/// Random scores for the candidate terms, the best `k` propagated (`n` proteins).
pub fn random_predictions(
    ontology: &Ontology,
    n: usize,
    terms: &[String],
    k: usize,
    rng: &mut StdRng,
) -> Vec<Predictions> {
    (0..n)
        .map(|_| {
            ontology.propagate_scores(
                terms
                    .iter()
                    .map(|t| (t.clone(), rng.random::<f32>()))
                    .collect(),
                k,
            )
        })
        .collect()
}

/// Naive: every protein gets each term's frequency among the references.
pub fn naive(frequency: &HashMap<String, f64>, n: usize) -> Vec<Predictions> {
    let one: Predictions = frequency
        .iter()
        .map(|(t, f)| (t.clone(), *f as f32))
        .collect();
    vec![one; n]
}

/// Nearest sequence: the terms of the reference with the highest Smith–Waterman identity among
/// the 20 best 3-mer candidates (the protein itself excluded), scored by that identity.
pub fn nearest_sequence(queries: &[(&str, &str)], references: &[Reference]) -> Vec<Predictions> {
    let sequences: Vec<&[u8]> = references.iter().map(|r| r.sequence.as_bytes()).collect();
    let index = KmerIndex::new(sequences.iter().copied(), 3);
    queries
        .iter()
        .map(|(name, sequence)| {
            let best = index
                .candidates(sequence.as_bytes(), 20)
                .into_iter()
                .filter(|(id, _)| references[*id].name != *name)
                .map(|(id, _)| {
                    (
                        id,
                        local_identity(sequence.as_bytes(), sequences[id]).fraction(),
                    )
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((id, identity)) => references[id]
                    .terms
                    .iter()
                    .map(|t| (t.clone(), identity as f32))
                    .collect(),
                None => HashMap::new(),
            }
        })
        .collect()
}

/// Neighbours' votes ([`transfer`]) blended with a prior, each term's share of the references
/// (the naive predictor): `(1 − w)·vote(t) + w·prior(t)` over every term of either; `w` is
/// clamped to [0, 1] and 0 returns the votes unchanged. Best first (ties by term).
pub fn transfer_with_prior<'a>(
    votes: Vec<(String, f32)>,
    prior: impl IntoIterator<Item = (&'a String, f32)>,
    weight: f32,
) -> Vec<(String, f32)> {
    let w = weight.clamp(0.0, 1.0);
    if w == 0.0 {
        return votes;
    }
    let mut scores: BTreeMap<String, f32> =
        votes.into_iter().map(|(t, v)| (t, (1.0 - w) * v)).collect();
    for (t, p) in prior {
        *scores.entry(t.clone()).or_default() += w * p;
    }
    let mut out: Vec<(String, f32)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Transfer: the terms of the `neighbours` references nearest in the shared space (the protein
/// itself excluded), similarity-weighted ([`transfer`]), blended with `prior` (each term's share
/// of the references, [`candidate_terms`]) at `prior_weight` ([`transfer_with_prior`]).
pub fn knn_transfer(
    queries: &[(&str, &[f32])],
    references: &[Reference],
    reference_vectors: &[Vec<f32>],
    neighbours: usize,
    prior: &HashMap<String, f64>,
    prior_weight: f32,
) -> Vec<Predictions> {
    queries
        .iter()
        .map(|(name, v)| {
            let mut near: Vec<(f32, usize)> = reference_vectors
                .iter()
                .enumerate()
                .filter(|(j, _)| references[*j].name != *name)
                .map(|(j, t)| (dot(v, t), j))
                .collect();
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            near.truncate(neighbours.max(1));
            transfer_with_prior(
                transfer(near.iter().map(|&(s, j)| (s, &references[j].terms))),
                prior.iter().map(|(t, &p)| (t, p as f32)),
                prior_weight,
            )
            .into_iter()
            .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_blend_weights_votes_and_prior() {
        let votes = vec![("GO:b".to_string(), 0.8), ("GO:a".to_string(), 0.2)];
        let prior: HashMap<String, f64> =
            [("GO:a".to_string(), 0.5), ("GO:c".to_string(), 0.9)].into();
        let blend = |w: f32| {
            transfer_with_prior(votes.clone(), prior.iter().map(|(t, &p)| (t, p as f32)), w)
        };
        assert_eq!(blend(0.0), votes);
        let half = blend(0.5);
        let score = |t: &str| half.iter().find(|(x, _)| x == t).map(|(_, s)| *s);
        assert!((score("GO:a").unwrap_or(0.0) - 0.35).abs() < 1e-6);
        assert!((score("GO:b").unwrap_or(0.0) - 0.4).abs() < 1e-6);
        assert!((score("GO:c").unwrap_or(0.0) - 0.45).abs() < 1e-6);
        // Best first: c (0.45), b (0.40), a (0.35).
        let order: Vec<&str> = half.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(order, ["GO:c", "GO:b", "GO:a"]);
        // Clamped: a weight above 1 is the prior alone.
        let all = blend(3.0);
        assert_eq!(all[0], ("GO:c".to_string(), 0.9));
        assert!(all.iter().any(|(t, s)| t == "GO:b" && *s == 0.0));
    }
}
