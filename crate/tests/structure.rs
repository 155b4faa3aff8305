//! Structure reading: one test per class of bad input, the training format, and synthetic
//! files that exercise each path (real PDB/mmCIF entries are in `real_files.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

use std::io::Write;

use foldspace::structure::{
    BFactorKind, Format, ReadError, ReadOptions, Warning, read_chains_jsonl, read_structure,
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn atom(
    serial: usize,
    name: &str,
    res: &str,
    chain: char,
    num: isize,
    xyz: [f64; 3],
    hetero: bool,
) -> String {
    let record = if hetero { "HETATM" } else { "ATOM  " };
    let element = name.trim().chars().next().unwrap_or('C');
    format!(
        "{record}{serial:>5} {name:<4} {res:>3} {chain}{num:>4}    {:>8.3}{:>8.3}{:>8.3}  1.00{:>6.2}          {element:>2}\n",
        xyz[0],
        xyz[1],
        xyz[2],
        20.0 + num as f64
    )
}

/// A helix-like C-alpha trace of `n` residues as a PDB file.
fn pdb_chain(chain: char, n: usize, start_serial: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let t = i as f64 * 100f64.to_radians();
        let xyz = [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f64];
        let res = ["ALA", "GLY", "LYS", "MSE", "TRP"][i % 5];
        s += &atom(
            start_serial + 2 * i,
            " N  ",
            res,
            chain,
            i as isize + 1,
            [xyz[0] + 1.0, xyz[1], xyz[2]],
            res == "MSE",
        );
        s += &atom(
            start_serial + 2 * i + 1,
            " CA ",
            res,
            chain,
            i as isize + 1,
            xyz,
            res == "MSE",
        );
    }
    s + "TER\n"
}

fn read(bytes: &[u8], name: Option<&str>) -> Result<foldspace::structure::Parsed, ReadError> {
    read_structure(bytes, name, &ReadOptions::default())
}

#[test]
fn empty_file() {
    assert_eq!(read(b"", None).unwrap_err(), ReadError::Empty);
    assert_eq!(
        read(b"  \n\t\n", Some("x.pdb")).unwrap_err(),
        ReadError::Empty
    );
    assert_eq!(
        read(&gzip(b""), Some("x.pdb.gz")).unwrap_err(),
        ReadError::Empty
    );
}

#[test]
fn binary_file() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0";
    let err = read(png, Some("picture.pdb")).unwrap_err();
    assert_eq!(err, ReadError::Binary);
    assert!(err.to_string().contains("not a structure file"));
}

#[test]
fn text_that_is_not_a_structure() {
    let err = read(b"Dear colleague,\nplease find attached...\n", None).unwrap_err();
    assert!(matches!(err, ReadError::NotStructure(_)), "{err:?}");
    let err = read(b"{\"json\": true}", Some("notes.txt")).unwrap_err();
    assert!(matches!(err, ReadError::NotStructure(_)), "{err:?}");
}

#[test]
fn truncated_files() {
    let full = pdb_chain('A', 20, 1);
    let cut = &full[..full.len() / 2];
    // Cut inside an ATOM line, or at a line boundary: either is an error or a shorter chain,
    // never a panic; inside a record it is reported as truncation.
    let cut_in_record = &full[..full.find("ATOM     21").expect("atom 21") + 40];
    assert!(matches!(
        read(cut_in_record.as_bytes(), Some("a.pdb")).unwrap_err(),
        ReadError::Truncated(_)
    ));
    let _ = read(cut.as_bytes(), Some("a.pdb"));
    let gz = gzip(full.as_bytes());
    let err = read(&gz[..gz.len() - 12], Some("a.pdb.gz")).unwrap_err();
    assert!(matches!(err, ReadError::Truncated(_)), "{err:?}");
    let cif = "data_X\nloop_\n_atom_site.group_PDB\n_atom_site.id\n_atom_site.type_symbol\n\
_atom_site.label_atom_id\n_atom_site.label_comp_id\n_atom_site.label_asym_id\n\
_atom_site.label_seq_id\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\n\
ATOM 1 C CA ALA A 1 1.0 2.0 3.0\nATOM 2 C CA GLY A 2 4.0";
    let err = read(cif.as_bytes(), Some("x.cif")).unwrap_err();
    assert!(matches!(err, ReadError::Truncated(_)), "{err:?}");
}

#[test]
fn no_chain_with_calpha() {
    let mut s = String::new();
    s += &atom(1, " O  ", "HOH", 'W', 1, [1.0, 2.0, 3.0], true);
    s += &atom(2, " N  ", "ALA", 'A', 1, [1.0, 2.0, 3.0], false);
    s += &atom(3, " C  ", "ALA", 'A', 1, [2.0, 2.0, 3.0], false);
    s += "END\n";
    assert_eq!(
        read(s.as_bytes(), Some("x.pdb")).unwrap_err(),
        ReadError::NoCaChain
    );
}

#[test]
fn chain_above_the_size_limit() {
    let big = pdb_chain('A', 60, 1) + "END\n";
    let opts = ReadOptions {
        max_residues_per_chain: 50,
        ..ReadOptions::default()
    };
    let err = read_structure(big.as_bytes(), None, &opts).unwrap_err();
    assert_eq!(
        err,
        ReadError::ChainTooLong {
            chain: "A".into(),
            residues: 60,
            limit: 50
        }
    );
    // With a small chain beside it, the big one is left out with a warning.
    let two = pdb_chain('A', 60, 1) + &pdb_chain('B', 10, 1000) + "END\n";
    let parsed = read_structure(two.as_bytes(), None, &opts).expect("chain B is fine");
    assert_eq!(parsed.structure.first_model_chains().len(), 1);
    assert!(
        parsed
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::ChainSkippedTooLong { .. }))
    );
}

#[test]
fn decompression_bomb() {
    let opts = ReadOptions {
        max_bytes: 1 << 20,
        ..ReadOptions::default()
    };
    let bomb = gzip(&vec![b' '; 8 << 20]);
    assert!(bomb.len() < 64 << 10, "compresses well");
    let err = read_structure(&bomb, Some("bomb.pdb.gz"), &opts).unwrap_err();
    assert_eq!(err, ReadError::DecompressionBomb { limit: 1 << 20 });
    let err = read_structure(&vec![b'A'; 2 << 20], None, &opts).unwrap_err();
    assert!(matches!(err, ReadError::TooLarge { .. }));
}

#[test]
fn pdb_plain_and_gzip_with_modified_residues() {
    let text = format!(
        "HEADER    DE NOVO PROTEIN\nTITLE     A TEST HELIX <script>alert(1)</script>\n{}END\n",
        pdb_chain('A', 12, 1)
    );
    for (bytes, name) in [
        (text.as_bytes().to_vec(), Some("helix.pdb")),
        (gzip(text.as_bytes()), Some("helix.pdb.gz")),
        (gzip(text.as_bytes()), None),
    ] {
        let parsed = read(&bytes, name).expect("reads");
        let s = &parsed.structure;
        assert_eq!(s.format, Format::Pdb);
        assert_eq!(s.b_factor_kind, BFactorKind::Temperature);
        assert_eq!(
            s.description.title.as_deref(),
            Some("A TEST HELIX <script>alert(1)</script>")
        );
        let chain = s.chain("A").expect("chain A");
        assert_eq!(chain.len(), 12);
        assert_eq!(chain.sequence, "AGKMWAGKMWAG");
        assert_eq!(chain.residue_names[3], "MSE");
        assert_eq!(chain.residue_numbers[0].number, 1);
        assert_eq!(chain.b_factors[0], 21.0);
        assert!((chain.ca[1][2] - 1.5).abs() < 1e-6);
        assert!(parsed.warnings.iter().any(|w| matches!(w, Warning::ModifiedResidues { names, .. } if names == &vec!["MSE".to_string()])));
    }
}

#[test]
fn missing_calpha_is_skipped_with_a_warning() {
    let mut s = pdb_chain('A', 5, 1);
    s += &atom(100, " N  ", "GLY", 'A', 6, [9.0, 9.0, 9.0], false);
    s += "END\n";
    let parsed = read(s.as_bytes(), None).expect("reads");
    assert_eq!(parsed.structure.chain("A").expect("A").len(), 5);
    assert!(parsed.warnings.contains(&Warning::MissingCa {
        chain: "A".into(),
        residues: 1
    }));
}

#[test]
fn training_format() {
    let lines = "{\"name\":\"1ABC_A_4\",\"pdb_id\":\"1ABC\",\"chain\":\"A\",\"start_resnum\":4,\"seq\":\"AYB\",\"dssp\":\"CCH\",\"cluster30\":\"c0\",\"split\":\"train\",\"ca\":[[0,0,0],[3.8,0,0],[7.6,0,0]]}\n\n";
    for bytes in [lines.as_bytes().to_vec(), gzip(lines.as_bytes())] {
        let chains = read_chains_jsonl(&bytes, 1 << 20).expect("reads");
        assert_eq!(chains.len(), 1);
        let c = &chains[0];
        assert_eq!((c.name.as_str(), c.split.as_str()), ("1ABC_A_4", "train"));
        assert_eq!(c.chain.sequence, "AYX");
        assert_eq!(c.chain.residue_names, vec!["ALA", "TYR", "UNK"]);
        assert_eq!(c.chain.residue_numbers[2].number, 6);
        assert_eq!(c.chain.ca[1], [3.8, 0.0, 0.0]);
    }
    let bad = "{\"name\":\"x\",\"seq\":\"AA\",\"ca\":[[0,0,0]]}\n";
    assert!(matches!(
        read_chains_jsonl(bad.as_bytes(), 1 << 20),
        Err(ReadError::Json { line: 1, .. })
    ));
    assert!(matches!(
        read_chains_jsonl(b"not json\n", 1 << 20),
        Err(ReadError::Json { line: 1, .. })
    ));
}

#[test]
fn shared_training_chains_read() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/structures/chains.jsonl.gz");
    let path = std::env::var_os("FOLDSPACE_SHARED")
        .map(|p| std::path::PathBuf::from(p).join("data/structures/chains.jsonl.gz"))
        .unwrap_or(path);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{path:?}: {e} — the shared data set is needed (CI has ../shared; set FOLDSPACE_SHARED)"
        )
    });
    let chains = read_chains_jsonl(&bytes, 1 << 30).expect("the shared training file reads");
    assert_eq!(chains.len(), 20_030);
    let count = |split: &str| chains.iter().filter(|c| c.split == split).count();
    assert_eq!(
        (count("train"), count("val"), count("ppi_test_like")),
        (18_289, 971, 770)
    );
    assert!(
        chains
            .iter()
            .all(|c| c.chain.len() == c.chain.sequence.len())
    );
}

#[test]
fn non_ascii_bytes_inside_records() {
    // Found by fuzzing: pdbtbx slices lines by byte offsets and panicked inside multi-byte
    // characters. Non-ASCII bytes in any record are now an ordinary parse result.
    let mut bytes = pdb_chain('A', 4, 1).into_bytes();
    bytes.extend_from_slice(b"ATOM     33 ");
    bytes.extend_from_slice("\u{fffd}\u{3b1}\u{fffd}".repeat(20).as_bytes());
    bytes.extend_from_slice(b"\nEND\n");
    match read(&bytes, Some("x.pdb")) {
        Ok(parsed) => assert_eq!(parsed.structure.chain("A").map(|c| c.len()), Some(4)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let mut cif = b"data_x\n_struct.title '\xce\xb1-helix \xff\xfe bundle'\n".to_vec();
    cif.extend_from_slice(b"loop_\n_atom_site.id\n_atom_site.x\n1 \xe2\x82\xac\n");
    let _ = read(&cif, Some("x.cif"));
}
