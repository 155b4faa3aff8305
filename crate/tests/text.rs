//! The MiniLM text encoder against the golden tokens and embeddings of `shared/minilm` (made by
//! an independent NumPy implementation of all-MiniLM-L6-v2): token ids exact, embeddings of the
//! original f32 weights to cosine ≥ 0.9999 on the CPU and on wgpu (lavapipe on CI), the f16
//! export to ≥ 0.995 and the int8 export to ≥ 0.98; odd inputs and bad files.
#![cfg(not(target_family = "wasm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use std::sync::OnceLock;

use common::{cosine, minilm, minilm_package, npy};
use foldspace::compute::Compute;
use foldspace::text::{TextEncoder, TextModelFiles, TextPrecision};
use serde_json::Value;

fn files() -> &'static TextModelFiles {
    static FILES: OnceLock<TextModelFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let path = minilm_package();
        TextModelFiles::from_path(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    })
}

/// (text, golden ids, golden tokens) of the 20 shared sentences.
fn golden_tokens() -> Vec<(String, Vec<u32>, Vec<String>)> {
    let path = minilm("tokens.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: Value = serde_json::from_slice(&bytes).expect("tokens.json");
    v["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| {
            let ids = s["input_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|i| i.as_u64().expect("id") as u32)
                .collect();
            let tokens = s["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .map(|t| t.as_str().expect("token").to_string())
                .collect();
            (s["text"].as_str().expect("text").to_string(), ids, tokens)
        })
        .collect()
}

fn golden_rows(name: &str) -> Vec<Vec<f32>> {
    let (shape, values) = npy(minilm(name));
    values.chunks(shape[1]).map(<[f32]>::to_vec).collect()
}

fn texts() -> Vec<String> {
    golden_tokens().into_iter().map(|(t, _, _)| t).collect()
}

#[test]
fn golden_sentences_are_the_shared_ones() {
    let lines: Vec<String> = std::fs::read_to_string(minilm("sentences.txt"))
        .expect("sentences.txt")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, texts());
    assert_eq!(texts().len(), 20);
}

#[test]
fn token_ids_match_the_golden_ones() {
    let encoder = TextEncoder::new(files(), Compute::cpu()).expect("encoder");
    for (i, (text, ids, tokens)) in golden_tokens().iter().enumerate() {
        let ours = encoder.tokenizer().encode(text).expect("encode");
        assert_eq!(&ours.ids, ids, "sentence {i} {text:?}");
        assert_eq!(
            &encoder.tokenizer().pieces(&ours.ids),
            tokens,
            "sentence {i}"
        );
        // Sentence 11 is the 600-word text: cut to 256 ids, said so.
        assert_eq!(
            ours.truncated_from.is_some(),
            ids.len() == 256,
            "sentence {i}"
        );
    }
}

/// Compare all 20 embeddings (and two last hidden states) with the golden ones.
fn check_encoder(encoder: &TextEncoder, min_cosine: f64, hidden_tol: Option<f32>) -> f64 {
    let golden = golden_rows("embeddings.npy");
    let golden_pooled = golden_rows("pooled.npy");
    let out = pollster::block_on(encoder.embed(&texts())).expect("embed");
    let mut worst = 1.0f64;
    for (i, (ours, want)) in out.vectors.iter().zip(&golden).enumerate() {
        let c = cosine(ours, want);
        worst = worst.min(c);
        assert!(
            c >= min_cosine,
            "{} {:?}: sentence {i} cosine {c:.7} < {min_cosine}",
            encoder.compute().describe(),
            encoder.precision
        );
        let norm = ours
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt(); // f64: the test's own sum must not eat the bound
        assert!((norm - 1.0).abs() < 1e-5, "sentence {i} norm {norm}");
    }
    if let Some(tol) = hidden_tol {
        for (ours, want) in out.pooled.iter().zip(&golden_pooled) {
            let d = ours
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(d <= tol, "pooled max abs difference {d:.2e}");
        }
        for (s, text) in texts().iter().take(2).enumerate() {
            let ours = pollster::block_on(encoder.hidden_state(text)).expect("hidden");
            let (_, want) = npy(minilm(&format!("last_hidden_state_{s}.npy")));
            let d = ours
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                d <= tol,
                "last hidden state {s}: max abs difference {d:.2e}"
            );
        }
    }
    eprintln!(
        "{} {:?}: worst cosine to golden {worst:.8} (1 − cos = {:.2e})",
        encoder.compute().describe(),
        encoder.precision,
        1.0 - worst
    );
    worst
}

#[test]
fn f32_embeddings_match_golden_on_cpu() {
    let encoder = TextEncoder::new(files(), Compute::cpu()).expect("encoder");
    check_encoder(&encoder, 0.9999, Some(1e-4));
}

#[test]
fn f32_embeddings_match_golden_on_wgpu() {
    let compute = Compute::wgpu().expect("a wgpu adapter (lavapipe on CI)");
    let encoder = TextEncoder::new(files(), compute).expect("encoder");
    check_encoder(&encoder, 0.9999, Some(1e-4));
}

#[test]
fn f16_export_matches_golden() {
    let bytes = files().export(TextPrecision::F16).expect("export");
    let mb = bytes.len() as f64 / 1e6;
    assert!((40.0..50.0).contains(&mb), "f16 file is {mb:.1} MB");
    let reread = TextModelFiles::from_exported(&bytes).expect("reread");
    assert_eq!(reread.precision, TextPrecision::F16);
    assert_eq!(reread.config, files().config);
    assert_eq!(reread.source_sha256, files().source_sha256);
    let encoder = TextEncoder::new(&reread, Compute::cpu()).expect("encoder");
    check_encoder(&encoder, 0.995, None);
}

#[test]
fn int8_export_matches_golden() {
    let bytes = files().export(TextPrecision::Int8).expect("export");
    let mb = bytes.len() as f64 / 1e6;
    assert!((20.0..26.0).contains(&mb), "int8 file is {mb:.1} MB");
    let encoder = TextEncoder::from_exported(&bytes, Compute::cpu()).expect("encoder");
    assert_eq!(encoder.precision, TextPrecision::Int8);
    check_encoder(&encoder, 0.98, None);
}

#[test]
fn f32_export_is_exact() {
    let bytes = files().export(TextPrecision::F32).expect("export");
    let reread = TextModelFiles::from_exported(&bytes).expect("reread");
    assert_eq!(reread.tensors, files().tensors);
    assert_eq!(reread.tokenizer_json, files().tokenizer_json);
}

#[test]
fn the_original_weights_are_the_published_ones() {
    assert_eq!(
        files().source_sha256,
        foldspace::text::weights::ORIGINAL_SHA256
    );
    assert_eq!(files().config.max_seq_length, 256);
    assert_eq!(files().config.hidden_size, 384);
}

#[test]
fn batching_does_not_change_embeddings() {
    let mut encoder = TextEncoder::new(files(), Compute::cpu()).expect("encoder");
    let texts = texts();
    let together = pollster::block_on(encoder.embed(&texts)).expect("embed");
    encoder.batch_size = 1;
    let alone = pollster::block_on(encoder.embed(&texts)).expect("embed");
    for (i, (a, b)) in together.vectors.iter().zip(&alone.vectors).enumerate() {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "sentence {i}: batched vs alone differ by {d:.2e}");
    }
    // Order is kept whatever the length sort does.
    let reversed: Vec<String> = texts.iter().rev().cloned().collect();
    let back = pollster::block_on(encoder.embed(&reversed)).expect("embed");
    for (a, b) in back.vectors.iter().rev().zip(&alone.vectors) {
        assert_eq!(a, b);
    }
}

#[test]
fn odd_inputs_are_handled() {
    let encoder = TextEncoder::new(files(), Compute::cpu()).expect("encoder");
    let long = "protein kinase activity regulates the cell cycle ".repeat(100); // 700 words
    let odd = [
        String::new(),
        "   \t\n ".to_string(),
        "!!! ??? ... ;;;".to_string(),
        "東京 Ångström naïve café ☕ 🧬 Ca²⁺".to_string(),
        "a\u{0}b\u{7}c".to_string(),
        "x".repeat(300),
        long,
    ];
    let tokens = encoder.tokenize(&odd).expect("tokenize");
    assert_eq!(tokens[0].ids, vec![101, 102], "empty text");
    assert_eq!(tokens[1].ids, vec![101, 102], "whitespace only");
    assert!(tokens[3].ids.len() > 4, "non-ASCII tokenizes");
    assert_eq!(
        tokens[5].ids,
        vec![101, 100, 102],
        "a 300-char word is [UNK]"
    );
    let last = &tokens[6];
    assert_eq!(last.ids.len(), 256);
    assert_eq!(last.ids[255], 102);
    assert!(last.truncated_from.is_some_and(|n| n > 600));
    let out = pollster::block_on(encoder.embed_tokens(&tokens)).expect("embed");
    assert_eq!(out.truncated, vec![(6, last.truncated_from.unwrap_or(0))]);
    for (i, v) in out.vectors.iter().enumerate() {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()), "text {i} not finite");
        let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt(); // f64: the test's own sum must not eat the bound
        assert!((norm - 1.0).abs() < 1e-5, "text {i} norm {norm}");
    }
    // Empty and whitespace-only texts are the same input.
    assert_eq!(out.vectors[0], out.vectors[1]);
    // No texts: no vectors.
    let none = pollster::block_on(encoder.embed::<&str>(&[])).expect("embed");
    assert!(none.vectors.is_empty());
}

#[test]
fn similar_texts_are_closer_than_unrelated_ones() {
    let encoder = TextEncoder::new(files(), Compute::cpu()).expect("encoder");
    let out = pollster::block_on(encoder.embed(&[
        "zinc ion binding",
        "binds Zn2+ ions",
        "mitochondrial inner membrane",
    ]))
    .expect("embed");
    let v = &out.vectors;
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.1);
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let err = TextModelFiles::from_exported(b"not a safetensors file").expect_err("garbage");
    assert!(err.to_string().contains("text model"), "{err}");
    let err = TextModelFiles::from_exported(&[]).expect_err("empty");
    assert!(err.to_string().contains("text model"), "{err}");
    // A score-model weights file is safetensors but not a text model.
    let score = std::fs::read(common::reference("model_trgt_opt.safetensors")).expect("read");
    let err = TextModelFiles::from_exported(&score).expect_err("score weights");
    assert!(err.to_string().contains("export-text"), "{err}");
    // Truncated download.
    let bytes = files().export(TextPrecision::Int8).expect("export");
    let err = TextModelFiles::from_exported(&bytes[..bytes.len() / 2]).expect_err("truncated");
    assert!(err.to_string().contains("text model"), "{err}");
    // A zip without the model.
    let err = TextModelFiles::from_zip(b"PK\x03\x04 nothing").expect_err("zip");
    assert!(err.to_string().contains("zip"), "{err}");
}

#[test]
fn exports_are_reproducible() {
    // The page checks downloads by SHA-256: the same weights must give the same bytes.
    let a = files().export(TextPrecision::F16).expect("export");
    let b = files().export(TextPrecision::F16).expect("export");
    assert!(a == b, "two f16 exports differ");
}
