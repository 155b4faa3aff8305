//! Reading protein structures from bytes: PDB and mmCIF (plain or gzip, through pdbtbx) and the
//! training format `chains.jsonl(.gz)`. The browser has no paths, so everything starts from
//! bytes and an optional file name that hints at the format.
//!
//! A successful read returns the [`Structure`] and the [`Warning`]s met on the way; bad input
//! returns a [`ReadError`] that names the problem. Nothing here panics on any input.

pub mod header;
mod jsonl;
pub mod remote;
pub mod residues;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::io::{GunzipError, maybe_gunzip};

pub use header::Description;
pub use jsonl::{JsonChain, read_chains_jsonl};

/// Structure file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// PDB (legacy fixed-column) format.
    Pdb,
    /// mmCIF / PDBx.
    Mmcif,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pdb => "PDB",
            Format::Mmcif => "mmCIF",
        })
    }
}

/// What the B-factor column means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BFactorKind {
    /// Crystallographic temperature factor (Å²).
    Temperature,
    /// Predicted local distance difference test (0–100), as AlphaFold writes it.
    Plddt,
    /// The source has none (the training format).
    Absent,
}

/// A residue number as the file writes it: sequence number and insertion code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidueNumber {
    /// PDB `resSeq` / mmCIF `auth_seq_id`.
    pub number: isize,
    /// Insertion code, if any.
    pub insertion: Option<String>,
}

impl fmt::Display for ResidueNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.number,
            self.insertion.as_deref().unwrap_or("")
        )
    }
}

/// One protein chain of one model: the residues that have a C-alpha atom, in file order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// Chain identifier (PDB chain id / mmCIF `auth_asym_id`).
    pub id: String,
    /// Three-letter residue names as written in the file.
    pub residue_names: Vec<String>,
    /// One-letter sequence: standard residues, modified ones mapped to their parent, others `X`.
    pub sequence: String,
    /// C-alpha coordinates in Å, one per residue.
    pub ca: Vec<[f32; 3]>,
    /// Residue numbers with insertion codes, one per residue.
    pub residue_numbers: Vec<ResidueNumber>,
    /// B-factor of each C-alpha (pLDDT for predicted models; zeros where the source has none).
    pub b_factors: Vec<f32>,
}

impl Chain {
    /// Number of residues.
    pub fn len(&self) -> usize {
        self.ca.len()
    }

    /// Whether the chain has no residue.
    pub fn is_empty(&self) -> bool {
        self.ca.is_empty()
    }
}

/// One model (NMR files have many; crystal structures one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Model serial number from the file (1 when the file has no MODEL records).
    pub number: usize,
    /// Protein chains of this model.
    pub chains: Vec<Chain>,
}

/// A structure file: its models and descriptive text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Structure {
    /// The format it was read from.
    pub format: Format,
    /// Descriptive text (title, keywords, molecule names).
    pub description: Description,
    /// What the B-factor column holds.
    pub b_factor_kind: BFactorKind,
    /// All models, each with its protein chains.
    pub models: Vec<Model>,
}

impl Structure {
    /// Chains of the first model (what a viewer shows for an NMR ensemble).
    pub fn first_model_chains(&self) -> &[Chain] {
        self.models
            .first()
            .map(|m| m.chains.as_slice())
            .unwrap_or(&[])
    }

    /// A chain of the first model by id.
    pub fn chain(&self, id: &str) -> Option<&Chain> {
        self.first_model_chains().iter().find(|c| c.id == id)
    }
}

/// Something worth telling the user about a file that was read successfully.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Warning {
    /// Residues had alternate locations; the first conformer was kept.
    AltLocsDropped { chain: String, residues: usize },
    /// Residues without a C-alpha atom were skipped.
    MissingCa { chain: String, residues: usize },
    /// Residues not among the 20 standard amino acids or known modified ones became `X`.
    UnknownResidues { chain: String, names: Vec<String> },
    /// Modified residues were mapped to their parent amino acid.
    ModifiedResidues { chain: String, names: Vec<String> },
    /// A chain longer than the size limit was left out (other chains were read).
    ChainSkippedTooLong {
        chain: String,
        residues: usize,
        limit: usize,
    },
    /// Chains without any amino acid (nucleic acids, ligands, water) were left out.
    NonProteinChains { chains: Vec<String> },
    /// A warning from the PDB/mmCIF parser.
    Parser(String),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::AltLocsDropped { chain, residues } => write!(
                f,
                "chain {chain}: {residues} residue(s) with alternate locations; the first one was kept"
            ),
            Warning::MissingCa { chain, residues } => write!(
                f,
                "chain {chain}: {residues} residue(s) without a C-alpha atom were skipped"
            ),
            Warning::UnknownResidues { chain, names } => write!(
                f,
                "chain {chain}: non-standard residue(s) {} read as X",
                names.join(", ")
            ),
            Warning::ModifiedResidues { chain, names } => write!(
                f,
                "chain {chain}: modified residue(s) {} mapped to their parent amino acid",
                names.join(", ")
            ),
            Warning::ChainSkippedTooLong {
                chain,
                residues,
                limit,
            } => write!(
                f,
                "chain {chain} has {residues} residues, above the limit of {limit}; it was left out"
            ),
            Warning::NonProteinChains { chains } => write!(
                f,
                "chain(s) {} hold no amino acid and were left out",
                chains.join(", ")
            ),
            Warning::Parser(message) => write!(f, "parser: {message}"),
        }
    }
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// Zero bytes, or only whitespace.
    #[error("the file is empty")]
    Empty,
    /// Binary data that is neither gzip nor text.
    #[error(
        "this is not a structure file: it holds binary data (expected PDB or mmCIF text, optionally gzipped)"
    )]
    Binary,
    /// Text that is neither PDB nor mmCIF.
    #[error("this is not a structure file: {0}")]
    NotStructure(String),
    /// The file ends before its content does.
    #[error("the file is truncated: {0}")]
    Truncated(String),
    /// Decompressing would exceed the size limit.
    #[error(
        "the gzip data expands beyond {limit} bytes (a decompression bomb or a file too large to read here)"
    )]
    DecompressionBomb { limit: usize },
    /// The file (after decompression) is larger than allowed.
    #[error("the file is {size} bytes, above the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// No chain has an amino acid with a C-alpha atom.
    #[error("no chain with C-alpha atoms: the file holds no protein residue with a CA atom")]
    NoCaChain,
    /// Every protein chain is above the residue limit.
    #[error(
        "chain {chain} has {residues} residues, above the limit of {limit} (raise it to read this file)"
    )]
    ChainTooLong {
        chain: String,
        residues: usize,
        limit: usize,
    },
    /// The parser refused the file.
    #[error("the {format} file could not be parsed: {message}")]
    Parse { format: Format, message: String },
    /// A C-alpha coordinate is not a finite number, or absurdly large.
    #[error(
        "chain {chain}, residue {residue}: the C-alpha coordinates are not finite numbers within ±1,000,000 Å"
    )]
    BadCoordinates { chain: String, residue: String },
    /// A line of the training format is not valid.
    #[error("line {line}: {message}")]
    Json { line: usize, message: String },
}

/// Limits and choices for reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Largest chain read, in residues (default 2,000). Longer chains are left out with a
    /// warning; if every chain is longer, reading fails with [`ReadError::ChainTooLong`].
    pub max_residues_per_chain: usize,
    /// Largest file after decompression, in bytes (default 256 MiB).
    pub max_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_residues_per_chain: 2000,
            max_bytes: 256 << 20,
        }
    }
}

/// A structure and the warnings met while reading it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The structure.
    pub structure: Structure,
    /// What the user should know.
    pub warnings: Vec<Warning>,
}

/// Largest coordinate accepted (Å); beyond it distances overflow f32 arithmetic.
pub const MAX_COORDINATE: f32 = 1e6;

impl From<GunzipError> for ReadError {
    fn from(e: GunzipError) -> Self {
        match e {
            GunzipError::DecompressionBomb { limit } => ReadError::DecompressionBomb { limit },
            GunzipError::TooLarge { size, limit } => ReadError::TooLarge { size, limit },
            GunzipError::Truncated(why) => ReadError::Truncated(why),
        }
    }
}

fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return true;
    }
    let odd = head
        .iter()
        .filter(|&&b| b < 0x09 || (0x0e..0x20).contains(&b) || b == 0x7f)
        .count();
    odd * 20 > head.len()
}

/// The format from the content (an mmCIF data block, or PDB records); the file name (extension,
/// `.gz` stripped) only decides when the content has both. `None` when the content has neither,
/// whatever the name says.
pub fn detect_format(text: &str, name: Option<&str>) -> Option<Format> {
    const RECORDS: [&str; 10] = [
        "ATOM  ", "HETATM", "HEADER", "MODEL ", "CRYST1", "REMARK", "TITLE ", "COMPND", "SEQRES",
        "EXPDTA",
    ];
    let (mut cif, mut pdb) = (false, false);
    for line in text.lines().take(20_000) {
        if line.trim_start().starts_with("data_") {
            cif = true;
        } else if RECORDS.iter().any(|r| line.starts_with(r)) {
            pdb = true;
        }
        if cif && pdb {
            break;
        }
    }
    let by_name = name.and_then(|name| {
        let lower = name.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower).to_string();
        if lower.ends_with(".cif") || lower.ends_with(".mmcif") {
            Some(Format::Mmcif)
        } else if lower.ends_with(".pdb") || lower.ends_with(".ent") || lower.ends_with(".pdb1") {
            Some(Format::Pdb)
        } else {
            None
        }
    });
    match (cif, pdb) {
        (true, false) => Some(Format::Mmcif),
        (false, true) => Some(Format::Pdb),
        (true, true) => Some(by_name.unwrap_or(Format::Mmcif)),
        (false, false) => None,
    }
}

/// Read a PDB or mmCIF file (plain or gzip) from bytes. `name` (a file name) helps choose the
/// format; without it the content decides.
pub fn read_structure(
    bytes: &[u8],
    name: Option<&str>,
    options: &ReadOptions,
) -> Result<Parsed, ReadError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReadError::Empty);
    }
    let data = maybe_gunzip(bytes, options.max_bytes)?;
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReadError::Empty);
    }
    if looks_binary(&data) {
        return Err(ReadError::Binary);
    }
    let text = String::from_utf8_lossy(&data);
    let format = detect_format(&text, name).ok_or_else(|| {
        ReadError::NotStructure(
            "no PDB records (ATOM, HEADER, …) and no mmCIF data block (data_…) were found".into(),
        )
    })?;
    let description = match format {
        Format::Pdb => {
            if let Some(why) = header::pdb_truncated(&text) {
                return Err(ReadError::Truncated(why));
            }
            header::pdb_description(&text)
        }
        Format::Mmcif => header::cif_description(&text)
            .map_err(|header::Unterminated(why)| ReadError::Truncated(why))?,
    };
    // pdbtbx slices lines by byte offsets and panics inside multi-byte characters (found by
    // fuzzing; a panic aborts in wasm), so it gets an ASCII copy with every non-ASCII byte
    // replaced one for one, which keeps the fixed columns of PDB records in place.
    let ascii: String = data
        .iter()
        .map(|&b| if b.is_ascii() { b as char } else { '?' })
        .collect();
    let (parsed_models, parser_warnings) = parse_models(&ascii, format)?;
    let b_factor_kind = if description.mentions_prediction() || text.contains("_ma_qa_metric") {
        BFactorKind::Plddt
    } else {
        BFactorKind::Temperature
    };
    let mut warnings: Vec<Warning> = parser_warnings;
    let mut models = Vec::new();
    let mut too_long: Option<(String, usize)> = None;
    let mut non_protein = Vec::new();
    for (model_index, (number, model)) in parsed_models.iter().enumerate() {
        let mut chains = Vec::new();
        for chain in model.chains() {
            let converted = convert_chain(chain, &mut warnings, model_index == 0)?;
            let Some(converted) = converted else {
                if model_index == 0 {
                    non_protein.push(chain.id().to_string());
                }
                continue;
            };
            if converted.len() > options.max_residues_per_chain {
                if model_index == 0 {
                    warnings.push(Warning::ChainSkippedTooLong {
                        chain: converted.id.clone(),
                        residues: converted.len(),
                        limit: options.max_residues_per_chain,
                    });
                    too_long.get_or_insert((converted.id.clone(), converted.len()));
                }
                continue;
            }
            chains.push(converted);
        }
        if !chains.is_empty() {
            models.push(Model {
                number: *number,
                chains,
            });
        }
    }
    if !non_protein.is_empty() {
        warnings.push(Warning::NonProteinChains {
            chains: non_protein,
        });
    }
    if models.is_empty() {
        return Err(match too_long {
            Some((chain, residues)) => ReadError::ChainTooLong {
                chain,
                residues,
                limit: options.max_residues_per_chain,
            },
            None => ReadError::NoCaChain,
        });
    }
    Ok(Parsed {
        structure: Structure {
            format,
            description,
            b_factor_kind,
            models,
        },
        warnings,
    })
}

/// pdbtbx models, each with its model number.
type NumberedModels = Vec<(usize, pdbtbx::Model)>;

/// Parse the coordinates into pdbtbx models, each with its number.
///
/// pdbtbx refuses a whole file over problems that do not touch the coordinates (short
/// bibliography records, NMR models whose waters differ), so PDB files go to it as their
/// coordinate records only (padded to 80 columns), one model at a time; our own pass reads the
/// descriptive records. A multi-model mmCIF file that pdbtbx refuses only for inconsistent
/// models is read for its first model, with a warning.
fn parse_models(text: &str, format: Format) -> Result<(NumberedModels, Vec<Warning>), ReadError> {
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    match format {
        Format::Pdb => {
            for (number, chunk) in pdb_model_chunks(text) {
                let (pdb, w) = run_pdbtbx(&chunk, format, false)?;
                warnings.extend(w);
                out.extend(pdb.models().next().cloned().map(|m| (number, m)));
            }
        }
        Format::Mmcif => {
            let minimal = header::cif_atom_site_only(text)
                .map_err(|message| ReadError::Parse { format, message })?;
            parse_mmcif(&minimal, &mut out, &mut warnings)?;
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    warnings.retain(|w| seen.insert(w.to_string()));
    warnings.truncate(12);
    Ok((out, warnings))
}

fn parse_mmcif(
    text: &str,
    out: &mut NumberedModels,
    warnings: &mut Vec<Warning>,
) -> Result<(), ReadError> {
    let format = Format::Mmcif;
    match run_pdbtbx(text, format, false) {
        Ok((pdb, w)) => {
            warnings.extend(w);
            out.extend(pdb.models().map(|m| (m.serial_number(), m.clone())));
        }
        Err(ReadError::Parse { message, .. }) if message.contains("Invalid Model") => {
            let (pdb, w) = run_pdbtbx(text, format, true)?;
            warnings.extend(w);
            warnings.push(Warning::Parser(
                "the models differ in their atoms; only the first model was read".into(),
            ));
            out.extend(pdb.models().map(|m| (m.serial_number(), m.clone())));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The coordinate records of a PDB file, split by MODEL, each line padded to 80 columns.
fn pdb_model_chunks(text: &str) -> Vec<(usize, String)> {
    let mut chunks: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in text.lines() {
        if line.starts_with("MODEL") {
            if let Some(c) = current.take() {
                chunks.push(c);
            }
            let number = line
                .get(5..)
                .and_then(|r| r.trim().parse().ok())
                .unwrap_or(chunks.len() + 1);
            current = Some((number, String::new()));
        } else if line.starts_with("ENDMDL") {
            if let Some(c) = current.take() {
                chunks.push(c);
            }
        } else if line.starts_with("ATOM  ") || line.starts_with("HETATM") {
            let chunk = current.get_or_insert_with(|| (chunks.len() + 1, String::new()));
            chunk.1.push_str(&normalise_atom_record(line));
            chunk.1.push('\n');
        }
    }
    chunks.extend(current);
    chunks.retain(|(_, c)| !c.is_empty());
    chunks
}

/// An ATOM/HETATM record as pdbtbx can take it without panicking: 80 printable ASCII columns,
/// a non-blank atom name (columns 13–16) and residue name (18–20), coordinates that are finite
/// or unparsable (then pdbtbx reports an error), occupancy 1.00 (unused here; pdbtbx panics on a
/// negative one), a finite B-factor, no charge (79–80; unused).
fn normalise_atom_record(line: &str) -> String {
    let mut cols: Vec<u8> = line
        .trim_end_matches('\r')
        .bytes()
        .take(80)
        .map(|b| if (32..127).contains(&b) { b } else { b'?' })
        .collect();
    cols.resize(80, b' ');
    if cols[12..16].iter().all(|&b| b == b' ') {
        cols[12..16].copy_from_slice(b" X  ");
    }
    if cols[17..20].iter().all(|&b| b == b' ') {
        cols[17..20].copy_from_slice(b"UNK");
    }
    let number = |c: &[u8]| {
        std::str::from_utf8(c)
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
    };
    for field in [30..38, 38..46, 46..54] {
        if number(&cols[field.clone()]).is_some_and(|v| !v.is_finite()) {
            cols[field].copy_from_slice(b"????????");
        }
    }
    cols[54..60].copy_from_slice(b"  1.00");
    if number(&cols[60..66]).is_none_or(|v| !v.is_finite()) {
        cols[60..66].copy_from_slice(b"  0.00");
    }
    cols[78..80].copy_from_slice(b"  ");
    cols.into_iter().map(char::from).collect()
}

fn run_pdbtbx(
    text: &str,
    format: Format,
    only_first_model: bool,
) -> Result<(pdbtbx::PDB, Vec<Warning>), ReadError> {
    let mut opts = pdbtbx::ReadOptions::new();
    opts.set_format(match format {
        Format::Pdb => pdbtbx::Format::Pdb,
        Format::Mmcif => pdbtbx::Format::Mmcif,
    })
    .set_level(pdbtbx::StrictnessLevel::Loose)
    .set_discard_hydrogens(true)
    .set_only_first_model(only_first_model);
    let reader = std::io::BufReader::new(text.as_bytes());
    // pdbtbx can panic on some malformed input; a panic must not reach the user as a crash.
    let result =
        std::panic::catch_unwind(|| opts.read_raw(reader)).map_err(|_| ReadError::Parse {
            format,
            message: "the parser failed on malformed records".into(),
        })?;
    match result {
        Ok((pdb, errors)) => Ok((
            pdb,
            errors
                .iter()
                .map(|e| Warning::Parser(e.short_description().to_string()))
                .collect(),
        )),
        Err(errors) => {
            let mut seen = std::collections::BTreeSet::new();
            let message = errors
                .iter()
                .filter(|e| e.fails(pdbtbx::StrictnessLevel::Loose))
                .map(|e| format!("{}: {}", e.short_description(), e.long_description()))
                .filter(|m| seen.insert(m.clone()))
                .take(3)
                .collect::<Vec<_>>()
                .join("; ");
            Err(ReadError::Parse { format, message })
        }
    }
}

fn is_calpha(atom: &pdbtbx::Atom) -> bool {
    atom.name().trim() == "CA"
        && atom
            .element()
            .is_none_or(|e| matches!(e, pdbtbx::Element::C))
}

/// Convert one pdbtbx chain; `None` if it holds no amino acid residue.
fn convert_chain(
    chain: &pdbtbx::Chain,
    warnings: &mut Vec<Warning>,
    report: bool,
) -> Result<Option<Chain>, ReadError> {
    let mut out = Chain {
        id: chain.id().to_string(),
        residue_names: Vec::new(),
        sequence: String::new(),
        ca: Vec::new(),
        residue_numbers: Vec::new(),
        b_factors: Vec::new(),
    };
    let mut altlocs = 0;
    let mut missing_ca = 0;
    let mut unknown = std::collections::BTreeSet::new();
    let mut modified = std::collections::BTreeSet::new();
    let mut amino_acids = 0;
    for residue in chain.residues() {
        let Some(conformer) = residue.conformers().next() else {
            continue;
        };
        let name = conformer.name().trim().to_ascii_uppercase();
        let letter = residues::one_letter(&name);
        let calpha = conformer.atoms().find(|a| is_calpha(a));
        let any_hetero = conformer.atoms().all(|a| a.hetero());
        // An amino acid: a known (standard or modified) residue, or an ATOM-record residue with
        // a C-alpha (e.g. UNK). Waters, ligands and ions are HETATM without a known name.
        let is_amino = letter.is_some() || (!any_hetero && calpha.is_some());
        if !is_amino {
            continue;
        }
        amino_acids += 1;
        let Some(ca) = calpha else {
            missing_ca += 1;
            continue;
        };
        if residue.conformer_count() > 1 || conformer.alternative_location().is_some() {
            altlocs += 1;
        }
        let (x, y, z) = ca.pos();
        let b_factor = ca.b_factor() as f32;
        let ca = [x as f32, y as f32, z as f32];
        let number = ResidueNumber {
            number: residue.serial_number(),
            insertion: residue.insertion_code().map(str::to_string),
        };
        if ca
            .iter()
            .any(|v| !v.is_finite() || v.abs() > MAX_COORDINATE)
        {
            return Err(ReadError::BadCoordinates {
                chain: out.id.clone(),
                residue: number.to_string(),
            });
        }
        match letter {
            Some(l) => {
                if residues::is_modified(&name) {
                    modified.insert(name.clone());
                }
                out.sequence.push(l);
            }
            None => {
                unknown.insert(name.clone());
                out.sequence.push('X');
            }
        }
        out.residue_names.push(name);
        out.ca.push(ca);
        out.b_factors.push(b_factor);
        out.residue_numbers.push(number);
    }
    if amino_acids == 0 {
        return Ok(None);
    }
    if report {
        let id = out.id.clone();
        if altlocs > 0 {
            warnings.push(Warning::AltLocsDropped {
                chain: id.clone(),
                residues: altlocs,
            });
        }
        if missing_ca > 0 {
            warnings.push(Warning::MissingCa {
                chain: id.clone(),
                residues: missing_ca,
            });
        }
        if !unknown.is_empty() {
            warnings.push(Warning::UnknownResidues {
                chain: id.clone(),
                names: unknown.into_iter().collect(),
            });
        }
        if !modified.is_empty() {
            warnings.push(Warning::ModifiedResidues {
                chain: id,
                names: modified.into_iter().collect(),
            });
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}
