//! Structure-quality scores of a model against a reference on C-alpha atoms, in pure Rust:
//! residue correspondence (by numbering, else by global sequence alignment), RMSD after optimal
//! superposition, TM-score, GDT_TS / GDT_HA and C-alpha lDDT (global and per residue).
//!
//! TM-score and GDT follow the search of Zhang & Skolnick's `TMscore` program: superpose on seed
//! fragments of the aligned pairs (lengths L, L/2, L/4, … down to 4), then iteratively on the
//! pairs closer than a cutoff, keeping the best score seen; the GDT counts are maxima over every
//! superposition the search tries. The program's own examples are reproduced to its printed
//! digits (crate/tests/quality.rs). lDDT is the C-alpha variant of Mariani et al. (2013) as in
//! AlphaFold's `lddt.py`: pairs closer than 15 Å in the reference, distance differences below
//! 0.5, 1, 2 and 4 Å, pooled over pairs for the global score.

use crate::geometry::{Superposition, superpose};

/// Why two structures could not be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// Too few residues correspond between model and reference.
    #[error(
        "only {aligned} residue(s) of the model correspond to the reference ({reference} residues); at least 3 are needed"
    )]
    TooFewAligned { aligned: usize, reference: usize },
    /// Inputs of different lengths where one pair list was expected.
    #[error("{what}: {a} coordinates vs {b} residues")]
    LengthMismatch {
        what: &'static str,
        a: usize,
        b: usize,
    },
}

/// How model residues were matched to reference residues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correspondence {
    /// Same sequence, residue i to residue i.
    Identical,
    /// By residue number and insertion code (same residue type at every matched position).
    Numbering,
    /// By a global sequence alignment (Needleman–Wunsch, affine gaps).
    SequenceAlignment,
}

/// Pairs (model index, reference index) of corresponding residues, increasing in both.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub pairs: Vec<(usize, usize)>,
    pub how: Correspondence,
    /// Identical residue types among the pairs.
    pub identical: usize,
}

/// Match residues of a model to a reference: identical sequences index by index; else by residue
/// number when at least half of the shorter chain matches by number with the same residue type
/// at every such position; else by global sequence alignment.
pub fn correspond<N: PartialEq>(
    model_seq: &str,
    model_numbers: &[N],
    ref_seq: &str,
    ref_numbers: &[N],
) -> Mapping {
    let (a, b) = (model_seq.as_bytes(), ref_seq.as_bytes());
    if a == b {
        return Mapping {
            pairs: (0..a.len()).map(|i| (i, i)).collect(),
            how: Correspondence::Identical,
            identical: a.len(),
        };
    }
    if model_numbers.len() == a.len() && ref_numbers.len() == b.len() {
        let mut pairs = Vec::new();
        let mut consistent = true;
        let mut j0 = 0;
        for (i, n) in model_numbers.iter().enumerate() {
            if let Some(off) = ref_numbers[j0..].iter().position(|m| m == n) {
                let j = j0 + off;
                if a[i] != b[j] {
                    consistent = false;
                    break;
                }
                pairs.push((i, j));
                j0 = j + 1;
            }
        }
        if consistent && pairs.len() * 2 >= a.len().min(b.len()) && !pairs.is_empty() {
            let identical = pairs.len();
            return Mapping {
                pairs,
                how: Correspondence::Numbering,
                identical,
            };
        }
    }
    let pairs = global_alignment(a, b);
    let identical = pairs.iter().filter(|&&(i, j)| a[i] == b[j]).count();
    Mapping {
        pairs,
        how: Correspondence::SequenceAlignment,
        identical,
    }
}

const MATCH: i32 = 5;
const MISMATCH: i32 = -3;
const GAP_OPEN: i32 = -10;
const GAP_EXTEND: i32 = -1;

fn substitution(x: u8, y: u8) -> i32 {
    if x == b'X' || y == b'X' {
        0
    } else if x == y {
        MATCH
    } else {
        MISMATCH
    }
}

/// Global alignment (Gotoh: affine gaps, end gaps free) of two sequences; returns the aligned
/// (non-gap) index pairs. Scores: identity +5, mismatch −3, `X` 0, gap open −10, extend −1 —
/// meant for two versions of one protein (a model and its reference), not remote homologues.
pub fn global_alignment(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return Vec::new();
    }
    const NEG: i32 = i32::MIN / 4;
    let w = m + 1;
    // Three states: M (aligned), X (gap in b: a[i] against nothing), Y (gap in a).
    let mut mm = vec![NEG; (n + 1) * w];
    let mut xx = vec![NEG; (n + 1) * w];
    let mut yy = vec![NEG; (n + 1) * w];
    mm[0] = 0;
    // Free end gaps: leading gaps cost nothing.
    for i in 1..=n {
        xx[i * w] = 0;
    }
    for y in yy.iter_mut().take(m + 1).skip(1) {
        *y = 0;
    }
    for i in 1..=n {
        for j in 1..=m {
            let best_prev = mm[(i - 1) * w + j - 1]
                .max(xx[(i - 1) * w + j - 1])
                .max(yy[(i - 1) * w + j - 1]);
            mm[i * w + j] = best_prev + substitution(a[i - 1], b[j - 1]);
            let (free_x, free_y) = (j == m, i == n);
            let (ox, ex) = if free_x {
                (0, 0)
            } else {
                (GAP_OPEN, GAP_EXTEND)
            };
            xx[i * w + j] = (mm[(i - 1) * w + j] + ox)
                .max(yy[(i - 1) * w + j] + ox)
                .max(xx[(i - 1) * w + j] + ex);
            let (oy, ey) = if free_y {
                (0, 0)
            } else {
                (GAP_OPEN, GAP_EXTEND)
            };
            yy[i * w + j] = (mm[i * w + j - 1] + oy)
                .max(xx[i * w + j - 1] + oy)
                .max(yy[i * w + j - 1] + ey);
        }
    }
    // Trace back from the best of the three states at (n, m).
    let (mut i, mut j) = (n, m);
    let end = [mm[n * w + m], xx[n * w + m], yy[n * w + m]];
    let mut state = (0..3).max_by_key(|&s| end[s]).unwrap_or(0);
    let mut pairs = Vec::new();
    while i > 0 && j > 0 {
        match state {
            0 => {
                pairs.push((i - 1, j - 1));
                let prev = [
                    mm[(i - 1) * w + j - 1],
                    xx[(i - 1) * w + j - 1],
                    yy[(i - 1) * w + j - 1],
                ];
                state = (0..3).max_by_key(|&s| prev[s]).unwrap_or(0);
                i -= 1;
                j -= 1;
            }
            1 => {
                let (o, e) = if j == m {
                    (0, 0)
                } else {
                    (GAP_OPEN, GAP_EXTEND)
                };
                let here = xx[i * w + j];
                state = if here == xx[(i - 1) * w + j] + e {
                    1
                } else if here == mm[(i - 1) * w + j] + o {
                    0
                } else {
                    2
                };
                i -= 1;
            }
            _ => {
                let (o, e) = if i == n {
                    (0, 0)
                } else {
                    (GAP_OPEN, GAP_EXTEND)
                };
                let here = yy[i * w + j];
                state = if here == yy[i * w + j - 1] + e {
                    2
                } else if here == mm[i * w + j - 1] + o {
                    0
                } else {
                    1
                };
                j -= 1;
            }
        }
    }
    pairs.reverse();
    pairs
}

/// All scores of one comparison. Fractions are of the reference length.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Reference residues (the normalisation length).
    pub reference_length: usize,
    /// Model residues.
    pub model_length: usize,
    /// Corresponding residue pairs.
    pub aligned: usize,
    /// RMSD (Å) over all corresponding pairs after least-squares superposition.
    pub rmsd: f32,
    /// TM-score normalised by the reference length.
    pub tm_score: f32,
    /// d0 of the TM-score (Å).
    pub d0: f32,
    /// GDT_TS: mean fraction within 1, 2, 4, 8 Å (best superposition per cutoff).
    pub gdt_ts: f32,
    /// GDT_HA: mean fraction within 0.5, 1, 2, 4 Å.
    pub gdt_ha: f32,
    /// C-alpha lDDT, pooled over all reference pairs within 15 Å.
    pub lddt: f32,
    /// Per reference residue lDDT; `None` for residues with no model counterpart or no
    /// neighbour within 15 Å.
    pub lddt_per_residue: Vec<Option<f32>>,
}

/// lDDT inclusion radius (Å) and thresholds.
pub const LDDT_CUTOFF: f32 = 15.0;
pub const LDDT_THRESHOLDS: [f32; 4] = [0.5, 1.0, 2.0, 4.0];

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// C-alpha lDDT of `model` against `reference`, where `model[k]` is the model position of
/// reference residue k (`None` where the model lacks it; its pairs count as not preserved).
/// Returns (global pooled score, per-residue scores).
pub fn lddt(model: &[Option<[f32; 3]>], reference: &[[f32; 3]]) -> (f32, Vec<Option<f32>>) {
    let n = reference.len();
    let mut per = Vec::with_capacity(n);
    let (mut total, mut preserved) = (0usize, 0.0f64);
    for i in 0..n {
        let (mut ti, mut pi) = (0usize, 0.0f64);
        for j in 0..n {
            if i == j {
                continue;
            }
            let d_ref = dist(reference[i], reference[j]);
            if d_ref >= LDDT_CUTOFF {
                continue;
            }
            ti += 1;
            if let (Some(a), Some(b)) = (model[i], model[j]) {
                let diff = (dist(a, b) - d_ref).abs();
                pi += LDDT_THRESHOLDS.iter().filter(|&&t| diff < t).count() as f64 / 4.0;
            }
        }
        total += ti;
        preserved += pi;
        per.push(if ti == 0 || model[i].is_none() {
            None
        } else {
            Some((pi / ti as f64) as f32)
        });
    }
    let global = if total == 0 {
        0.0
    } else {
        (preserved / total as f64) as f32
    };
    (global, per)
}

/// Each residue's value averaged over the residues within `radius` Å of it in `ca` (itself
/// included): a per-residue signal on the scale of lDDT's neighbourhoods (15 Å). `values` and
/// `ca` have one entry per residue; a mismatch gives `values` back unchanged.
pub fn neighbourhood_mean(ca: &[[f32; 3]], values: &[f32], radius: f32) -> Vec<f32> {
    if ca.len() != values.len() {
        return values.to_vec();
    }
    ca.iter()
        .map(|&a| {
            let (mut sum, mut n) = (0f64, 0usize);
            for (&b, &v) in ca.iter().zip(values) {
                if dist(a, b) <= radius {
                    sum += f64::from(v);
                    n += 1;
                }
            }
            (sum / n.max(1) as f64) as f32
        })
        .collect()
}

/// TM-score d0 for a normalisation length (Zhang & Skolnick 2004), at least 0.5 Å.
pub fn tm_d0(length: usize) -> f32 {
    if length <= 21 {
        0.5
    } else {
        (1.24 * ((length as f64 - 15.0).cbrt()) - 1.8).max(0.5) as f32
    }
}

/// The best superpositions found by the TMscore-style search over corresponding pairs.
struct Search<'a> {
    model: &'a [[f32; 3]],
    reference: &'a [[f32; 3]],
    norm: f32,
    d0: f32,
    best_tm: f32,
    /// Best counts within 0.5, 1, 2, 4, 8 Å.
    gdt: [usize; 5],
}

const GDT_CUTOFFS: [f32; 5] = [0.5, 1.0, 2.0, 4.0, 8.0];

impl Search<'_> {
    /// Distances of all pairs after `sup`; updates the TM-score and GDT maxima.
    fn evaluate(&mut self, sup: &Superposition, dists: &mut Vec<f32>) {
        dists.clear();
        let mut tm = 0.0f64;
        let mut counts = [0usize; 5];
        let d0sq = (self.d0 * self.d0) as f64;
        for (p, q) in self.model.iter().zip(self.reference) {
            let d = dist(sup.apply(*p), *q);
            dists.push(d);
            tm += 1.0 / (1.0 + (d as f64 * d as f64) / d0sq);
            for (c, cut) in counts.iter_mut().zip(GDT_CUTOFFS) {
                if d <= cut {
                    *c += 1;
                }
            }
        }
        let tm = (tm / self.norm as f64) as f32;
        if tm > self.best_tm {
            self.best_tm = tm;
        }
        for (best, c) in self.gdt.iter_mut().zip(counts) {
            *best = (*best).max(c);
        }
    }

    /// TMscore's search: every seed fragment of lengths n, n/2, n/4, … (the first length ≤ 4
    /// becomes 4; at most 6 lengths), step 1; after each seed superposition, pairs closer than
    /// `d_search − 1` are selected, then up to 20 rounds superpose on the selection and reselect
    /// with `d_search + 1` (raising the cutoff by 0.5 until at least 3 pairs pass) until the
    /// selection stops changing.
    fn run(&mut self, d_search: f32) {
        let n = self.model.len();
        let mut dists = Vec::with_capacity(n);
        let mut sel_m = Vec::with_capacity(n);
        let mut sel_r = Vec::with_capacity(n);
        let mut lengths = Vec::new();
        if n < 4 {
            lengths.push(n);
        } else {
            for k in 0..5 {
                let l = n >> k;
                if l <= 4 {
                    break;
                }
                lengths.push(l);
            }
            lengths.push(4);
        }
        let select = |dists: &[f32], cutoff: f32| -> Vec<usize> {
            let mut d = cutoff;
            loop {
                let chosen: Vec<usize> = (0..n).filter(|&k| dists[k] < d).collect();
                if chosen.len() >= 3 || n <= 3 {
                    return chosen;
                }
                d += 0.5;
            }
        };
        for seed_len in lengths {
            for start in 0..=(n - seed_len) {
                let Some(sup) = superpose(
                    &self.model[start..start + seed_len],
                    &self.reference[start..start + seed_len],
                ) else {
                    continue;
                };
                self.evaluate(&sup, &mut dists);
                let mut chosen = select(&dists, d_search - 1.0);
                let mut previous: Vec<usize> = Vec::new();
                for _ in 0..20 {
                    if chosen == previous {
                        break;
                    }
                    sel_m.clear();
                    sel_r.clear();
                    for &k in &chosen {
                        sel_m.push(self.model[k]);
                        sel_r.push(self.reference[k]);
                    }
                    let Some(sup) = superpose(&sel_m, &sel_r) else {
                        break;
                    };
                    self.evaluate(&sup, &mut dists);
                    previous = std::mem::replace(&mut chosen, select(&dists, d_search + 1.0));
                }
            }
        }
    }
}

/// Compare corresponding C-alpha positions: `model[k]` against `reference[k]` for the pairs of
/// `mapping` (model index, reference index); scores are normalised by `reference.len()`.
pub fn compare(
    model: &[[f32; 3]],
    reference: &[[f32; 3]],
    mapping: &[(usize, usize)],
) -> Result<Comparison, QualityError> {
    let pairs: Vec<(usize, usize)> = mapping
        .iter()
        .copied()
        .filter(|&(i, j)| i < model.len() && j < reference.len())
        .collect();
    if pairs.len() < 3 {
        return Err(QualityError::TooFewAligned {
            aligned: pairs.len(),
            reference: reference.len(),
        });
    }
    let pm: Vec<[f32; 3]> = pairs.iter().map(|&(i, _)| model[i]).collect();
    let pr: Vec<[f32; 3]> = pairs.iter().map(|&(_, j)| reference[j]).collect();
    let rmsd = superpose(&pm, &pr).map(|s| s.rmsd).unwrap_or(f32::NAN);
    let norm = reference.len();
    let d0 = tm_d0(norm);
    let mut search = Search {
        model: &pm,
        reference: &pr,
        norm: norm as f32,
        d0,
        best_tm: 0.0,
        gdt: [0; 5],
    };
    // TMscore's d0_search: d0 clamped to 4.5–8 Å. GDT counts are maxima over the superpositions
    // this search tries, as in the TMscore program.
    search.run(d0.clamp(4.5, 8.0));
    let frac = |c: usize| c as f32 / norm as f32;
    let g = search.gdt;
    let gdt_ts = (frac(g[1]) + frac(g[2]) + frac(g[3]) + frac(g[4])) / 4.0;
    let gdt_ha = (frac(g[0]) + frac(g[1]) + frac(g[2]) + frac(g[3])) / 4.0;
    let mut placed: Vec<Option<[f32; 3]>> = vec![None; reference.len()];
    for &(i, j) in &pairs {
        placed[j] = Some(model[i]);
    }
    let (lddt, lddt_per_residue) = lddt(&placed, reference);
    Ok(Comparison {
        reference_length: norm,
        model_length: model.len(),
        aligned: pairs.len(),
        rmsd,
        tm_score: search.best_tm,
        d0,
        gdt_ts,
        gdt_ha,
        lddt,
        lddt_per_residue,
    })
}

/// Compare two traces of the same residues (index i to index i).
pub fn compare_same(
    model: &[[f32; 3]],
    reference: &[[f32; 3]],
) -> Result<Comparison, QualityError> {
    if model.len() != reference.len() {
        return Err(QualityError::LengthMismatch {
            what: "model and reference",
            a: model.len(),
            b: reference.len(),
        });
    }
    let mapping: Vec<(usize, usize)> = (0..model.len()).map(|i| (i, i)).collect();
    compare(model, reference, &mapping)
}

/// Compare two chains: residues matched by [`correspond`], scores normalised by the reference.
pub fn compare_chains(
    model: &crate::structure::Chain,
    reference: &crate::structure::Chain,
) -> Result<(Comparison, Mapping), QualityError> {
    let mapping = correspond(
        &model.sequence,
        &model.residue_numbers,
        &reference.sequence,
        &reference.residue_numbers,
    );
    let comparison = compare(&model.ca, &reference.ca, &mapping.pairs)?;
    Ok((comparison, mapping))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbourhood_mean_averages_within_the_radius() {
        // Residues on a line 4 Å apart: within 5 Å of each other are only direct neighbours.
        let ca: Vec<[f32; 3]> = (0..4).map(|i| [4.0 * i as f32, 0.0, 0.0]).collect();
        let v = [1.0, 2.0, 6.0, 3.0];
        let m = neighbourhood_mean(&ca, &v, 5.0);
        let expected = [1.5, 3.0, 11.0 / 3.0, 4.5];
        for (a, b) in m.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
        // A radius below the spacing leaves each value; a mismatch leaves them all.
        assert_eq!(neighbourhood_mean(&ca, &v, 1.0), v);
        assert_eq!(neighbourhood_mean(&ca[..3], &v, 5.0), v);
    }

    fn helix(n: usize) -> Vec<[f32; 3]> {
        (0..n)
            .map(|i| {
                let t = i as f32 * 100f32.to_radians();
                [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f32]
            })
            .collect()
    }

    #[test]
    fn identical_structures_score_perfectly() {
        let a = helix(40);
        let c = compare_same(&a, &a).expect("compare");
        assert!(c.rmsd < 1e-3);
        assert!((c.tm_score - 1.0).abs() < 1e-5);
        assert!((c.gdt_ts - 1.0).abs() < 1e-6 && (c.gdt_ha - 1.0).abs() < 1e-6);
        assert!((c.lddt - 1.0).abs() < 1e-6);
        assert!(c.lddt_per_residue.iter().all(|v| *v == Some(1.0)));
    }

    #[test]
    fn rigid_motion_changes_nothing() {
        let a = helix(30);
        let (c, s) = (0.7f32.cos(), 0.7f32.sin());
        let b: Vec<[f32; 3]> = a
            .iter()
            .map(|p| [c * p[0] - s * p[2] + 10.0, p[1] - 3.0, s * p[0] + c * p[2]])
            .collect();
        let r = compare_same(&b, &a).expect("compare");
        assert!(r.rmsd < 1e-3 && r.tm_score > 0.9999 && r.gdt_ts > 0.9999 && r.lddt > 0.9999);
    }

    /// Hand-computed: 3 residues on a line, 1 and 2 Å apart in the reference; the model moves the
    /// last one by 0.75 Å along the line. Pairs (0,1) keep their distance (score 1);
    /// (0,2) and (1,2) change by 0.75 Å: preserved at 1, 2, 4 Å, not 0.5 → 0.75 each.
    #[test]
    fn lddt_by_hand() {
        let reference = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]];
        let model = [
            Some([0.0, 0.0, 0.0]),
            Some([1.0, 0.0, 0.0]),
            Some([3.75, 0.0, 0.0]),
        ];
        let (global, per) = lddt(&model, &reference);
        // Ordered pairs: (0,1) 1, (0,2) .75, (1,0) 1, (1,2) .75, (2,0) .75, (2,1) .75.
        assert!((global - 5.0 / 6.0).abs() < 1e-6, "{global}");
        assert_eq!(per, vec![Some(0.875), Some(0.875), Some(0.75)]);
        // A missing model residue loses its pairs.
        let (g2, per2) = lddt(&[model[0], model[1], None], &reference);
        assert!((g2 - 2.0 / 6.0).abs() < 1e-6, "{g2}");
        assert_eq!(per2, vec![Some(0.5), Some(0.5), None]);
    }

    /// Pairs beyond 15 Å in the reference are not scored, however they move.
    #[test]
    fn lddt_ignores_distant_pairs() {
        let reference = [[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]];
        let model = [Some([0.0, 0.0, 0.0]), Some([5.0, 0.0, 0.0])];
        let (global, per) = lddt(&model, &reference);
        assert_eq!(global, 0.0);
        assert_eq!(per, vec![None, None]);
    }

    /// Half the residues displaced 100 Å (farther than any two residues of the 88 Å long helix,
    /// so no superposition can hold residues of both halves within 8 Å): TM-score ≈ the intact
    /// half, GDT counts exactly one half at every cutoff.
    #[test]
    fn tm_and_gdt_on_a_half_moved_model() {
        let a = helix(60);
        let mut b = a.clone();
        for p in b.iter_mut().skip(30) {
            p[0] += 100.0;
        }
        let c = compare_same(&b, &a).expect("compare");
        assert!((c.gdt_ts - 0.5).abs() < 1e-6, "gdt_ts {}", c.gdt_ts);
        assert!((c.gdt_ha - 0.5).abs() < 1e-6, "gdt_ha {}", c.gdt_ha);
        // 30 pairs at ~0 plus 30 pairs ~100 Å away (d0(60) ≈ 2.7 Å: < 0.001 each).
        assert!(c.tm_score > 0.5 && c.tm_score < 0.501, "tm {}", c.tm_score);
        assert!(c.rmsd > 10.0);
    }

    #[test]
    fn tm_d0_matches_the_formula() {
        assert!((tm_d0(100) - (1.24 * 85f32.cbrt() - 1.8)).abs() < 1e-5);
        assert_eq!(tm_d0(10), 0.5);
    }

    #[test]
    fn alignment_handles_missing_residues() {
        let reference = b"MKTAYIAKQRQISFVKSHFSRQ";
        let model = b"TAYIAKQRSFVKSHF"; // lacks the first 2, QI in the middle, the end
        let pairs = global_alignment(model, reference);
        assert_eq!(pairs.len(), model.len());
        assert!(pairs.iter().all(|&(i, j)| model[i] == reference[j]));
        assert_eq!(pairs[0], (0, 2));
    }

    #[test]
    fn correspondence_by_numbering() {
        let m = correspond("AKQ", &[5, 6, 7], "GAKQL", &[4, 5, 6, 7, 8]);
        assert_eq!(m.how, Correspondence::Numbering);
        assert_eq!(m.pairs, vec![(0, 1), (1, 2), (2, 3)]);
        // Numbers that disagree with the residue types fall back to the alignment.
        let m = correspond("AKQ", &[1, 2, 3], "GAKQL", &[1, 2, 3, 4, 5]);
        assert_eq!(m.how, Correspondence::SequenceAlignment);
        assert_eq!(m.pairs, vec![(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn too_few_pairs_is_an_error() {
        let a = helix(2);
        assert!(matches!(
            compare_same(&a, &a),
            Err(QualityError::TooFewAligned { .. })
        ));
    }
}
