//! Exports that work the same natively and in the browser: NumPy `.npy` arrays and `.npz`
//! archives (a stored zip of `.npy` files, as `numpy.savez` writes), built in memory.

use std::io::{Cursor, Write};

use npyz::WriterBuilder;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The array's values do not fill its shape.
    #[error("array {name}: {values} values do not fill shape {shape:?}")]
    Shape {
        name: String,
        shape: Vec<usize>,
        values: usize,
    },
    /// Writing failed.
    #[error("writing {0} failed: {1}")]
    Io(String, std::io::Error),
    /// The zip container failed.
    #[error("building the npz archive failed: {0}")]
    Zip(String),
}

/// A named f32 array, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Array<'a> {
    /// Name inside the archive (no `.npy`).
    pub name: &'a str,
    /// Extents.
    pub shape: &'a [usize],
    /// Values, row-major.
    pub values: &'a [f32],
}

/// One `.npy` file.
pub fn npy_bytes(array: Array<'_>) -> Result<Vec<u8>, ExportError> {
    let expected: usize = array.shape.iter().product();
    if expected != array.values.len() {
        return Err(ExportError::Shape {
            name: array.name.to_string(),
            shape: array.shape.to_vec(),
            values: array.values.len(),
        });
    }
    let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::new();
    let io = |e| ExportError::Io(array.name.to_string(), e);
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .map_err(io)?;
    writer.extend(array.values.iter().copied()).map_err(io)?;
    writer.finish().map_err(io)?;
    Ok(out)
}

/// An `.npz` archive of several arrays (uncompressed, like `numpy.savez`).
pub fn npz_bytes(arrays: &[Array<'_>]) -> Result<Vec<u8>, ExportError> {
    npz_bytes_with(arrays, &[])
}

/// An `.npz` archive of arrays and other members (`(name, bytes)`, e.g. a `metadata.json`;
/// `numpy.load(...)[name]` returns such a member's raw bytes).
pub fn npz_bytes_with(
    arrays: &[Array<'_>],
    files: &[(&str, &[u8])],
) -> Result<Vec<u8>, ExportError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for array in arrays {
        let npy = npy_bytes(*array)?;
        zip.start_file(format!("{}.npy", array.name), options)
            .map_err(|e| ExportError::Zip(e.to_string()))?;
        zip.write_all(&npy)
            .map_err(|e| ExportError::Io(array.name.to_string(), e))?;
    }
    for (name, bytes) in files {
        zip.start_file(*name, options)
            .map_err(|e| ExportError::Zip(e.to_string()))?;
        zip.write_all(bytes)
            .map_err(|e| ExportError::Io((*name).to_string(), e))?;
    }
    let cursor = zip.finish().map_err(|e| ExportError::Zip(e.to_string()))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_round_trip() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0f32];
        let bytes = npz_bytes(&[
            Array {
                name: "a",
                shape: &[2, 3],
                values: &a,
            },
            Array {
                name: "b",
                shape: &[1],
                values: &b,
            },
        ])
        .expect("npz");
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        assert_eq!(names, ["a.npy", "b.npy"]);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("a.npy").expect("a"), &mut raw)
            .expect("read");
        let npy = npyz::NpyFile::new(&raw[..]).expect("npy");
        assert_eq!(npy.shape(), &[2, 3]);
        assert_eq!(npy.into_vec::<f32>().expect("values"), a);
        assert!(
            npy_bytes(Array {
                name: "x",
                shape: &[4],
                values: &a
            })
            .is_err()
        );
    }
}
