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

/// Residue codes: 0..20 in [`BLOSUM_ORDER`], [`OTHER`] for X and any other letter.
pub const OTHER: u8 = 20;

fn code(aa: u8) -> Option<usize> {
    BLOSUM_ORDER
        .iter()
        .position(|&c| c == aa.to_ascii_uppercase())
}

/// A sequence as residue codes (see [`OTHER`]).
pub fn encode(seq: &[u8]) -> Vec<u8> {
    seq.iter()
        .map(|&x| code(x).map_or(OTHER, |c| c as u8))
        .collect()
}

/// BLOSUM62 score of two residue codes (−1 with X or any other letter, as BLAST's X column
/// mostly is).
pub fn blosum(a: u8, b: u8) -> i32 {
    match (BLOSUM62.get(a as usize), b < OTHER) {
        (Some(row), true) => row[b as usize] as i32,
        _ => -1,
    }
}

/// The BLOSUM62 score of two residue codes in half-bit units, as a table including [`OTHER`].
fn score_table() -> [[i32; 21]; 21] {
    let mut t = [[-1i32; 21]; 21];
    for (a, row) in t.iter_mut().enumerate() {
        for (b, v) in row.iter_mut().enumerate() {
            *v = blosum(a as u8, b as u8);
        }
    }
    t
}

/// Position-specific scores of a query: for each query position, the score of each residue
/// code (including [`OTHER`]) aligned to it, in BLOSUM62's half-bit units.
pub type Pssm = [[i32; 21]];

/// The query's BLOSUM62 rows: plain sequence-to-sequence scoring as a [`Pssm`].
pub fn blosum_pssm(a: &[u8]) -> Vec<[i32; 21]> {
    let table = score_table();
    a.iter().map(|&x| table[(x as usize).min(20)]).collect()
}

/// The best local alignment score (Smith–Waterman, BLOSUM62, gaps open 11 / extend 1) of two
/// encoded sequences, in linear memory; 0 when nothing aligns.
pub fn local_score(a: &[u8], b: &[u8]) -> i32 {
    local_score_pssm(&blosum_pssm(a), b)
}

/// [`local_score`] with position-specific scores for the query.
pub fn local_score_pssm(pssm: &Pssm, b: &[u8]) -> i32 {
    let m = b.len();
    const NEG: i32 = i32::MIN / 4;
    let mut h = vec![0i32; m + 1];
    let mut f = vec![NEG; m + 1];
    let mut best = 0;
    for row in pssm {
        let (mut diag, mut e) = (0i32, NEG);
        for j in 1..=m {
            e = (h[j - 1] - GAP_OPEN).max(e - GAP_EXTEND);
            f[j] = (h[j] - GAP_OPEN).max(f[j] - GAP_EXTEND);
            let v = (diag + row[(b[j - 1] as usize).min(20)])
                .max(e)
                .max(f[j])
                .max(0);
            diag = h[j];
            h[j] = v;
            best = best.max(v);
        }
    }
    best
}

/// A local alignment of two sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAlignment {
    /// Raw score (half bits).
    pub score: i32,
    /// Aligned residue pairs (query index, target index), in order; gaps are not listed.
    pub pairs: Vec<(usize, usize)>,
    /// Aligned columns, gaps included.
    pub columns: usize,
    /// First aligned residue of the query and of the target (inclusive) and one past the last.
    pub query_range: (usize, usize),
    pub target_range: (usize, usize),
}

/// The best local alignment (Smith–Waterman, BLOSUM62, gaps open 11 / extend 1, as BLAST) of
/// two encoded sequences, with its trace; `None` when nothing aligns (score 0).
pub fn local_alignment(a: &[u8], b: &[u8]) -> Option<LocalAlignment> {
    local_alignment_pssm(&blosum_pssm(a), b)
}

/// [`local_alignment`] with position-specific scores for the query.
pub fn local_alignment_pssm(pssm: &Pssm, b: &[u8]) -> Option<LocalAlignment> {
    let (n, m) = (pssm.len(), b.len());
    if n == 0 || m == 0 {
        return None;
    }
    let s = |i: usize, j: usize| pssm[i][(b[j] as usize).min(20)];
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
            let v = (h[k - w - 1] + s(i - 1, j - 1)).max(e[k]).max(f[k]).max(0);
            h[k] = v;
            if v > best {
                best = v;
                at = (i, j);
            }
        }
    }
    if best == 0 {
        return None;
    }
    // Trace back through the three matrices.
    let (mut i, mut j) = at;
    let mut pairs = Vec::new();
    let mut columns = 0;
    let mut state = 0u8; // 0 = H, 1 = E, 2 = F
    while i > 0 && j > 0 {
        let k = i * w + j;
        match state {
            0 => {
                if h[k] == 0 {
                    break;
                }
                if h[k] == h[k - w - 1] + s(i - 1, j - 1) {
                    columns += 1;
                    pairs.push((i - 1, j - 1));
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
    pairs.reverse();
    Some(LocalAlignment {
        score: best,
        pairs,
        columns,
        query_range: (i, at.0),
        target_range: (j, at.1),
    })
}

/// Smith–Waterman with BLOSUM62 and affine gaps (open 11, extend 1, as BLAST); the best local
/// alignment's identity.
pub fn local_identity(a: &[u8], b: &[u8]) -> Identity {
    let (ca, cb) = (encode(a), encode(b));
    match local_alignment(&ca, &cb) {
        None => Identity {
            matches: 0,
            columns: 0,
            query_span: 0,
            target_span: 0,
        },
        Some(al) => Identity {
            matches: al
                .pairs
                .iter()
                .filter(|&&(i, j)| ca[i] == cb[j] && ca[i] != OTHER)
                .count(),
            columns: al.columns,
            query_span: al.query_range.1 - al.query_range.0,
            target_span: al.target_range.1 - al.target_range.0,
        },
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
