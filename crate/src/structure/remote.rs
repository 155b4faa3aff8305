//! Structures named by an identifier: a PDB entry (`1ubq`) from the RCSB archive, or a UniProt
//! accession (`P69905`) from the AlphaFold database. This module knows the identifiers and the
//! archives' URL layout; fetching is the caller's (the page uses the browser's `fetch`). The
//! archives' base URLs are [`Sources`], so a mirror — or a test's local stand-in server with the
//! same layout — can replace them.

use serde::Deserialize;

/// An identifier a user may type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StructureId {
    /// A PDB entry, upper-case: the classic four characters (`1UBQ`) or the extended form
    /// (`PDB_00001UBQ`).
    Pdb(String),
    /// A UniProtKB accession, upper-case (`P69905`, `A0A023GPI8`).
    UniProt(String),
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Nothing typed.
    #[error("type a PDB ID (e.g. 1ubq) or a UniProt accession (e.g. P69905)")]
    Empty,
    /// Neither form.
    #[error(
        "{0:?} is neither a PDB ID (four characters, a digit first, e.g. 1ubq) nor a UniProt accession (e.g. P69905)"
    )]
    Unrecognised(String),
    /// Not a PDB ID where one is required.
    #[error("{0:?} is not a PDB ID (four characters, a digit first, e.g. 1ubq)")]
    NotPdb(String),
    /// Not a UniProt accession where one is required.
    #[error("{0:?} is not a UniProt accession (e.g. P69905)")]
    NotUniProt(String),
    /// A base URL that is not http(s).
    #[error("a structure source must be an http(s) URL, not {0:?}")]
    Source(String),
    /// The AlphaFold database's answer could not be read or lists no model.
    #[error("the AlphaFold database's answer for {accession}: {detail}")]
    AlphaFoldAnswer {
        /// The accession asked for.
        accession: String,
        /// What was wrong.
        detail: String,
    },
}

impl StructureId {
    /// Read what a user typed: a PDB ID or a UniProt accession, case and surrounding space
    /// ignored.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(IdError::Empty);
        }
        if let Ok(id) = Self::pdb(t) {
            return Ok(id);
        }
        Self::uniprot(t).map_err(|_| IdError::Unrecognised(t.to_string()))
    }

    /// A PDB ID: four characters, a digit 1–9 then three letters or digits (`1ubq`), or the
    /// extended `pdb_0000xxxx` form.
    pub fn pdb(text: &str) -> Result<Self, IdError> {
        let t = text.trim().to_ascii_uppercase();
        let classic = |s: &str| {
            let b = s.as_bytes();
            b.len() == 4
                && matches!(b[0], b'1'..=b'9')
                && b[1..].iter().all(|c| c.is_ascii_alphanumeric())
        };
        let ok = classic(&t)
            || t.strip_prefix("PDB_").is_some_and(|rest| {
                rest.len() == 8
                    && rest.bytes().all(|c| c.is_ascii_alphanumeric())
                    && classic(&rest[4..])
            });
        if ok {
            Ok(Self::Pdb(t))
        } else {
            Err(IdError::NotPdb(text.trim().to_string()))
        }
    }

    /// A UniProtKB accession, by UniProt's published pattern:
    /// `[OPQ][0-9][A-Z0-9]{3}[0-9]` or `[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2}`.
    pub fn uniprot(text: &str) -> Result<Self, IdError> {
        let t = text.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        let digit = |c: u8| c.is_ascii_digit();
        let alnum = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
        let opq = b.len() == 6
            && matches!(b[0], b'O' | b'P' | b'Q')
            && digit(b[1])
            && b[2..5].iter().all(|&c| alnum(c))
            && digit(b[5]);
        let block = |s: &[u8]| {
            s.len() == 4 && s[0].is_ascii_uppercase() && alnum(s[1]) && alnum(s[2]) && digit(s[3])
        };
        let other = (b.len() == 6 || b.len() == 10)
            && b[0].is_ascii_uppercase()
            && !matches!(b[0], b'O' | b'P' | b'Q')
            && digit(b[1])
            && b[2..].chunks(4).all(block);
        if opq || other {
            Ok(Self::UniProt(t))
        } else {
            Err(IdError::NotUniProt(text.trim().to_string()))
        }
    }

    /// The identifier as written in URLs and file names.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pdb(s) | Self::UniProt(s) => s,
        }
    }

    /// What it is, in words: "PDB entry 1UBQ", "UniProt P69905".
    pub fn describe(&self) -> String {
        match self {
            Self::Pdb(s) => format!("PDB entry {s}"),
            Self::UniProt(s) => format!("UniProt {s} (AlphaFold model)"),
        }
    }
}

/// Base URLs of the archives (no trailing slash needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// RCSB file server: `<rcsb>/download/<ID>.cif`.
    pub rcsb: String,
    /// AlphaFold database: `<alphafold>/api/prediction/<ACCESSION>` lists the models' files.
    pub alphafold: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            rcsb: "https://files.rcsb.org".into(),
            alphafold: "https://alphafold.ebi.ac.uk".into(),
        }
    }
}

/// Check a base URL given by a user: http(s), no spaces; returned without a trailing slash.
pub fn source_url(text: &str) -> Result<String, IdError> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let scheme = lower.starts_with("https://") || lower.starts_with("http://");
    if !scheme || t.chars().any(|c| c.is_whitespace() || c == '"' || c == '<') {
        return Err(IdError::Source(t.to_string()));
    }
    Ok(t.trim_end_matches('/').to_string())
}

/// The first request for an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The structure file itself, with the file name to read it under (its format hint).
    File {
        /// URL of the file.
        url: String,
        /// Name for the reader and the page (`1UBQ.cif`).
        name: String,
    },
    /// The AlphaFold database's list of models, to be read by [`alphafold_file`].
    AlphaFoldApi {
        /// URL of the API answer (JSON).
        url: String,
    },
}

impl Sources {
    /// Where to start for `id`.
    pub fn request(&self, id: &StructureId) -> Request {
        match id {
            StructureId::Pdb(s) => Request::File {
                url: format!("{}/download/{s}.cif", self.rcsb.trim_end_matches('/')),
                name: format!("{s}.cif"),
            },
            StructureId::UniProt(s) => Request::AlphaFoldApi {
                url: format!(
                    "{}/api/prediction/{s}",
                    self.alphafold.trim_end_matches('/')
                ),
            },
        }
    }
}

/// One model in the AlphaFold database's answer (fields we use; others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlphaFoldModel {
    entry_id: Option<String>,
    pdb_url: Option<String>,
    cif_url: Option<String>,
}

/// The structure file of the first model in the AlphaFold database's answer to
/// `/api/prediction/<accession>` (a JSON list): its PDB file (pLDDT in the B-factor column), or
/// its mmCIF file when it has no PDB file. Returns `Request::File`.
pub fn alphafold_file(accession: &str, answer: &str) -> Result<Request, IdError> {
    let fail = |detail: String| IdError::AlphaFoldAnswer {
        accession: accession.to_string(),
        detail,
    };
    let models: Vec<AlphaFoldModel> = serde_json::from_str(answer)
        .map_err(|e| fail(format!("not the expected JSON list ({e})")))?;
    let model = models
        .into_iter()
        .next()
        .ok_or_else(|| fail("no model for this accession".into()))?;
    let (url, ext) = match (model.pdb_url, model.cif_url) {
        (Some(u), _) => (u, "pdb"),
        (None, Some(u)) => (u, "cif"),
        (None, None) => return Err(fail("the model lists no structure file".into())),
    };
    let stem = model
        .entry_id
        .filter(|e| e.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        .unwrap_or_else(|| format!("AF-{accession}-F1"));
    Ok(Request::File {
        url,
        name: format!("{stem}.{ext}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        let pdb = |s: &str| StructureId::Pdb(s.into());
        let uniprot = |s: &str| StructureId::UniProt(s.into());
        for (typed, id) in [
            (" 1ubq ", pdb("1UBQ")),
            ("pdb_00001ubq", pdb("PDB_00001UBQ")),
            ("p69905", uniprot("P69905")),
            ("A0A023GPI8", uniprot("A0A023GPI8")),
            ("Q5VSL9", uniprot("Q5VSL9")),
        ] {
            assert_eq!(StructureId::parse(typed), Ok(id), "{typed}");
        }
        assert_eq!(StructureId::parse("  "), Err(IdError::Empty));
        for bad in [
            "ubq",
            "0abc",
            "1ub",
            "1ubq1",
            "P6990",
            "hemoglobin",
            "1u-q",
            "O1234A",
        ] {
            assert!(
                matches!(StructureId::parse(bad), Err(IdError::Unrecognised(_))),
                "{bad}"
            );
        }
        assert!(StructureId::pdb("P69905").is_err());
        assert!(StructureId::uniprot("1ubq").is_err());
    }

    #[test]
    fn urls() {
        let sources = Sources::default();
        assert_eq!(
            sources.request(&StructureId::Pdb("1UBQ".into())),
            Request::File {
                url: "https://files.rcsb.org/download/1UBQ.cif".into(),
                name: "1UBQ.cif".into()
            }
        );
        let local = Sources {
            rcsb: source_url("http://127.0.0.1:8001/rcsb/").expect("ok"),
            alphafold: source_url("http://127.0.0.1:8001/afdb").expect("ok"),
        };
        assert_eq!(
            local.request(&StructureId::UniProt("P69905".into())),
            Request::AlphaFoldApi {
                url: "http://127.0.0.1:8001/afdb/api/prediction/P69905".into()
            }
        );
        assert!(source_url("javascript:alert(1)").is_err());
        assert!(source_url("ftp://x").is_err());
        assert!(source_url("https://a b").is_err());
    }

    #[test]
    fn alphafold_answers() {
        let answer = r#"[{"entryId":"AF-P69905-F1","uniprotAccession":"P69905",
            "pdbUrl":"https://alphafold.ebi.ac.uk/files/AF-P69905-F1-model_v4.pdb",
            "cifUrl":"https://alphafold.ebi.ac.uk/files/AF-P69905-F1-model_v4.cif"}]"#;
        assert_eq!(
            alphafold_file("P69905", answer),
            Ok(Request::File {
                url: "https://alphafold.ebi.ac.uk/files/AF-P69905-F1-model_v4.pdb".into(),
                name: "AF-P69905-F1.pdb".into()
            })
        );
        let cif_only = r#"[{"cifUrl":"https://x/files/m.cif"}]"#;
        assert_eq!(
            alphafold_file("P69905", cif_only),
            Ok(Request::File {
                url: "https://x/files/m.cif".into(),
                name: "AF-P69905-F1.cif".into()
            })
        );
        for bad in ["[]", "{}", "<html>", r#"[{"entryId":"x"}]"#] {
            assert!(
                matches!(
                    alphafold_file("P69905", bad),
                    Err(IdError::AlphaFoldAnswer { .. })
                ),
                "{bad}"
            );
        }
    }
}
