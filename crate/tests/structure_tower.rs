//! The structure tower's inputs: pooling many chains at several noise levels in one batched pass
//! gives what pooling each chain alone gives (the trainer pools thousands of chains so; the page
//! pools one), for the central window and for tiles over the whole chain.
#![cfg(not(target_family = "wasm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use common::shared_dir;
use foldspace::align::model::AlignManifest;
use foldspace::align::query::{BANK_FILE, MANIFEST_FILE, SearchAssets, WEIGHTS_FILE};
use foldspace::align::structure::{
    STRUCTURE_WINDOW, StructureWindows, pool_residues, structure_features,
    structure_features_batch, window_chain,
};
use foldspace::compute::Compute;
use foldspace::score::embed::Embedder;
use foldspace::structure::{Chain, read_chains_jsonl};

/// The shipped score network (in the repository).
fn shipped() -> Embedder {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/weights/foldspace-score.safetensors");
    Embedder::from_file(&path, Compute::cpu()).expect("the shipped weights")
}

/// Val chains of the shared structure file: two longer than the window, two of one shorter
/// length, one of another (so a batch holds several windows of a length and several lengths).
fn chains() -> Vec<Chain> {
    let path = shared_dir().join("data/structures/chains.jsonl.gz");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all = read_chains_jsonl(&bytes, 1 << 31).expect("chains");
    let val: Vec<Chain> = all
        .into_iter()
        .filter(|c| c.split == "val")
        .map(|c| c.chain)
        .collect();
    let long: Vec<&Chain> = val
        .iter()
        .filter(|c| c.len() > STRUCTURE_WINDOW)
        .take(2)
        .collect();
    let short = val
        .iter()
        .find(|c| c.len() < STRUCTURE_WINDOW && c.len() >= 20)
        .expect("a short val chain");
    // A second window of the short one's length: the same chain, shifted in space.
    let mut twin = short.clone();
    for x in &mut twin.ca {
        x[0] += 5.0;
        x[2] -= 3.0;
    }
    let other = val
        .iter()
        .find(|c| c.len() < STRUCTURE_WINDOW && c.len() != short.len() && c.len() >= 10)
        .expect("another short val chain");
    let mut out: Vec<Chain> = long.into_iter().cloned().collect();
    out.extend([short.clone(), twin, other.clone()]);
    out
}

/// Pooled over the residues of all `windows` of a chain, each embedded alone (the embedding the
/// page and `embed` give).
fn pooled_alone(embedder: &Embedder, chain: &Chain, level: usize, w: StructureWindows) -> Vec<f32> {
    let mut residues = Vec::new();
    let mut channels = 0;
    for range in w.ranges(chain.len()) {
        let window = window_chain(chain, range);
        let e = pollster::block_on(embedder.embed(&window, level)).expect("embed");
        residues.extend_from_slice(&e.residue);
        channels = e.channels;
    }
    pool_residues(&residues, channels)
}

#[test]
fn batched_pooling_matches_one_chain_at_a_time() {
    let embedder = shipped();
    let chains = chains();
    let refs: Vec<&Chain> = chains.iter().collect();
    let levels = [embedder.default_level(), 20];
    let mut by_windows = Vec::new();
    for windows in [StructureWindows::Central, StructureWindows::Tiled] {
        let batched = pollster::block_on(structure_features_batch(
            &embedder, &refs, &levels, windows, 2,
        ))
        .expect("batched pooling");
        assert_eq!(batched.len(), levels.len());
        for (&level, per_chain) in levels.iter().zip(&batched) {
            assert_eq!(per_chain.len(), chains.len());
            for (chain, got) in chains.iter().zip(per_chain) {
                let expected = pooled_alone(&embedder, chain, level, windows);
                assert_eq!(got.len(), 2 * embedder.config.hidden_channels);
                let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
                for (g, x) in got.iter().zip(&expected) {
                    assert!(
                        (g - x).abs() <= 1e-4 * scale,
                        "{windows:?}, level {level}, chain of {} residues: {g} vs {x}",
                        chain.len()
                    );
                }
                let single =
                    pollster::block_on(structure_features(&embedder, chain, level, windows))
                        .expect("one chain");
                assert_eq!(&single, got);
            }
        }
        // The levels differ: the noise level conditions the network.
        assert_ne!(batched[0], batched[1]);
        by_windows.push(batched);
    }
    // Tiles read more than the central window of a long chain, and the same of a short one.
    for (k, chain) in chains.iter().enumerate() {
        let same = by_windows[0][0][k] == by_windows[1][0][k];
        assert_eq!(
            same,
            chain.len() <= STRUCTURE_WINDOW,
            "chain of {} residues",
            chain.len()
        );
    }
}

#[test]
fn bad_levels_and_short_chains_are_errors() {
    let embedder = shipped();
    let chains = chains();
    let refs: Vec<&Chain> = chains.iter().collect();
    let levels = embedder.sigmas().len();
    let err = pollster::block_on(structure_features_batch(
        &embedder,
        &refs,
        &[levels],
        StructureWindows::Tiled,
        4,
    ))
    .expect_err("a level past the ladder");
    assert!(err.to_string().contains("out of range"), "{err}");
    let mut one = chains[0].clone();
    one.ca.truncate(1);
    one.sequence.truncate(1);
    one.residue_names.truncate(1);
    one.residue_numbers.truncate(1);
    one.b_factors.truncate(1);
    let err = pollster::block_on(structure_features(
        &embedder,
        &one,
        0,
        StructureWindows::Central,
    ))
    .expect_err("1 residue");
    assert!(err.to_string().contains("at least 2"), "{err}");
}

/// The shipped alignment model's files (in the repository): manifest, weights, bank, and its
/// own structure network.
fn shipped_align() -> (AlignManifest, Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/align");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let manifest = AlignManifest::from_json(&read(MANIFEST_FILE)).expect("manifest");
    let network = manifest
        .structure_network
        .clone()
        .expect("the shipped model has its own structure network");
    (
        manifest,
        read(WEIGHTS_FILE),
        read(BANK_FILE),
        read(&network),
    )
}

/// The page pools the structure tower's input where its score networks run (a worker) and asks
/// the assets for the rest: the same query vector as the assets' own path, bit for bit.
#[test]
fn query_vector_from_features_pooled_elsewhere_matches_the_assets_own() {
    let (manifest, weights, bank, tuned) = shipped_align();
    let default = shipped();
    let own = SearchAssets::new(
        manifest.clone(),
        &weights,
        &bank,
        Some(&tuned),
        Compute::cpu(),
    )
    .expect("assets");
    let split =
        SearchAssets::with_network_elsewhere(manifest.clone(), &weights, &bank, Compute::cpu())
            .expect("assets without their network");
    let network = Embedder::from_bytes(&tuned, Compute::cpu()).expect("structure network");
    manifest
        .check_structure_network(&network.weights_sha256)
        .expect("the shipped structure network is the manifest's");
    let err = manifest
        .check_structure_network(&"0".repeat(64))
        .expect_err("other weights are not the structure network");
    assert!(
        err.to_string().contains("not the structure network"),
        "{err}"
    );
    let config = &split.model.config;
    for chain in chains().iter().take(3) {
        let expected = pollster::block_on(own.protein_vector(&default, chain)).expect("own path");
        let input = pollster::block_on(structure_features(
            &network,
            chain,
            config.level_of(network.default_level()),
            config.structure_windows,
        ))
        .expect("features");
        let got = pollster::block_on(split.protein_vector_from_features(&chain.sequence, &input))
            .expect("from features");
        assert_eq!(got, expected, "chain {}", chain.id);
    }
    // Without its network the split assets refuse the whole path rather than use another.
    let err = pollster::block_on(split.protein_vector(&default, &chains()[0]))
        .expect_err("the network is elsewhere");
    assert!(err.to_string().contains("elsewhere"), "{err}");
}
