//! The training format `chains.jsonl(.gz)`: one JSON object a line,
//! `{"name","pdb_id","chain","start_resnum","seq","ca":[[x,y,z],…],"split",…}`.

use serde::Deserialize;

use super::{Chain, ReadError, ResidueNumber, residues};
use crate::io::{json_lines, maybe_gunzip};

/// One line of `chains.jsonl`, with the [`Chain`] it describes.
#[derive(Debug, Clone)]
pub struct JsonChain {
    /// Segment name (`12AS_A_4`).
    pub name: String,
    /// PDB entry id.
    pub pdb_id: String,
    /// Data split (`train`, `val`, `ppi_test_like`, …).
    pub split: String,
    /// 30%-identity cluster name.
    pub cluster: Option<String>,
    /// DSSP secondary structure string, if present.
    pub dssp: Option<String>,
    /// The chain (B-factors are zeros: the format has none).
    pub chain: Chain,
}

#[derive(Deserialize)]
struct Line {
    name: String,
    #[serde(default)]
    pdb_id: String,
    #[serde(default)]
    chain: String,
    #[serde(default = "one")]
    start_resnum: isize,
    seq: String,
    ca: Vec<[f32; 3]>,
    #[serde(default)]
    split: String,
    #[serde(default)]
    cluster30: Option<String>,
    #[serde(default)]
    dssp: Option<String>,
}

fn one() -> isize {
    1
}

/// Read every chain of a `chains.jsonl` file (plain or gzip). Lines that fail to parse, or
/// whose sequence and coordinates disagree in length, are errors naming the line.
pub fn read_chains_jsonl(bytes: &[u8], max_bytes: usize) -> Result<Vec<JsonChain>, ReadError> {
    let data = maybe_gunzip(bytes, max_bytes)?;
    let text = std::str::from_utf8(&data)
        .map_err(|e| ReadError::NotStructure(format!("the JSON lines are not UTF-8 ({e})")))?;
    let mut out = Vec::new();
    for (line_no, raw) in json_lines(text) {
        let line: Line = serde_json::from_str(raw).map_err(|e| ReadError::Json {
            line: line_no,
            message: e.to_string(),
        })?;
        if line.seq.chars().count() != line.ca.len() {
            return Err(ReadError::Json {
                line: line_no,
                message: format!(
                    "{}: {} residues in seq but {} C-alpha rows",
                    line.name,
                    line.seq.chars().count(),
                    line.ca.len()
                ),
            });
        }
        if line
            .ca
            .iter()
            .flatten()
            .any(|v| !v.is_finite() || v.abs() > super::MAX_COORDINATE)
        {
            return Err(ReadError::Json {
                line: line_no,
                message: format!("{}: coordinates are not finite", line.name),
            });
        }
        let sequence: String = line
            .seq
            .chars()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if residues::amino_acid_index(c).is_some() {
                    c
                } else {
                    'X'
                }
            })
            .collect();
        let n = line.ca.len();
        let chain = Chain {
            id: line.chain,
            residue_names: sequence
                .chars()
                .map(|c| residues::three_letter(c).to_string())
                .collect(),
            sequence,
            residue_numbers: (0..n)
                .map(|i| ResidueNumber {
                    number: line.start_resnum + i as isize,
                    insertion: None,
                })
                .collect(),
            b_factors: vec![0.0; n],
            ca: line.ca,
        };
        out.push(JsonChain {
            name: line.name,
            pdb_id: line.pdb_id,
            split: line.split,
            cluster: line.cluster30,
            dssp: line.dssp,
            chain,
        });
    }
    Ok(out)
}
