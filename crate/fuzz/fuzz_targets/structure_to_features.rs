//! Bytes → structure → features must never panic: any input either fails with a `ReadError`
//! or gives chains whose 149-channel features are finite.
#![no_main]

use foldspace::score::inputs::{distance_map, pair_features, residue_features};
use foldspace::structure::{ReadOptions, read_chains_jsonl, read_structure};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ReadOptions {
        max_residues_per_chain: 2000,
        max_bytes: 4 << 20,
    };
    // The name hint is taken from the first byte so both the extension and the content paths run.
    let name = match data.first().map(|b| b % 4) {
        Some(0) => Some("x.pdb"),
        Some(1) => Some("x.cif"),
        Some(2) => Some("x.pdb.gz"),
        _ => None,
    };
    if let Ok(parsed) = read_structure(data, name, &options) {
        for model in parsed.structure.models.iter().take(2) {
            for chain in &model.chains {
                assert_eq!(chain.ca.len(), chain.sequence.chars().count());
                // Features of a window of the chain (the full map of a 2,000-residue chain is
                // 600 M values: too slow for fuzzing; the code path is the same).
                let n = chain.len().min(48);
                let ca = &chain.ca[..n];
                let seq: String = chain.sequence.chars().take(n).collect();
                let rf = residue_features(&seq);
                let d = distance_map(ca, ca);
                let f = pair_features(&rf, &rf, &d);
                assert_eq!(f.len(), 149 * n * n);
                assert!(f[88 * n * n..].iter().all(|v| v.is_finite()));
            }
        }
    }
    let _ = read_chains_jsonl(data, 4 << 20);
});
