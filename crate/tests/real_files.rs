//! Real PDB and mmCIF entries of different kinds (assets/examples/README.md says where each comes
//! from and how the expected values were counted and cross-checked with gemmi and Biopython).
#![cfg(not(target_family = "wasm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

use foldspace::structure::{BFactorKind, Format, ReadOptions, Warning, read_structure};

fn read(name: &str) -> foldspace::structure::Parsed {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/examples")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    read_structure(&bytes, Some(name), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (chain id, residues, first ten letters) of the first model, in file order.
fn summary(p: &foldspace::structure::Parsed) -> Vec<(String, usize, String)> {
    p.structure
        .first_model_chains()
        .iter()
        .map(|c| (c.id.clone(), c.len(), c.sequence.chars().take(10).collect()))
        .collect()
}

fn expect(p: &foldspace::structure::Parsed, want: &[(&str, usize, &str)]) {
    let want: Vec<(String, usize, String)> = want
        .iter()
        .map(|(c, n, s)| (c.to_string(), *n, s.to_string()))
        .collect();
    assert_eq!(summary(p), want);
}

#[test]
fn xray_multichain_pdb_with_altlocs() {
    let p = read("4e43.pdb");
    assert_eq!(p.structure.format, Format::Pdb);
    assert_eq!(p.structure.models.len(), 1);
    expect(
        &p,
        &[
            ("A", 99, "PQITLWKRPL"),
            ("B", 99, "PQITLWKRPL"),
            ("C", 6, "NLLQKK"),
        ],
    );
    let d = &p.structure.description;
    assert_eq!(
        d.title.as_deref(),
        Some("HIV PROTEASE (PR) DIMER WITH ACETATE IN EXO SITE AND PEPTIDE IN ACTIVE SITE")
    );
    assert!(
        d.keywords
            .as_deref()
            .is_some_and(|k| k.contains("ASPARTYL PROTEASE"))
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| matches!(w, Warning::AltLocsDropped { chain, .. } if chain == "A"))
    );
    assert_eq!(p.structure.b_factor_kind, BFactorKind::Temperature);
    let a = p.structure.chain("A").expect("A");
    assert_eq!(a.residue_numbers.first().map(|n| n.number), Some(1));
    assert_eq!(a.residue_numbers.last().map(|n| n.number), Some(99));
}

#[test]
fn xray_mmcif_with_insertion_codes() {
    let p = read("4zhl.cif");
    assert_eq!(p.structure.format, Format::Mmcif);
    expect(&p, &[("U", 247, "IIGGEFTTIE"), ("P", 10, "CPAYSRYIGC")]);
    let u = p.structure.chain("U").expect("U");
    let with_insertion = u
        .residue_numbers
        .iter()
        .filter(|n| n.insertion.is_some())
        .count();
    assert_eq!(with_insertion, 19);
    let d = &p.structure.description;
    assert_eq!(
        d.title.as_deref(),
        Some("The crystal structure of mupain-1-IG in complex with murinised human uPA at pH7.4")
    );
    assert!(
        d.keywords
            .as_deref()
            .is_some_and(|k| k.contains("serine protease"))
    );
    assert!(!d.molecules.is_empty());
}

#[test]
fn same_entry_in_pdb_and_mmcif_with_selenomethionine() {
    let pdb = read("1a8o.pdb");
    let cif = read("1a8o.cif");
    expect(&pdb, &[("A", 70, "MDIRQGPKEP")]);
    expect(&cif, &[("A", 70, "MDIRQGPKEP")]);
    let (a, b) = (
        pdb.structure.chain("A").expect("A"),
        cif.structure.chain("A").expect("A"),
    );
    assert_eq!(a.sequence, b.sequence);
    assert_eq!(a.residue_numbers, b.residue_numbers);
    assert_eq!(a.residue_numbers[0].number, 151);
    for (x, y) in a.ca.iter().zip(&b.ca) {
        for k in 0..3 {
            assert!((x[k] - y[k]).abs() < 1e-3);
        }
    }
    assert_eq!(a.residue_names.iter().filter(|n| *n == "MSE").count(), 4);
    assert!(
        pdb.warnings
            .iter()
            .any(|w| matches!(w, Warning::ModifiedResidues { .. }))
    );
    assert_eq!(
        pdb.structure.description.title.as_deref(),
        Some("HIV CAPSID C-TERMINAL DOMAIN")
    );
    assert_eq!(
        cif.structure
            .description
            .title
            .as_deref()
            .map(str::to_uppercase)
            .as_deref(),
        Some("HIV CAPSID C-TERMINAL DOMAIN")
    );
}

#[test]
fn nmr_ensemble_pdb_and_gzipped_mmcif() {
    for name in ["1lcd_nmr.pdb", "1lcd_nmr.cif.gz"] {
        let p = read(name);
        assert_eq!(p.structure.models.len(), 3, "{name}");
        // DNA chains B and C hold no amino acid: only chain A, in every model.
        for model in &p.structure.models {
            assert_eq!(model.chains.len(), 1, "{name}");
            assert_eq!(model.chains[0].len(), 51, "{name}");
        }
        expect(&p, &[("A", 51, "MKPVTLYDVA")]);
        assert!(
            p.warnings
                .iter()
                .any(|w| matches!(w, Warning::NonProteinChains { .. })),
            "{name}"
        );
        // The models differ (an ensemble, not copies).
        let m = &p.structure.models;
        assert_ne!(m[0].chains[0].ca, m[1].chains[0].ca);
        assert!(
            p.structure
                .description
                .title
                .as_deref()
                .is_some_and(|t| t.to_uppercase().contains("LAC REPRESSOR")),
            "{name}"
        );
    }
}

#[test]
fn insertion_codes_in_pdb() {
    let p = read("1orc.pdb");
    expect(&p, &[("A", 64, "QRITLKDYAM")]);
    let a = p.structure.chain("A").expect("A");
    let inserted: Vec<String> = a
        .residue_numbers
        .iter()
        .filter(|n| n.insertion.is_some())
        .map(|n| n.to_string())
        .collect();
    assert_eq!(inserted, ["56A", "56B", "56C", "56D", "56E"]);
}

#[test]
fn alphafold_model_has_plddt() {
    let p = read("AF-Q5VSL9-F1-model_v2.pdb.gz");
    expect(&p, &[("A", 837, "MEPAVGGPGP")]);
    assert_eq!(p.structure.b_factor_kind, BFactorKind::Plddt);
    let a = p.structure.chain("A").expect("A");
    let mean = a.b_factors.iter().map(|&b| b as f64).sum::<f64>() / a.len() as f64;
    assert!((mean - 80.817).abs() < 0.01, "mean pLDDT {mean}");
    let max = a.b_factors.iter().copied().fold(f32::MIN, f32::max);
    let min = a.b_factors.iter().copied().fold(f32::MAX, f32::min);
    assert_eq!((min, max), (25.44, 98.81));
}
