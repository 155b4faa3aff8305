//! Evaluation statistics: binary classification metrics (ACC, precision, recall, F1, MCC,
//! AUROC, AUPRC), rank and linear correlation, mean and standard deviation.

use serde::Serialize;

/// Threshold-dependent and ranking metrics of binary predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BinaryMetrics {
    pub acc: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub mcc: f64,
    pub auroc: f64,
    pub auprc: f64,
}

/// Confusion counts at `threshold` (`score >= threshold` is positive).
pub fn confusion(scores: &[f32], labels: &[bool], threshold: f32) -> [usize; 4] {
    let (mut tp, mut fp, mut tn, mut fneg) = (0, 0, 0, 0);
    for (&s, &y) in scores.iter().zip(labels) {
        match (s >= threshold, y) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fneg += 1,
        }
    }
    [tp, fp, tn, fneg]
}

/// Matthews correlation from confusion counts (0 when undefined).
pub fn mcc_of(c: [usize; 4]) -> f64 {
    let [tp, fp, tn, fneg] = c.map(|v| v as f64);
    let den = ((tp + fp) * (tp + fneg) * (tn + fp) * (tn + fneg)).sqrt();
    if den == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fneg) / den
    }
}

/// F1 from confusion counts (0 when undefined).
pub fn f1_of(c: [usize; 4]) -> f64 {
    let [tp, fp, _, fneg] = c.map(|v| v as f64);
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fneg)
    }
}

/// Area under the ROC curve (Mann–Whitney, ties count half); 0.5 when a class is empty.
pub fn auroc(scores: &[f32], labels: &[bool]) -> f64 {
    let ranks = average_ranks(scores);
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, y)| **y)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Area under the precision-recall curve as average precision (scikit-learn's
/// `average_precision_score`: Σ (R_n − R_{n−1}) P_n over distinct thresholds).
pub fn auprc(scores: &[f32], labels: &[bool]) -> f64 {
    let pos = labels.iter().filter(|&&y| y).count();
    if pos == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0f64, 0.0f64);
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            if labels[order[k]] {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    ap
}

/// All metrics at a threshold.
pub fn binary_metrics(scores: &[f32], labels: &[bool], threshold: f32) -> BinaryMetrics {
    let c = confusion(scores, labels, threshold);
    let [tp, fp, tn, fneg] = c.map(|v| v as f64);
    let n = (tp + fp + tn + fneg).max(1.0);
    BinaryMetrics {
        acc: (tp + tn) / n,
        precision: if tp + fp == 0.0 { 0.0 } else { tp / (tp + fp) },
        recall: if tp + fneg == 0.0 {
            0.0
        } else {
            tp / (tp + fneg)
        },
        f1: f1_of(c),
        mcc: mcc_of(c),
        auroc: auroc(scores, labels),
        auprc: auprc(scores, labels),
    }
}

/// The threshold among the scores that maximises MCC (ties: the first, scanning from high).
pub fn best_mcc_threshold(scores: &[f32], labels: &[bool]) -> f32 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|&&y| y).count();
    let neg = labels.len() - pos;
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut best, mut best_t) = (f64::NEG_INFINITY, 0.5f32);
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            if labels[order[k]] {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        let m = mcc_of([tp, fp, neg - fp, pos - tp]);
        if m > best {
            best = m;
            best_t = s;
        }
    }
    best_t
}

/// Average ranks (1-based; ties get their mean rank).
pub fn average_ranks(x: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut k = 0;
    while k < order.len() {
        let mut e = k;
        while e + 1 < order.len() && x[order[e + 1]] == x[order[k]] {
            e += 1;
        }
        let r = (k + e) as f64 / 2.0 + 1.0;
        for &o in &order[k..=e] {
            ranks[o] = r;
        }
        k = e + 1;
    }
    ranks
}

/// Pearson correlation; `None` with fewer than 3 points or a constant input.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for k in 0..n {
        let (a, b) = (x[k] - mx, y[k] - my);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if sxx == 0.0 || syy == 0.0 {
        None
    } else {
        Some(sxy / (sxx * syy).sqrt())
    }
}

/// Spearman rank correlation (Pearson of average ranks).
pub fn spearman(x: &[f32], y: &[f32]) -> Option<f64> {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Mean and sample standard deviation (0 for one value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

pub fn mean_std(v: &[f64]) -> MeanStd {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() < 2 {
        0.0
    } else {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    MeanStd { mean, std }
}

/// Principal components of a set of vectors: the mean and the leading axes (unit vectors,
/// largest variance first), from the eigen-decomposition of the covariance matrix (nalgebra).
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Mean of the rows, `[D]`.
    pub mean: Vec<f32>,
    /// The axes, each `[D]`.
    pub axes: Vec<Vec<f32>>,
    /// Variance along each axis.
    pub variances: Vec<f64>,
}

impl Pca {
    /// Fit `k` axes to `rows` (`[N, dim]`, row-major). `None` when there are no rows, `dim` is 0
    /// or the values do not fill whole rows. Each axis's sign is fixed (its largest component
    /// positive), so the same data always gives the same picture.
    pub fn fit(rows: &[f32], dim: usize, k: usize) -> Option<Self> {
        if dim == 0 || rows.is_empty() || !rows.len().is_multiple_of(dim) {
            return None;
        }
        let n = rows.len() / dim;
        let mut mean = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = nalgebra::DMatrix::<f64>::zeros(dim, dim);
        let mut centred = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            for ((c, &x), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = f64::from(x) - m;
            }
            for i in 0..dim {
                let ci = centred[i];
                if ci == 0.0 {
                    continue;
                }
                for j in i..dim {
                    cov[(i, j)] += ci * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in i..dim {
                let v = cov[(i, j)] / n as f64;
                cov[(i, j)] = v;
                cov[(j, i)] = v;
            }
        }
        let eigen = nalgebra::SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let mut axes = Vec::new();
        let mut variances = Vec::new();
        for &c in order.iter().take(k.min(dim)) {
            let column = eigen.eigenvectors.column(c);
            let largest = column
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(1.0);
            let sign = if largest < 0.0 { -1.0 } else { 1.0 };
            axes.push(column.iter().map(|&v| (v * sign) as f32).collect());
            variances.push(eigen.eigenvalues[c].max(0.0));
        }
        Some(Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            axes,
            variances,
        })
    }

    /// Coordinates of one vector along the axes.
    pub fn project(&self, row: &[f32]) -> Vec<f32> {
        self.axes
            .iter()
            .map(|axis| {
                axis.iter()
                    .zip(row.iter().zip(&self.mean))
                    .map(|(a, (x, m))| a * (x - m))
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pca_finds_the_direction_of_largest_spread() {
        // Points along (3, 4)/5 with a little spread across it, shifted by (10, -2).
        let mut rows = Vec::new();
        for i in 0..50 {
            let t = i as f32 - 25.0;
            let across = if i % 2 == 0 { 0.1 } else { -0.1 };
            rows.extend([10.0 + 0.6 * t - 0.8 * across, -2.0 + 0.8 * t + 0.6 * across]);
        }
        let pca = Pca::fit(&rows, 2, 2).expect("fits");
        assert!(
            (pca.mean[0] - 9.7).abs() < 1e-4 && (pca.mean[1] + 2.4).abs() < 1e-4,
            "{:?}",
            pca.mean
        );
        // The sign is fixed: the largest component positive.
        assert!(
            (pca.axes[0][0] - 0.6).abs() < 1e-3 && (pca.axes[0][1] - 0.8).abs() < 1e-3,
            "{:?}",
            pca.axes
        );
        assert!(pca.variances[0] > 100.0 * pca.variances[1]);
        let p = pca.project(&[10.0 + 0.6 * 5.0 - 0.8 * 0.0, -2.0 + 0.8 * 5.0]);
        assert!((p[0] - 5.5).abs() < 1e-2, "{p:?}");
        assert!(Pca::fit(&[], 2, 2).is_none());
        assert!(Pca::fit(&[1.0, 2.0, 3.0], 2, 2).is_none());
        // One row: zero variance, still a usable projection.
        assert_eq!(
            Pca::fit(&[1.0, 2.0], 2, 1)
                .expect("fits")
                .project(&[1.0, 2.0]),
            vec![0.0]
        );
    }

    use super::*;

    #[test]
    fn confusion_metrics_by_hand() {
        // TP 2, FP 1, TN 3, FN 2.
        let s = [0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.4, 0.45];
        let y = [true, true, false, false, false, false, true, true];
        let m = binary_metrics(&s, &y, 0.5);
        assert!((m.acc - 5.0 / 8.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 0.5).abs() < 1e-12);
        assert!((m.f1 - 4.0 / 7.0).abs() < 1e-12);
        let mcc = (2.0 * 3.0 - 1.0 * 2.0) / (3.0f64 * 4.0 * 4.0 * 5.0).sqrt();
        assert!((m.mcc - mcc).abs() < 1e-12);
    }

    #[test]
    fn auroc_and_auprc_by_hand() {
        // scikit-learn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75,
        // average_precision_score(same) = 0.8333…
        let s = [0.1, 0.4, 0.35, 0.8];
        let y = [false, false, true, true];
        assert!((auroc(&s, &y) - 0.75).abs() < 1e-12);
        assert!((auprc(&s, &y) - 5.0 / 6.0).abs() < 1e-12);
        // Perfect and inverted rankings.
        assert_eq!(auroc(&[0.9, 0.1], &[true, false]), 1.0);
        assert_eq!(auroc(&[0.1, 0.9], &[true, false]), 0.0);
        // Ties count half.
        assert_eq!(auroc(&[0.5, 0.5], &[true, false]), 0.5);
    }

    #[test]
    fn best_threshold_separates_a_separable_set() {
        let s = [0.9, 0.8, 0.3, 0.2];
        let y = [true, true, false, false];
        let t = best_mcc_threshold(&s, &y);
        assert_eq!(t, 0.8);
        assert_eq!(binary_metrics(&s, &y, t).mcc, 1.0);
    }

    #[test]
    fn correlations() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 4.0, 9.0, 16.0, 25.0];
        assert!((spearman(&x, &y).expect("defined") - 1.0).abs() < 1e-12);
        let p = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]).expect("defined");
        assert!((p - 0.9933992677987828).abs() < 1e-12);
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn mean_and_std() {
        let m = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m.mean - 2.5).abs() < 1e-12);
        assert!((m.std - 1.2909944487358056).abs() < 1e-12);
    }
}
