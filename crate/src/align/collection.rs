//! Many proteins at once: one row per structure (file, chain, length, the nearest bank protein,
//! the likely function, the score model's protein embedding and the shared-space vector), the
//! table as CSV, every embedding in one `.npz`, and a 2-D map of the proteins together with the
//! bank (principal components of the shared space).

use crate::export::{Array, ExportError, npz_bytes_with};
use crate::stats::Pca;

use super::search::{Bank, BankEntry, normalise};

/// Bank rows the map's axes are fitted on at most (evenly spaced through the bank; every bank
/// protein is still placed on the map).
pub const MAP_FIT_ROWS: usize = 2000;

/// What the page (or a script) found for one structure.
#[derive(Debug, Clone, PartialEq)]
pub struct ProteinRow {
    /// File name as given.
    pub file: String,
    /// Chain id of the chain summarised.
    pub chain: String,
    /// Residues of that chain.
    pub length: usize,
    /// The noise level the protein embedding was taken at, and its σ in Å.
    pub noise_level: usize,
    pub sigma: f32,
    /// SHA-256 of the score model's weights that gave the embedding.
    pub weights_sha256: String,
    /// The closest bank protein and its cosine.
    pub nearest: Option<(BankEntry, f32)>,
    /// Likely GO molecular functions (name, share), best first.
    pub functions: Vec<(String, f32)>,
    /// The score model's protein embedding, `[C]`.
    pub protein: Vec<f32>,
    /// The alignment model's vector in the shared space, `[D]` (none without the model).
    pub shared: Option<Vec<f32>>,
}

/// One field of a CSV line, quoted where it must be (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The table: one line per row, in order (`row` is the row's index in [`npz`]'s arrays), and
/// one line per file that could not be summarised (`failed`: file name, reason) with no row
/// index.
pub fn csv(rows: &[ProteinRow], failed: &[(String, String)]) -> String {
    let mut out = String::from(
        "row,file,chain,length,nearest,nearest_pdb_id,nearest_cosine,likely_function,function_share,error\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let (nearest, pdb, cosine) = match &r.nearest {
            Some((e, c)) => (e.name.as_str(), e.pdb_id.as_str(), format!("{c:.4}")),
            None => ("", "", String::new()),
        };
        let (function, share) = match r.functions.first() {
            Some((f, s)) => (f.as_str(), format!("{s:.3}")),
            None => ("", String::new()),
        };
        out.push_str(&format!(
            "{i},{},{},{},{},{},{cosine},{},{share},\n",
            field(&r.file),
            field(&r.chain),
            r.length,
            field(nearest),
            field(pdb),
            field(function),
        ));
    }
    for (file, error) in failed {
        out.push_str(&format!(",{},,,,,,,,{}\n", field(file), field(error)));
    }
    out
}

/// Every row's embeddings in one archive: `protein [N, C]` (the score model's), `shared [N, D]`
/// (when every row has one), `length [N]`, `noise_level [N]` and `sigma [N]`, `map [N, 2]` when
/// given (the rows' map coordinates), and `metadata.json` (the device as `Compute::describe`
/// writes it, the version, each row's file, chain, level and weights' SHA-256, every array's
/// shape). Row `i` is line `row = i` of [`csv`].
pub fn npz(
    rows: &[ProteinRow],
    map: Option<&[[f32; 2]]>,
    backend: &str,
) -> Result<Vec<u8>, ExportError> {
    let n = rows.len();
    let c = rows.first().map_or(0, |r| r.protein.len());
    let protein: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.protein.iter().copied())
        .collect();
    let length: Vec<f32> = rows.iter().map(|r| r.length as f32).collect();
    let level: Vec<f32> = rows.iter().map(|r| r.noise_level as f32).collect();
    let sigma: Vec<f32> = rows.iter().map(|r| r.sigma).collect();
    let shared: Option<Vec<&Vec<f32>>> = rows.iter().map(|r| r.shared.as_ref()).collect();
    let d = shared
        .as_ref()
        .and_then(|s| s.first())
        .map_or(0, |v| v.len());
    let shared: Option<Vec<f32>> =
        shared.map(|s| s.iter().flat_map(|v| v.iter().copied()).collect());
    let map: Option<Vec<f32>> = map.map(|m| m.iter().flat_map(|p| p.iter().copied()).collect());
    let (protein_shape, length_shape, shared_shape, map_shape) = ([n, c], [n], [n, d], [n, 2]);
    let mut arrays = vec![
        Array {
            name: "protein",
            shape: &protein_shape,
            values: &protein,
        },
        Array {
            name: "length",
            shape: &length_shape,
            values: &length,
        },
        Array {
            name: "noise_level",
            shape: &length_shape,
            values: &level,
        },
        Array {
            name: "sigma",
            shape: &length_shape,
            values: &sigma,
        },
    ];
    if let Some(values) = &shared {
        arrays.push(Array {
            name: "shared",
            shape: &shared_shape,
            values,
        });
    }
    if let Some(values) = &map {
        arrays.push(Array {
            name: "map",
            shape: &map_shape,
            values,
        });
    }
    let metadata = serde_json::json!({
        "backend": backend,
        "foldspace_version": crate::VERSION,
        "rows": rows.iter().map(|r| serde_json::json!({
            "file": r.file, "chain": r.chain, "length": r.length,
            "noise_level": r.noise_level, "sigma": r.sigma, "weights_sha256": r.weights_sha256,
        })).collect::<Vec<_>>(),
        "arrays": arrays.iter().map(|a| (a.name, a.shape)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    let metadata = serde_json::to_vec_pretty(&metadata)
        .map_err(|e| ExportError::Zip(format!("metadata.json: {e}")))?;
    npz_bytes_with(&arrays, &[("metadata.json", &metadata)])
}

/// The proteins and the bank on one plane.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionMap {
    /// Every bank protein's position, in the bank's order.
    pub bank: Vec<[f32; 2]>,
    /// Each given vector's position, in order.
    pub proteins: Vec<[f32; 2]>,
    /// Share of the fitted variance along each axis.
    pub explained: [f64; 2],
}

/// Place `vectors` (shared-space, `[D]` each) and the bank on the first two principal
/// components of the shared space, fitted on up to [`MAP_FIT_ROWS`] bank proteins and all of
/// `vectors` (unit length, as the search compares them). `None` when there is nothing to fit or
/// a vector has the wrong width.
pub fn map(bank: &Bank, vectors: &[&[f32]]) -> Option<CollectionMap> {
    let dim = bank.dim;
    if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
        return None;
    }
    let n_bank = bank.vectors.len() / dim;
    let stride = n_bank.div_ceil(MAP_FIT_ROWS).max(1);
    let units: Vec<Vec<f32>> = vectors.iter().map(|v| normalise(v)).collect();
    let mut fit: Vec<f32> = bank
        .vectors
        .chunks_exact(dim)
        .step_by(stride)
        .flatten()
        .copied()
        .collect();
    fit.extend(units.iter().flatten().copied());
    let pca = Pca::fit(&fit, dim, 2)?;
    let total: f64 = {
        let n = fit.len() / dim;
        let mut t = 0.0;
        for row in fit.chunks_exact(dim) {
            t += row
                .iter()
                .zip(&pca.mean)
                .map(|(x, m)| f64::from(x - m).powi(2))
                .sum::<f64>();
        }
        t / n as f64
    };
    let xy = |row: &[f32]| {
        let p = pca.project(row);
        [
            p.first().copied().unwrap_or(0.0),
            p.get(1).copied().unwrap_or(0.0),
        ]
    };
    let share = |i: usize| {
        if total > 0.0 {
            pca.variances.get(i).copied().unwrap_or(0.0) / total
        } else {
            0.0
        }
    };
    Some(CollectionMap {
        bank: bank.vectors.chunks_exact(dim).map(xy).collect(),
        proteins: units.iter().map(|v| xy(v)).collect(),
        explained: [share(0), share(1)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> BankEntry {
        BankEntry {
            name: name.into(),
            pdb_id: name[..4].into(),
            chain: "A".into(),
            length: 10,
            go: vec![],
            split: "train".into(),
        }
    }

    fn row(file: &str, shared: Option<Vec<f32>>) -> ProteinRow {
        ProteinRow {
            file: file.into(),
            chain: "A".into(),
            length: 70,
            noise_level: 60,
            sigma: 0.1,
            weights_sha256: "abc123".into(),
            nearest: Some((entry("1ABC_A_1"), 0.91234)),
            functions: vec![("DNA binding, \"sequence-specific\"".into(), 0.5)],
            protein: vec![1.0, 2.0, 3.0],
            shared,
        }
    }

    #[test]
    fn table_quotes_and_lists_failures() {
        let rows = [row("a,b.pdb", None), row("c.pdb", None)];
        let text = csv(&rows, &[("bad.pdb".into(), "empty file".into())]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[1],
            "0,\"a,b.pdb\",A,70,1ABC_A_1,1ABC,0.9123,\"DNA binding, \"\"sequence-specific\"\"\",0.500,"
        );
        assert_eq!(lines[3], ",bad.pdb,,,,,,,,empty file");
        assert!(
            lines
                .iter()
                .all(|l| l.matches(',').count() >= 9 || l.contains('"'))
        );
    }

    #[test]
    fn archive_holds_every_row() {
        let rows = [
            row("a.pdb", Some(vec![1.0, 0.0])),
            row("b.pdb", Some(vec![0.0, 1.0])),
        ];
        let bytes = npz(&rows, Some(&[[0.0, 1.0], [2.0, 3.0]]), "cpu").expect("npz");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).expect("zip");
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "length.npy",
                "map.npy",
                "metadata.json",
                "noise_level.npy",
                "protein.npy",
                "shared.npy",
                "sigma.npy"
            ]
        );
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut archive.by_name("metadata.json").expect("meta"),
            &mut raw,
        )
        .expect("read");
        let meta: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(meta["backend"], "cpu");
        assert_eq!(meta["rows"][1]["weights_sha256"], "abc123");
        assert_eq!(meta["rows"][1]["file"], "b.pdb");
        assert_eq!(meta["rows"][0]["noise_level"], 60);
        assert_eq!(meta["arrays"]["protein"], serde_json::json!([2, 3]));
        let partial = [row("a.pdb", Some(vec![1.0, 0.0])), row("b.pdb", None)];
        let bytes = npz(&partial, None, "cpu").expect("npz");
        assert!(!String::from_utf8_lossy(&bytes).contains("shared.npy"));
    }

    #[test]
    fn map_places_bank_and_proteins() {
        // A bank along two directions in 3-D; the proteins near its ends.
        let mut vectors = Vec::new();
        let mut entries = Vec::new();
        for i in 0..40 {
            let t = i as f32 / 39.0;
            vectors.extend(normalise(&[1.0 - t, t, 0.05 * (i % 3) as f32]));
            entries.push(entry(&format!("{:04}_A_1", 1000 + i)));
        }
        let bank = Bank {
            dim: 3,
            vectors,
            entries,
            term_vectors: vec![],
            terms: vec![],
            info: Default::default(),
        };
        let a = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 2.0, 0.0];
        let m = map(&bank, &[&a, &b]).expect("map");
        assert_eq!(m.bank.len(), 40);
        assert_eq!(m.proteins.len(), 2);
        // The ends of the bank's line are the two proteins' neighbours on the map.
        let d = |p: [f32; 2], q: [f32; 2]| (p[0] - q[0]).hypot(p[1] - q[1]);
        assert!(d(m.proteins[0], m.bank[0]) < 0.05, "{m:?}");
        assert!(d(m.proteins[1], m.bank[39]) < 0.05, "{m:?}");
        assert!(m.explained[0] > 0.9 && m.explained[0] + m.explained[1] <= 1.0 + 1e-9);
        assert!(map(&bank, &[&[1.0, 0.0]]).is_none(), "wrong width");
    }
}
