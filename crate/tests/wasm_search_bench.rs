//! Browser timings of the search bank (BENCHMARKS.md), not run by the tests (`#[ignore]`):
//!
//! ```sh
//! bash tests/browser --test wasm_search_bench -- --include-ignored --nocapture
//! ```
//!
//! Builds banks of 20,000 and 100,000 random unit vectors (256-d, written and read back in the
//! bank format, f16) in the page's wasm32 code and prints the time to read each bank and the mean
//! time of an exact top-10 search over 50 random queries.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

use std::collections::BTreeMap;

use foldspace::align::search::{Bank, BankEntry, normalise};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A small deterministic generator (xorshift), so the bench needs no RNG crate in wasm.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

fn synthetic(n: usize, dim: usize, rng: &mut Xorshift) -> Bank {
    let mut vectors = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let v: Vec<f32> = (0..dim).map(|_| rng.next()).collect();
        vectors.extend(normalise(&v));
    }
    Bank {
        dim,
        vectors,
        entries: (0..n)
            .map(|i| BankEntry {
                name: format!("SYN{i:06}_A_1"),
                pdb_id: "SYNT".into(),
                chain: "A".into(),
                length: 100,
                go: Vec::new(),
                split: "synthetic".into(),
            })
            .collect(),
        term_vectors: Vec::new(),
        terms: Vec::new(),
        info: BTreeMap::new(),
    }
}

#[wasm_bindgen_test]
#[ignore]
fn search_latency_in_the_browser() {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    for n in [20_000usize, 100_000] {
        let bytes = synthetic(n, 256, &mut rng).to_bytes().expect("bank bytes");
        let start = js_sys::Date::now();
        let bank = Bank::from_bytes(&bytes).expect("bank");
        let read_ms = js_sys::Date::now() - start;
        let queries: Vec<Vec<f32>> = (0..50)
            .map(|_| normalise(&(0..256).map(|_| rng.next()).collect::<Vec<_>>()))
            .collect();
        let start = js_sys::Date::now();
        let mut checksum = 0.0f32;
        for q in &queries {
            checksum += bank.search(q, 10).expect("search")[0].score;
        }
        let per_query = (js_sys::Date::now() - start) / queries.len() as f64;
        console_log!(
            "bank of {n} × 256 (f16, {:.1} MB): read {read_ms:.0} ms; top-10 search {per_query:.2} ms per query (mean of {}; checksum {checksum:.3})",
            bytes.len() as f64 / 1e6,
            queries.len()
        );
        assert!(checksum.is_finite());
    }
}
