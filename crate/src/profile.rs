//! Sequence profiles — position-specific amino-acid preferences from homologues — for
//! predictors that want evolutionary information without UniRef or HHblits: one PSI-BLAST-like
//! iteration against a local database (here Swiss-Prot at 50 % identity and the PDB chains
//! that ship with the data).
//!
//! - Search: a diagonal prefilter on exact 3-mers (the hits of a candidate must fall on one
//!   diagonal band, as in BLAST's and MMseqs2's two-hit seeds), then Smith–Waterman (BLOSUM62,
//!   gaps 11/1) on the best candidates, score only, keeping those whose E-value (Karlin–Altschul,
//!   λ = 0.267, K = 0.041 for BLOSUM62 11/1; the database's residues as search space) is below
//!   a threshold; those are aligned again with their trace. Hits ≥ 94 % identical to the query
//!   are purged, as PSI-BLAST does. A second round scores the candidates (and more, seeded by
//!   the best hits' 3-mers) with the first round's profile as a PSSM, as PSI-BLAST iterates.
//! - Profile: the query and its hits on the query's columns, Henikoff position-based sequence
//!   weights, and PSI-BLAST's pseudocounts: per column `p_a = (α f_a + β g_a) / (α + β)` with
//!   `α` = distinct residues in the column − 1, `β = 10`, and `g_a = Σ_b f_b q(a | b)`, the
//!   BLOSUM62 conditional probabilities (target frequencies `q_ab ∝ p_a p_b 2^{S_ab / 2}`).
//!   A query without hits gets the BLOSUM62 row of each residue, as PSI-BLAST's first PSSM.

use crate::io::maybe_gunzip;
use crate::sequence::{
    OTHER, Pssm, blosum, blosum_pssm, encode, local_alignment_pssm, local_score_pssm,
};
use crate::structure::ReadError;

/// The largest database read (decompressed): 2 GiB (wasm32 addresses 4 GiB in all).
const MAX_DB_BYTES: usize = 1 << 31;

/// Robinson & Robinson background frequencies (BLAST's) in [`crate::sequence::BLOSUM_ORDER`].
const BACKGROUND: [f64; 20] = [
    0.07805, 0.05129, 0.04487, 0.05364, 0.01925, 0.04264, 0.06295, 0.07377, 0.02199, 0.05142,
    0.09019, 0.05744, 0.02243, 0.03856, 0.05203, 0.07120, 0.05841, 0.01330, 0.03216, 0.06441,
];

/// Per-residue profile features:
/// - 0..20: log-odds `log2(p_a / background_a) / 4` of the 20 amino acids (BLOSUM order);
/// - 20: the column's relative entropy to the background ÷ log2 20 (conservation);
/// - 21: `ln(1 + sequences aligned at the column) / 6` (depth);
/// - 22: `ln(1 + hits of the chain) / 6` (the same for every residue of a chain).
pub const PROFILE_FEATURES: usize = 23;

const K: usize = 3;
const KMERS: usize = 8000; // 20^3
/// A k-mer seen more often than this in the database is low complexity: not a seed.
const MAX_POSTINGS: usize = 40_000;
/// Diagonal bands of 8; a candidate's score is its best pair of adjacent bands.
const BAND_SHIFT: u32 = 3;
/// PSI-BLAST's pseudocount weight.
const BETA: f64 = 10.0;
/// Hits at or above this identity to the query are purged.
const PURGE_IDENTITY: f64 = 0.94;

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// Candidates aligned after the prefilter.
    pub candidates: usize,
    /// E-value inclusion threshold (PSI-BLAST's default is 0.002).
    pub max_evalue: f64,
    /// Most hits kept (best scores first).
    pub max_hits: usize,
    /// Search rounds: after the first, the query is scored by the profile of the hits so far
    /// (a PSSM, as PSI-BLAST's later iterations) and the best hits' own 3-mers seed more
    /// candidates.
    pub iterations: usize,
    /// Hits whose sequences seed candidates in later rounds.
    pub seed_hits: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            candidates: 300,
            max_evalue: 1e-3,
            max_hits: 200,
            iterations: 2,
            seed_hits: 4,
        }
    }
}

/// Why a database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("the sequence database: {0}")]
    Read(#[from] ReadError),
    #[error("the sequence database is not text (UTF-8)")]
    NotText,
    #[error(
        "the sequence database holds no sequence (expected a TSV with a 'sequence' column or JSON lines with 'seq')"
    )]
    Empty,
    #[error("the sequence database is too large: {0} residues (at most 4 billion)")]
    TooLarge(usize),
    #[error("line {line} of the sequence database: {message}")]
    Line { line: usize, message: String },
}

/// Sequences of a database file: a TSV with a header naming a `sequence` column (Swiss-Prot
/// export) or JSON lines with a `seq` field (the structure chains); plain or gzip.
pub fn read_sequences(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ProfileError> {
    let data = maybe_gunzip(bytes, MAX_DB_BYTES).map_err(ReadError::from)?;
    let text = std::str::from_utf8(&data).map_err(|_| ProfileError::NotText)?;
    let mut out = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        return Err(ProfileError::Empty);
    };
    if first.trim_start().starts_with('{') {
        for (n, line) in std::iter::once((0, first)).chain(lines) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| ProfileError::Line {
                    line: n + 1,
                    message: e.to_string(),
                })?;
            let seq = v["seq"].as_str().ok_or_else(|| ProfileError::Line {
                line: n + 1,
                message: "no 'seq' string".into(),
            })?;
            out.push(seq.as_bytes().to_vec());
        }
    } else {
        let column = first
            .split('\t')
            .position(|h| h.trim() == "sequence")
            .ok_or(ProfileError::Empty)?;
        for (n, line) in lines {
            let seq = line
                .split('\t')
                .nth(column)
                .ok_or_else(|| ProfileError::Line {
                    line: n + 1,
                    message: format!("fewer than {} columns", column + 1),
                })?;
            out.push(seq.trim().as_bytes().to_vec());
        }
    }
    out.retain(|s| !s.is_empty());
    if out.is_empty() {
        return Err(ProfileError::Empty);
    }
    Ok(out)
}

fn kmer(codes: &[u8]) -> Option<usize> {
    let mut k = 0usize;
    for &c in codes {
        if c >= OTHER {
            return None;
        }
        k = k * 20 + c as usize;
    }
    Some(k)
}

/// A searchable sequence database: the residues of all sequences end to end (a run of X
/// between them, so no diagonal crosses two) and, for each 3-mer, where it occurs.
pub struct SequenceDb {
    residues: Vec<u8>,
    /// Start of each sequence in `residues`, then the end of the last.
    starts: Vec<u32>,
    /// `positions[offsets[k]..offsets[k + 1]]`: where 3-mer `k` starts.
    offsets: Vec<u32>,
    positions: Vec<u32>,
    /// Residues of all sequences (the search space of the E-value).
    total: usize,
}

const SEPARATOR: usize = 16;

impl SequenceDb {
    /// Index `sequences` (letters; anything but the 20 amino acids counts as X).
    pub fn new(sequences: &[Vec<u8>]) -> Result<Self, ProfileError> {
        let size: usize = sequences.iter().map(|s| s.len() + SEPARATOR).sum();
        if size >= u32::MAX as usize {
            return Err(ProfileError::TooLarge(size));
        }
        let mut residues = Vec::new();
        let mut starts = Vec::with_capacity(sequences.len() + 1);
        let mut total = 0;
        for s in sequences {
            starts.push(residues.len() as u32);
            residues.extend(encode(s));
            total += s.len();
            residues.extend(std::iter::repeat_n(OTHER, SEPARATOR));
        }
        starts.push(residues.len() as u32);
        let mut counts = vec![0u32; KMERS + 1];
        for w in residues.windows(K) {
            if let Some(k) = kmer(w) {
                counts[k + 1] += 1;
            }
        }
        for k in 0..KMERS {
            counts[k + 1] += counts[k];
        }
        let offsets = counts.clone();
        let mut fill = counts;
        let mut positions = vec![0u32; offsets[KMERS] as usize];
        for (p, w) in residues.windows(K).enumerate() {
            if let Some(k) = kmer(w) {
                positions[fill[k] as usize] = p as u32;
                fill[k] += 1;
            }
        }
        Ok(Self {
            residues,
            starts,
            offsets,
            positions,
            total,
        })
    }

    /// Sequences.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Whether the database holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Residues of all sequences.
    pub fn residues(&self) -> usize {
        self.total
    }

    fn sequence(&self, id: usize) -> &[u8] {
        let (a, b) = (self.starts[id] as usize, self.starts[id + 1] as usize);
        &self.residues[a..b - SEPARATOR]
    }

    fn owner(&self, position: u32) -> usize {
        self.starts.partition_point(|&s| s <= position) - 1
    }

    /// The `top` sequences with the most 3-mer hits on one diagonal band pair, best first, with
    /// that count (at least 2: a two-hit seed).
    fn candidates(&self, query: &[u8], top: usize) -> Vec<(usize, u32)> {
        let n = query.len() as u64;
        // (band, database position): the band of the diagonal (position in the database −
        // position in the query, shifted ≥ 0) in the high half.
        let mut keys: Vec<u64> = Vec::new();
        for (i, w) in query.windows(K).enumerate() {
            let Some(k) = kmer(w) else { continue };
            let (a, b) = (self.offsets[k] as usize, self.offsets[k + 1] as usize);
            if b - a > MAX_POSTINGS {
                continue;
            }
            keys.extend(self.positions[a..b].iter().map(|&p| {
                let band = (p as u64 + n - i as u64) >> BAND_SHIFT;
                (band << 32) | p as u64
            }));
        }
        keys.sort_unstable();
        // Runs of one band (with a position on it, which names the sequence), then pairs of
        // adjacent bands.
        let mut runs: Vec<(u64, u32, u32)> = Vec::new();
        for &k in &keys {
            let band = k >> 32;
            match runs.last_mut() {
                Some((b, _, c)) if *b == band => *c += 1,
                _ => runs.push((band, k as u32, 1)),
            }
        }
        let mut best: Vec<(usize, u32)> = Vec::new();
        for (r, &(band, position, c)) in runs.iter().enumerate() {
            let next = runs
                .get(r + 1)
                .filter(|(b, _, _)| *b == band + 1)
                .map_or(0, |(_, _, c)| *c);
            let score = c + next;
            if score >= 2 {
                best.push((self.owner(position), score));
            }
        }
        best.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        best.dedup_by_key(|x| x.0);
        best.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        best.truncate(top);
        best
    }
}

/// One database sequence aligned to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index of the sequence in the database.
    pub id: usize,
    pub score: i32,
    pub evalue: f64,
    pub identity: f64,
    /// The hit's residue code at each query position (`None` where it does not align).
    pub columns: Vec<Option<u8>>,
}

/// E-value of a raw BLOSUM62 11/1 score for a query of `m` residues against `n` residues.
pub fn evalue(score: i32, m: usize, n: usize) -> f64 {
    const LAMBDA: f64 = 0.267;
    const KAPPA: f64 = 0.041;
    KAPPA * m as f64 * n as f64 * (-LAMBDA * score as f64).exp()
}

/// Homologues of `query` (letters) in `db`, best score first.
pub fn search(db: &SequenceDb, query: &[u8], config: &SearchConfig) -> Vec<Hit> {
    let q = encode(query);
    let mut candidates: Vec<usize> = db
        .candidates(&q, config.candidates)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut hits = align_round(db, &q, &blosum_pssm(&q), &candidates, config);
    for _ in 1..config.iterations {
        if hits.is_empty() {
            break;
        }
        let pssm = pssm(&column_probabilities(&q, &hits));
        for h in hits.iter().take(config.seed_hits) {
            candidates.extend(
                db.candidates(db.sequence(h.id), config.candidates / 2)
                    .into_iter()
                    .map(|(id, _)| id),
            );
        }
        candidates.sort_unstable();
        candidates.dedup();
        hits = align_round(db, &q, &pssm, &candidates, config);
    }
    hits
}

/// Score `candidates` against the query's `pssm`, keep those under the E-value threshold
/// (best first, at most `max_hits`), align them with their trace and purge near-copies of the
/// query.
fn align_round(
    db: &SequenceDb,
    q: &[u8],
    pssm: &Pssm,
    candidates: &[usize],
    config: &SearchConfig,
) -> Vec<Hit> {
    let mut scored: Vec<(usize, i32)> = candidates
        .iter()
        .map(|&id| (id, local_score_pssm(pssm, db.sequence(id))))
        .filter(|&(_, s)| evalue(s, q.len(), db.total) <= config.max_evalue)
        .collect();
    scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut hits = Vec::new();
    for (id, score) in scored {
        if hits.len() >= config.max_hits {
            break;
        }
        let target = db.sequence(id);
        let Some(al) = local_alignment_pssm(pssm, target) else {
            continue;
        };
        let matches = al
            .pairs
            .iter()
            .filter(|&&(i, j)| q[i] == target[j] && q[i] != OTHER)
            .count();
        let identity = matches as f64 / al.columns.max(1) as f64;
        if identity >= PURGE_IDENTITY {
            continue;
        }
        let mut columns = vec![None; q.len()];
        for &(i, j) in &al.pairs {
            columns[i] = Some(target[j]);
        }
        hits.push(Hit {
            id,
            score,
            evalue: evalue(score, q.len(), db.total),
            identity,
            columns,
        });
    }
    hits
}

/// Position-specific scores from column probabilities: `round(2 log2(p_a / background_a))`,
/// BLOSUM62's half-bit scale (so its E-value statistics still roughly hold, as PSI-BLAST
/// rescales to), −1 for X.
fn pssm(columns: &[([f64; 20], usize)]) -> Vec<[i32; 21]> {
    columns
        .iter()
        .map(|(p, _)| {
            let mut row = [-1i32; 21];
            for a in 0..20 {
                row[a] = (2.0 * (p[a] / BACKGROUND[a]).log2())
                    .round()
                    .clamp(-10.0, 15.0) as i32;
            }
            row
        })
        .collect()
}

/// BLOSUM62 conditional probabilities `q(a | b)` (column b sums to 1), from the target
/// frequencies `p_a p_b 2^{S_ab / 2}`.
fn conditional() -> [[f64; 20]; 20] {
    let mut q = [[0.0f64; 20]; 20];
    for (b, row) in q.iter_mut().enumerate() {
        for (a, v) in row.iter_mut().enumerate() {
            *v = BACKGROUND[a] * BACKGROUND[b] * 2f64.powf(blosum(a as u8, b as u8) as f64 / 2.0);
        }
        let z: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= z);
    }
    q
}

/// Per query column: the amino-acid probabilities (Henikoff-weighted frequencies of the query
/// and its hits with PSI-BLAST's pseudocounts; the background where nothing aligns) and how many
/// sequences align there.
fn column_probabilities(q: &[u8], hits: &[Hit]) -> Vec<([f64; 20], usize)> {
    let n = q.len();
    // Rows: the query, then the hits; each a residue code or None per query column.
    let rows: Vec<Vec<Option<u8>>> = std::iter::once(q.iter().map(|&c| Some(c)).collect())
        .chain(hits.iter().map(|h| h.columns.clone()))
        .collect();
    // Henikoff position-based weights.
    let mut weights = vec![0.0f64; rows.len()];
    for i in 0..n {
        let mut count = [0usize; 21];
        for r in &rows {
            if let Some(c) = r.get(i).copied().flatten() {
                count[(c as usize).min(20)] += 1;
            }
        }
        let distinct = count.iter().filter(|&&c| c > 0).count();
        for (w, r) in weights.iter_mut().zip(&rows) {
            if let Some(c) = r.get(i).copied().flatten() {
                *w += 1.0 / (distinct * count[(c as usize).min(20)]) as f64;
            }
        }
    }
    let cond = conditional();
    (0..n)
        .map(|i| {
            let mut f = [0.0f64; 20];
            let mut seen = [false; 20];
            let mut depth = 0usize;
            for (w, r) in weights.iter().zip(&rows) {
                if let Some(c) = r.get(i).copied().flatten() {
                    depth += 1;
                    if c < OTHER {
                        f[c as usize] += w;
                        seen[c as usize] = true;
                    }
                }
            }
            let total: f64 = f.iter().sum();
            if total <= 0.0 {
                return (BACKGROUND, depth);
            }
            f.iter_mut().for_each(|v| *v /= total);
            let alpha = (seen.iter().filter(|&&s| s).count() as f64 - 1.0).max(0.0);
            let mut p = [0.0f64; 20];
            for (a, pa) in p.iter_mut().enumerate() {
                let g: f64 = (0..20).map(|b| f[b] * cond[b][a]).sum();
                *pa = (alpha * f[a] + BETA * g) / (alpha + BETA);
            }
            (p, depth)
        })
        .collect()
}

/// The profile of `query` from its `hits`, `[L][PROFILE_FEATURES]`.
pub fn profile(query: &[u8], hits: &[Hit]) -> Vec<[f32; PROFILE_FEATURES]> {
    let q = encode(query);
    let global = (1.0 + hits.len() as f64).ln() / 6.0;
    column_probabilities(&q, hits)
        .into_iter()
        .map(|(p, depth)| {
            let mut out = [0.0f32; PROFILE_FEATURES];
            let mut entropy = 0.0;
            for a in 0..20 {
                let ratio = (p[a] / BACKGROUND[a]).log2();
                out[a] = (ratio / 4.0) as f32;
                entropy += p[a] * ratio;
            }
            out[20] = (entropy / 20f64.log2()) as f32;
            out[21] = ((1.0 + depth as f64).ln() / 6.0) as f32;
            out[22] = global as f32;
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small family: one sequence and point mutants of it, plus unrelated sequences.
    fn family() -> Vec<Vec<u8>> {
        let base = b"MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWUTHRLSSEE";
        let mut out = vec![base.to_vec()];
        for k in 1..6u8 {
            let mut s = base.to_vec();
            // Mutate every 4th residue differently in each copy: ~75 % identical.
            for (i, c) in s.iter_mut().enumerate() {
                if (i + k as usize).is_multiple_of(4) {
                    *c = b"ACDEFGHIKLMNPQRSTVWY"[(i * 7 + k as usize * 3) % 20];
                }
            }
            out.push(s);
        }
        out.push(b"GGSGGSGGSGGSGGSGGSGGSGGSGGSGGSGGS".to_vec());
        out.push(b"WPWPWPCCHHCCWPWPWPCCHHCC".to_vec());
        out
    }

    #[test]
    fn reads_both_formats_and_rejects_bad_input() {
        let tsv = b"accession\tMFO\tsequence\nP1\tGO:1\tMKT\nP2\t\tAYI\n";
        assert_eq!(
            read_sequences(tsv).expect("tsv"),
            vec![b"MKT".to_vec(), b"AYI".to_vec()]
        );
        let jsonl = b"{\"name\":\"a\",\"seq\":\"MKV\"}\n{\"seq\":\"GG\"}\n";
        assert_eq!(read_sequences(jsonl).expect("jsonl").len(), 2);
        assert!(matches!(read_sequences(b""), Err(ProfileError::Empty)));
        assert!(matches!(
            read_sequences(b"a\tb\n1\t2\n"),
            Err(ProfileError::Empty)
        ));
        assert!(matches!(
            read_sequences(&[0xff, 0xfe, 0x00]),
            Err(ProfileError::NotText)
        ));
        assert!(matches!(
            read_sequences(&[0x1f, 0x8b, 0x00]),
            Err(ProfileError::Read(_))
        ));
        assert!(matches!(
            read_sequences(b"{\"seq\":\"MK\"}\n{\"name\":1}\n"),
            Err(ProfileError::Line { line: 2, .. })
        ));
    }

    #[test]
    fn finds_the_family_and_not_the_rest() {
        let seqs = family();
        let db = SequenceDb::new(&seqs).expect("small");
        assert_eq!(db.len(), seqs.len());
        assert_eq!(db.sequence(1), &encode(&seqs[1])[..]);
        let hits = search(&db, &seqs[0], &SearchConfig::default());
        let mut ids: Vec<usize> = hits.iter().map(|h| h.id).collect();
        ids.sort_unstable();
        // The query's identical copy (id 0) is purged; the five mutants are found.
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        for h in &hits {
            assert!(
                h.evalue < 1e-3 && h.identity > 0.6 && h.identity < 0.94,
                "{h:?}"
            );
        }
        // One round (no PSSM) finds the same family here.
        let one = SearchConfig {
            iterations: 1,
            ..SearchConfig::default()
        };
        let mut first: Vec<usize> = search(&db, &seqs[0], &one).iter().map(|h| h.id).collect();
        first.sort_unstable();
        assert_eq!(first, ids);
        // The profile as a PSSM scores the family's own members higher than BLOSUM62 does.
        let q = encode(&seqs[0]);
        let profiled = pssm(&column_probabilities(&q, &hits));
        let target = db.sequence(3);
        assert!(local_score_pssm(&profiled, target) > local_score_pssm(&blosum_pssm(&q), target));
        // Unrelated query: nothing.
        assert!(
            search(
                &db,
                b"WPWPWPCCHHCCWPWPWPCCHHCCAAA",
                &SearchConfig::default()
            )
            .iter()
            .all(|h| h.id >= 6)
        );
    }

    #[test]
    fn profile_reflects_conservation() {
        let seqs = family();
        let db = SequenceDb::new(&seqs).expect("small");
        let hits = search(&db, &seqs[0], &SearchConfig::default());
        let p = profile(&seqs[0], &hits);
        assert_eq!(p.len(), seqs[0].len());
        // Positions never mutated are more conserved than mutated ones (i + k ≡ 0 mod 4 for some
        // k in 1..6 covers every position mod 4 — so compare with the query-only profile).
        let alone = profile(&seqs[0], &[]);
        let mean = |v: &[[f32; PROFILE_FEATURES]], k: usize| {
            v.iter().map(|r| r[k]).sum::<f32>() / v.len() as f32
        };
        // With homologues the depth feature rises, and the chain-level hit count is set.
        assert!(mean(&p, 21) > mean(&alone, 21));
        assert!(p[0][22] > 0.0 && alone[0][22] == 0.0);
        // Query-only profile = BLOSUM62 row: the query residue has the highest log-odds
        // (M at position 0; index 12 in BLOSUM order).
        let m = alone[0][..20]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, _)| k);
        assert_eq!(m, Some(12));
        // Every value finite.
        assert!(p.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn conditional_probabilities_sum_to_one() {
        let q = conditional();
        for row in q {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        // Identity is the most likely substitution for W.
        let w = 17;
        let best = (0..20).max_by(|&a, &b| q[w][a].total_cmp(&q[w][b]));
        assert_eq!(best, Some(w));
    }

    #[test]
    fn evalue_falls_with_score() {
        assert!(evalue(100, 250, 50_000_000) < evalue(60, 250, 50_000_000));
        // A raw score of ~101 is E ≈ 1e-3 for a 250-residue query against 50 M residues.
        let e = evalue(101, 250, 50_000_000);
        assert!(e > 1e-4 && e < 1e-2, "{e}");
    }
}
