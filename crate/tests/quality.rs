//! Structure-quality scores against published values: the TMscore program's own examples and
//! AlphaFold's lDDT test cases.
//!
//! `data/quality/1crn-ca.pdb` and `best-ca.pdb` are the C-alpha lines of `proteins/1crn.pdb`
//! (PDB 1CRN) and `proteins/best.pdb` from h3nnn4n/TMscore.py (MIT); its test asserts the
//! program's output for `TMscore 1crn.pdb best.pdb`.
#![cfg(not(target_family = "wasm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

use foldspace::quality::{Correspondence, compare_chains, compare_same, lddt};
use foldspace::structure::{ReadOptions, read_structure};

fn chain(name: &str) -> foldspace::structure::Chain {
    let path = format!("{}/tests/data/quality/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("test file");
    let s = read_structure(&bytes, Some(name), &ReadOptions::default()).expect("readable");
    s.structure.models[0].chains[0].clone()
}

fn close(got: f32, want: f32, printed_digits: i32) -> bool {
    (got - want).abs() <= 0.5 * 10f32.powi(-printed_digits) + 1e-6
}

/// TMscore.py's test: TM-score 0.2875, GDT-TS 0.4402 (0.1957, 0.2609, 0.5217, 0.7826),
/// GDT-HA 0.2772, RMSD 6.709 for crambin against a model.
#[test]
fn tmscore_program_crambin_example() {
    let (native, model) = (chain("1crn-ca.pdb"), chain("best-ca.pdb"));
    assert_eq!(native.len(), 46);
    for (m, r) in [(&native, &model), (&model, &native)] {
        let (c, mapping) = compare_chains(m, r).expect("compare");
        assert_eq!(mapping.how, Correspondence::Identical);
        assert_eq!(c.aligned, 46);
        assert!(close(c.tm_score, 0.2875, 4), "TM-score {}", c.tm_score);
        assert!(close(c.gdt_ts, 0.4402, 4), "GDT-TS {}", c.gdt_ts);
        assert!(close(c.gdt_ha, 0.2772, 4), "GDT-HA {}", c.gdt_ha);
        assert!(close(c.rmsd, 6.709, 3), "RMSD {}", c.rmsd);
        assert!(close(c.d0, 2.10, 2), "d0 {}", c.d0);
    }
}

/// TMscore_py's mirror-image case (ten points, y negated): TM-score 0.6043 (d0 0.5),
/// GDT-TS 0.9250, GDT-HA 0.8250, RMSD 1.540.
#[test]
fn tmscore_program_mirror_example() {
    let model: [[f32; 3]; 10] = [
        [1.764052, 0.400157, 0.978738],
        [2.240893, 1.867558, -0.97727],
        [0.950088, -0.15135, -0.10321],
        [0.410599, 0.144044, 1.454274],
        [0.761038, 0.121675, 0.443863],
        [0.333674, 1.494079, -0.20515],
        [0.313068, -0.85409, -2.55299],
        [0.653619, 0.864436, -0.74216],
        [2.269755, -1.45436, 0.045759],
        [-0.18718, 1.532779, 1.469359],
    ];
    let native: Vec<[f32; 3]> = model.iter().map(|p| [p[0], -p[1], p[2]]).collect();
    let c = compare_same(&model, &native).expect("compare");
    assert!(close(c.tm_score, 0.6043, 4), "TM-score {}", c.tm_score);
    assert!(close(c.gdt_ts, 0.9250, 4), "GDT-TS {}", c.gdt_ts);
    assert!(close(c.gdt_ha, 0.8250, 4), "GDT-HA {}", c.gdt_ha);
    assert!(close(c.rmsd, 1.540, 3), "RMSD {}", c.rmsd);
    assert_eq!(c.d0, 0.5);
}

/// Name, predicted, true, expected per-residue lDDT.
type LddtCase = (&'static str, Vec<[f32; 3]>, Vec<[f32; 3]>, Vec<f32>);

/// AlphaFold's `lddt_test.py` cases (cutoff 15 Å, per residue): predicted vs true.
#[test]
fn alphafold_lddt_cases() {
    let p3 = [[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [10.0, 0.0, 0.0]];
    let cases: Vec<LddtCase> = vec![
        ("same", p3.to_vec(), p3.to_vec(), vec![1.0; 3]),
        (
            "all_shifted",
            p3.to_vec(),
            vec![[-1.0, 0.0, 0.0], [4.0, 0.0, 0.0], [9.0, 0.0, 0.0]],
            vec![1.0; 3],
        ),
        (
            "all_rotated",
            p3.to_vec(),
            vec![[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 10.0, 0.0]],
            vec![1.0; 3],
        ),
        ("half_a_dist", pair(5.0), pair(5.5 - 1e-5), vec![1.0; 2]),
        ("one_a_dist", pair(5.0), pair(6.0 - 1e-5), vec![0.75; 2]),
        ("two_a_dist", pair(5.0), pair(7.0 - 1e-5), vec![0.5; 2]),
        ("four_a_dist", pair(5.0), pair(9.0 - 1e-5), vec![0.25; 2]),
        ("five_a_dist", pair(16.0 - 1e-5), pair(11.0), vec![0.0; 2]),
    ];
    for (name, predicted, truth, want) in cases {
        let placed: Vec<Option<[f32; 3]>> = predicted.iter().copied().map(Some).collect();
        let (global, per) = lddt(&placed, &truth);
        for (got, want) in per.iter().zip(&want) {
            let got = got.expect("every residue has a neighbour within 15 Å");
            assert!((got - want).abs() < 1e-4, "{name}: {got} vs {want}");
        }
        // All residues have the same number of pairs here, so pooled = mean of residues.
        let mean = want.iter().sum::<f32>() / want.len() as f32;
        assert!((global - mean).abs() < 1e-4, "{name}: global {global}");
    }
    // "no_pairs": nothing within 15 Å in the truth. AlphaFold scores such residues 1 by its
    // epsilon; here they have no score (None) and the global score is 0 with nothing to score.
    let (global, per) = lddt(
        &[Some([0.0, 0.0, 0.0]), Some([20.0, 0.0, 0.0])],
        &[[0.0, 0.0, 0.0], [25.0 - 1e-5, 0.0, 0.0]],
    );
    assert_eq!(per, vec![None, None]);
    assert_eq!(global, 0.0);
}

fn pair(x: f32) -> Vec<[f32; 3]> {
    vec![[0.0, 0.0, 0.0], [x, 0.0, 0.0]]
}

/// A model with renumbered, partly missing residues is matched by sequence and normalised by
/// the reference length.
#[test]
fn renumbered_partial_model() {
    let native = chain("1crn-ca.pdb");
    let mut model = native.clone();
    // Drop the first five residues and renumber from 101.
    model.ca.drain(..5);
    model.sequence.drain(..5);
    model.residue_names.drain(..5);
    model.b_factors.drain(..5);
    model.residue_numbers.drain(..5);
    for (k, n) in model.residue_numbers.iter_mut().enumerate() {
        n.number = 101 + k as isize;
    }
    let (c, mapping) = compare_chains(&model, &native).expect("compare");
    assert_eq!(mapping.how, Correspondence::SequenceAlignment);
    assert_eq!(mapping.identical, 41);
    assert_eq!(c.aligned, 41);
    assert!(close(c.gdt_ts, 41.0 / 46.0, 4), "{}", c.gdt_ts);
    assert!(c.rmsd < 1e-3);
    assert_eq!(c.lddt_per_residue[..5], [None, None, None, None, None]);
    assert!(c.lddt < 1.0 && c.lddt > 0.7);
}
