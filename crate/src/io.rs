//! Small helpers that every reader and writer of the crate shares: gzip with a size limit, JSON
//! lines, SHA-256 identities and deterministic safetensors writing. Nothing here knows about
//! proteins; the callers turn these errors into their own.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;

use sha2::{Digest, Sha256};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why bytes could not be decompressed (or taken as they are) within a size limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GunzipError {
    /// Decompressing would exceed the size limit.
    #[error("the gzip data expands beyond {limit} bytes")]
    DecompressionBomb { limit: usize },
    /// Uncompressed data larger than the limit.
    #[error("the data is {size} bytes, above the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The gzip stream ends early or is corrupt.
    #[error("{0}")]
    Truncated(String),
}

/// Decompress gzip data if `bytes` starts with the gzip magic, refusing to expand past `limit`;
/// other bytes are returned as they are (if within `limit`).
pub fn maybe_gunzip(bytes: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, GunzipError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        if bytes.len() > limit {
            return Err(GunzipError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    match decoder.take(limit as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(GunzipError::DecompressionBomb { limit }),
        Ok(_) => Ok(Cow::Owned(out)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(GunzipError::Truncated(
            "the gzip stream ends early".to_string(),
        )),
        Err(e) => Err(GunzipError::Truncated(format!(
            "the gzip data is corrupt ({e})"
        ))),
    }
}

/// The non-blank lines of a JSON-lines text with their 1-based line numbers.
pub fn json_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !line.trim().is_empty())
}

/// Hex SHA-256 of bytes (weights, banks and caches are identified by it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One tensor to write: name, safetensors dtype (`F32`, `F16`, `I8`, `I64`, …), shape, bytes.
pub type SafetensorsEntry = (String, &'static str, Vec<usize>, Vec<u8>);

/// Write safetensors deterministically: tensors in name order, header keys sorted, the header
/// padded with spaces to 8 bytes (the `safetensors` crate's writer orders the metadata by a
/// hash map, so the same weights would get a different SHA-256 on every export).
pub fn serialize_safetensors(
    entries: &[SafetensorsEntry],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    let width = |dtype: &str| match dtype {
        "F64" | "I64" | "U64" => Some(8),
        "F32" | "I32" | "U32" => Some(4),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "I8" | "U8" | "BOOL" => Some(1),
        _ => None,
    };
    let mut sorted: Vec<&SafetensorsEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in &sorted {
        let w = width(dtype).ok_or_else(|| format!("{name}: unknown dtype {dtype}"))?;
        if shape.iter().product::<usize>() * w != bytes.len() {
            return Err(format!(
                "{name}: {} bytes do not hold a {dtype} tensor of shape {shape:?}",
                bytes.len()
            ));
        }
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + bytes.len()],
            }),
        );
        offset += bytes.len();
    }
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut json =
        serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| e.to_string())?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, _, bytes) in sorted {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// A file's name without its directory, `.gz` and extension (`x/1abc.cif.gz` → `1abc`).
pub fn file_stem(file: &std::path::Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("structure");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    std::path::Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
        .to_string()
}
