//! `foldspace embed-text` and `export-text` end to end: the real binary, the original
//! all-MiniLM-L6-v2 package, the golden embeddings of `shared/minilm`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn shared() -> PathBuf {
    common::shared("minilm/embeddings.npy")
}

/// The original package: `$FOLDSPACE_MINILM` or the wheel `tests/get-minilm` fetches.
fn package() -> PathBuf {
    common::package()
}

fn foldspace(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args(args)
        .env("FOLDSPACE_MINILM", package())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run foldspace");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

fn golden() -> Vec<Vec<f32>> {
    let bytes = std::fs::read(shared().join("minilm/embeddings.npy")).expect("golden");
    let v: Vec<f32> = npyz::NpyFile::new(&bytes[..])
        .expect("npy")
        .into_vec()
        .expect("f32");
    v.chunks(384).map(<[f32]>::to_vec).collect()
}

fn embeddings(out: &Output) -> Vec<Vec<f32>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    v["embeddings"]
        .as_array()
        .expect("embeddings")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

#[test]
fn embed_text_json_matches_golden_in_input_order() {
    let golden = golden();
    // Golden sentences 0 ("zinc ion binding"), 3 (""), 10 ("mitochondrial inner membrane").
    let out = foldspace(
        &[
            "embed-text",
            "mitochondrial inner membrane",
            "zinc ion binding",
            "",
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = embeddings(&out);
    assert_eq!(e.len(), 3);
    for (ours, want) in e.iter().zip([&golden[10], &golden[0], &golden[3]]) {
        assert_eq!(ours.len(), 384);
        assert!(cosine(ours, want) > 0.9999, "cosine {}", cosine(ours, want));
    }
}

#[test]
fn embed_text_reads_files_and_stdin_with_empty_lines() {
    let golden = golden();
    let dir = std::env::temp_dir().join(format!("foldspace-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("texts.txt");
    // CRLF line ends, an empty line in the middle, a final newline (no extra text).
    std::fs::write(&file, "zinc ion binding\r\n\r\nKINASE ACTIVITY\n").expect("write");
    let out = foldspace(
        &[
            "embed-text",
            "--file",
            file.to_str().expect("utf-8"),
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = embeddings(&out);
    assert_eq!(e.len(), 3, "three lines, the empty one counts");
    assert!(cosine(&e[0], &golden[0]) > 0.9999);
    assert!(cosine(&e[1], &golden[3]) > 0.9999);
    assert!(cosine(&e[2], &golden[14]) > 0.9999);
    // Standard input, plain output: one line of 384 numbers per text.
    let out = foldspace(&["embed-text", "--file", "-"], Some(b"zinc ion binding\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1);
    let plain: Vec<f32> = lines[0]
        .split(' ')
        .map(|x| x.parse().expect("number"))
        .collect();
    assert!(cosine(&plain, &golden[0]) > 0.9999);
    // Not UTF-8: refused with the place.
    std::fs::write(&file, b"ok\n\xff\xfe binary").expect("write");
    let out = foldspace(
        &["embed-text", "--file", file.to_str().expect("utf-8")],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("line 2"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn embed_text_warns_when_a_text_is_cut_and_refuses_no_text() {
    let long = "protein kinase activity ".repeat(200);
    let out = foldspace(&["embed-text", &long, "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: text 1 has") && stderr.contains("first 256"),
        "{stderr}"
    );
    assert_eq!(embeddings(&out).len(), 1);
    let out = foldspace(&["embed-text"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no texts"));
    // A file that is not a text model.
    let out = foldspace(&["embed-text", "x", "--model", "Cargo.toml"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("text model"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn export_text_writes_checked_files_the_encoder_reads() {
    let dir = std::env::temp_dir().join(format!("foldspace-export-text-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = foldspace(
        &["export-text", "--out", dir.to_str().expect("utf-8")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("all-minilm-l6-v2.json")).expect("manifest"),
    )
    .expect("json");
    let files = manifest["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "f16 and int8 by default");
    for f in files {
        let name = f["file"].as_str().expect("name");
        let bytes = std::fs::read(dir.join(name)).expect("file");
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64));
        let sha = std::fs::read_to_string(dir.join(format!("{name}.sha256"))).expect("sha");
        assert!(sha.starts_with(f["sha256"].as_str().expect("sha")));
        let min = f["cosine_to_f32"]["min"].as_f64().expect("min");
        let floor = if name.contains("int8") { 0.98 } else { 0.999 };
        assert!(min > floor, "{name}: min cosine {min}");
    }
    // The exported f16 file embeds like the original.
    let f16 = dir.join("all-minilm-l6-v2-f16.safetensors");
    let out = foldspace(
        &[
            "embed-text",
            "zinc ion binding",
            "--model",
            f16.to_str().expect("utf-8"),
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cosine(&embeddings(&out)[0], &golden()[0]) > 0.995);
    let _ = std::fs::remove_dir_all(&dir);
}
