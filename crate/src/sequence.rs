//! Sequence similarity: Smith–Waterman local alignment (BLOSUM62, affine gaps) and a k-mer index
//! that finds the candidates worth aligning — enough to check that a test set shares no close
//! homologue with training data, or to transfer annotations from the nearest sequence.

use std::collections::HashMap;

/// A local alignment's identity and coverage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Identity {
    /// Identical aligned residues.
    pub matches: usize,
    /// Aligned columns (matches, mismatches and gaps).
    pub columns: usize,
    /// Residues of the query and of the target inside the alignment.
    pub query_span: usize,
    pub target_span: usize,
}

impl Identity {
    /// Identical residues over aligned columns.
    pub fn fraction(&self) -> f64 {
        if self.columns == 0 {
            0.0
        } else {
            self.matches as f64 / self.columns as f64
        }
    }

    /// The alignment's span over the shorter sequence's length (mmseqs' bidirectional coverage
    /// is the smaller of the two spans over their lengths; this is that).
    pub fn coverage(&self, query_len: usize, target_len: usize) -> f64 {
        let q = self.query_span as f64 / query_len.max(1) as f64;
        let t = self.target_span as f64 / target_len.max(1) as f64;
        q.min(t)
    }
}

/// BLOSUM62 (NCBI's matrix, half-bit units) over [`BLOSUM_ORDER`].
const BLOSUM62: [[i8; 20]; 20] = [
    [
        4, -1, -2, -2, 0, -1, -1, 0, -2, -1, -1, -1, -1, -2, -1, 1, 0, -3, -2, 0,
    ],
    [
        -1, 5, 0, -2, -3, 1, 0, -2, 0, -3, -2, 2, -1, -3, -2, -1, -1, -3, -2, -3,
    ],
    [
        -2, 0, 6, 1, -3, 0, 0, 0, 1, -3, -3, 0, -2, -3, -2, 1, 0, -4, -2, -3,
    ],
    [
        -2, -2, 1, 6, -3, 0, 2, -1, -1, -3, -4, -1, -3, -3, -1, 0, -1, -4, -3, -3,
    ],
    [
        0, -3, -3, -3, 9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1,
    ],
    [
        -1, 1, 0, 0, -3, 5, 2, -2, 0, -3, -2, 1, 0, -3, -1, 0, -1, -2, -1, -2,
    ],
    [
        -1, 0, 0, 2, -4, 2, 5, -2, 0, -3, -3, 1, -2, -3, -1, 0, -1, -3, -2, -2,
    ],
    [
        0, -2, 0, -1, -3, -2, -2, 6, -2, -4, -4, -2, -3, -3, -2, 0, -2, -2, -3, -3,
    ],
    [
        -2, 0, 1, -1, -3, 0, 0, -2, 8, -3, -3, -1, -2, -1, -2, -1, -2, -2, 2, -3,
    ],
    [
        -1, -3, -3, -3, -1, -3, -3, -4, -3, 4, 2, -3, 1, 0, -3, -2, -1, -3, -1, 3,
    ],
    [
        -1, -2, -3, -4, -1, -2, -3, -4, -3, 2, 4, -2, 2, 0, -3, -2, -1, -2, -1, 1,
    ],
    [
        -1, 2, 0, -1, -3, 1, 1, -2, -1, -3, -2, 5, -1, -3, -1, 0, -1, -3, -2, -2,
    ],
    [
        -1, -1, -2, -3, -1, 0, -2, -3, -2, 1, 2, -1, 5, 0, -2, -1, -1, -1, -1, 1,
    ],
    [
        -2, -3, -3, -3, -2, -3, -3, -3, -1, 0, 0, -3, 0, 6, -4, -2, -2, 1, 3, -1,
    ],
    [
        -1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4, 7, -1, -1, -4, -3, -2,
    ],
    [
        1, -1, 1, 0, -1, 0, 0, 0, -1, -2, -2, 0, -1, -2, -1, 4, 1, -3, -2, -2,
    ],
    [
        0, -1, 0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1, 1, 5, -2, -2, 0,
    ],
    [
        -3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1, 1, -4, -3, -2, 11, 2, -3,
    ],
    [
        -2, -2, -2, -3, -2, -1, -2, -3, 2, -1, -1, -2, -1, 3, -3, -2, -2, 2, 7, -1,
    ],
    [
        0, -3, -3, -3, -1, -2, -2, -3, -3, 3, 1, -2, 1, -1, -2, -2, 0, -3, -1, 4,
    ],
];

/// Row and column order of [`BLOSUM62`].
pub const BLOSUM_ORDER: &[u8; 20] = b"ARNDCQEGHILKMFPSTWYV";

/// BLAST's default gap costs with BLOSUM62: open 11, extend 1.
const GAP_OPEN: i32 = 11;
const GAP_EXTEND: i32 = 1;

fn code(aa: u8) -> Option<usize> {
    BLOSUM_ORDER
        .iter()
        .position(|&c| c == aa.to_ascii_uppercase())
}

fn blosum(a: Option<usize>, b: Option<usize>) -> i32 {
    match (a, b) {
        (Some(a), Some(b)) => BLOSUM62[a][b] as i32,
        _ => -1, // X and other letters
    }
}

/// Smith–Waterman with BLOSUM62 and affine gaps (open 11, extend 1, as BLAST); the best local
/// alignment's identity.
pub fn local_identity(a: &[u8], b: &[u8]) -> Identity {
    let (n, m) = (a.len(), b.len());
    let empty = Identity {
        matches: 0,
        columns: 0,
        query_span: 0,
        target_span: 0,
    };
    if n == 0 || m == 0 {
        return empty;
    }
    let (ca, cb): (Vec<Option<usize>>, Vec<Option<usize>>) = (
        a.iter().map(|&x| code(x)).collect(),
        b.iter().map(|&x| code(x)).collect(),
    );
    const NEG: i32 = i32::MIN / 4;
    let w = m + 1;
    // H: best ending here; E: ending in a gap in a (horizontal); F: gap in b (vertical).
    let mut h = vec![0i32; (n + 1) * w];
    let mut e = vec![NEG; (n + 1) * w];
    let mut f = vec![NEG; (n + 1) * w];
    let (mut best, mut at) = (0i32, (0usize, 0usize));
    for i in 1..=n {
        for j in 1..=m {
            let k = i * w + j;
            e[k] = (h[k - 1] - GAP_OPEN).max(e[k - 1] - GAP_EXTEND);
            f[k] = (h[k - w] - GAP_OPEN).max(f[k - w] - GAP_EXTEND);
            let diag = h[k - w - 1] + blosum(ca[i - 1], cb[j - 1]);
            let v = diag.max(e[k]).max(f[k]).max(0);
            h[k] = v;
            if v > best {
                best = v;
                at = (i, j);
            }
        }
    }
    if best == 0 {
        return empty;
    }
    // Trace back through the three matrices.
    let (mut i, mut j) = at;
    let (mut matches, mut columns) = (0, 0);
    let mut state = 0u8; // 0 = H, 1 = E, 2 = F
    while i > 0 && j > 0 {
        let k = i * w + j;
        match state {
            0 => {
                if h[k] == 0 {
                    break;
                }
                if h[k] == h[k - w - 1] + blosum(ca[i - 1], cb[j - 1]) {
                    columns += 1;
                    if a[i - 1] == b[j - 1] && ca[i - 1].is_some() {
                        matches += 1;
                    }
                    i -= 1;
                    j -= 1;
                } else if h[k] == e[k] {
                    state = 1;
                } else {
                    state = 2;
                }
            }
            1 => {
                columns += 1;
                state = if e[k] == h[k - 1] - GAP_OPEN { 0 } else { 1 };
                j -= 1;
            }
            _ => {
                columns += 1;
                state = if f[k] == h[k - w] - GAP_OPEN { 0 } else { 2 };
                i -= 1;
            }
        }
    }
    Identity {
        matches,
        columns,
        query_span: at.0 - i,
        target_span: at.1 - j,
    }
}

/// An index of a sequence collection by k-mers.
pub struct KmerIndex {
    k: usize,
    postings: HashMap<Vec<u8>, Vec<u32>>,
    lengths: Vec<usize>,
}

fn kmers(seq: &[u8], k: usize) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = seq.windows(k).filter(|w| !w.contains(&b'X')).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl KmerIndex {
    /// Index `sequences` by their distinct `k`-mers (k = 3 is usual for proteins).
    pub fn new<'a>(sequences: impl IntoIterator<Item = &'a [u8]>, k: usize) -> Self {
        let mut postings: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
        let mut lengths = Vec::new();
        for (id, seq) in sequences.into_iter().enumerate() {
            lengths.push(seq.len());
            for w in kmers(seq, k) {
                postings.entry(w.to_vec()).or_default().push(id as u32);
            }
        }
        Self {
            k,
            postings,
            lengths,
        }
    }

    /// The `top` sequences sharing the most distinct k-mers with `query` (ties by index),
    /// with the shared counts; sequences sharing none are not returned.
    pub fn candidates(&self, query: &[u8], top: usize) -> Vec<(usize, usize)> {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for w in kmers(query, self.k) {
            if let Some(ids) = self.postings.get(w) {
                for &id in ids {
                    *counts.entry(id).or_default() += 1;
                }
            }
        }
        let mut v: Vec<(usize, usize)> =
            counts.into_iter().map(|(id, c)| (id as usize, c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(top);
        v
    }

    /// Number of indexed sequences.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// The closest indexed sequence to `query` (highest identity among alignments covering at least
/// `min_coverage`), searching the `top` k-mer candidates: (index, identity).
pub fn nearest(
    index: &KmerIndex,
    sequences: &[&[u8]],
    query: &[u8],
    top: usize,
    min_coverage: f64,
) -> Option<(usize, Identity)> {
    index
        .candidates(query, top)
        .into_iter()
        .filter_map(|(id, _)| {
            let target = sequences.get(id)?;
            let ident = local_identity(query, target);
            (ident.coverage(query.len(), target.len()) >= min_coverage).then_some((id, ident))
        })
        .max_by(|a, b| a.1.fraction().total_cmp(&b.1.fraction()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_unrelated() {
        let a = b"MKTAYIAKQRQISFVKSHFSRQ";
        let same = local_identity(a, a);
        assert_eq!(same.fraction(), 1.0);
        assert_eq!(same.coverage(a.len(), a.len()), 1.0);
        let none = local_identity(b"PPPP", b"WWWW");
        assert_eq!(none.columns, 0);
        assert_eq!(local_identity(b"", a).fraction(), 0.0);
    }

    #[test]
    fn point_mutations_lower_identity() {
        let a = b"MKTAYIAKQRQISFVKSHFSRQ";
        let b = b"MKTAYIAKQRQASFVKSHFSRQ"; // one substitution in 22
        let id = local_identity(a, b);
        assert_eq!(id.columns, 22);
        assert_eq!(id.matches, 21);
    }

    #[test]
    fn index_finds_the_homologue() {
        let seqs: Vec<&[u8]> = vec![
            b"GGGGSGGGGSGGGG",
            b"MKTAYIAKQRQISFVKSHFSRQ",
            b"WWPPWWPPWWPP",
        ];
        let index = KmerIndex::new(seqs.iter().copied(), 3);
        assert_eq!(index.len(), 3);
        let (id, ident) = nearest(&index, &seqs, b"AYIAKQRQISFVKSH", 5, 0.5).expect("a candidate");
        assert_eq!(id, 1);
        assert_eq!(ident.fraction(), 1.0);
        assert!(index.candidates(b"CCCCCC", 5).is_empty());
    }
}
