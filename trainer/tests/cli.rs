//! `foldspace embed` end to end: the real binary on the golden structure and a bad file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

fn shared() -> PathBuf {
    common::shared("reference/model_trgt_opt.pth")
}

fn npz_array(path: &std::path::Path, name: &str) -> (Vec<u64>, Vec<f32>) {
    let file = std::fs::File::open(path).expect("npz");
    let mut zip = zip::ZipArchive::new(file).expect("zip");
    let mut bytes = Vec::new();
    zip.by_name(&format!("{name}.npy"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .read_to_end(&mut bytes)
        .expect("read");
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy");
    (npy.shape().to_vec(), npy.into_vec::<f32>().expect("f32"))
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn embed_writes_golden_arrays_and_reports_bad_files() {
    let shared = shared();
    let out = std::env::temp_dir().join(format!("foldspace-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let bad = out.with_extension("bad.pdb");
    std::fs::write(&bad, b"this is not a structure\n").expect("write");
    let run = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .arg("embed")
        .arg(shared.join("reference/A0A023PZB3.pdb"))
        .arg(&bad)
        .args(["--noise-level", "4", "--weights"])
        .arg(shared.join("reference/model_trgt_opt.pth"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run foldspace");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        !run.status.success(),
        "a bad file must make the exit code non-zero"
    );
    assert!(
        format!("{stdout}{stderr}").contains("not a structure file"),
        "the bad file is named with its problem: {stdout}{stderr}"
    );

    // The good file was still processed.
    let npz = out.join("A0A023PZB3_A.npz");
    let golden = shared.join("reference/golden/A0A023PZB3");
    let load = |name: &str| {
        let bytes = std::fs::read(golden.join(name)).expect("golden");
        npyz::NpyFile::new(&bytes[..])
            .expect("npy")
            .into_vec::<f32>()
            .expect("f32")
    };
    let (shape, protein) = npz_array(&npz, "protein");
    assert_eq!(shape, [64]);
    assert!(rel_err(&protein, &load("protein_level_feat.npy")) < 1e-4);
    let (shape, pair) = npz_array(&npz, "pair");
    assert_eq!(shape, [126, 126, 64]);
    let encoder = load("encoder_feat.npy"); // C × L × L
    let mut channel_last = vec![0f32; encoder.len()];
    for c in 0..64 {
        for p in 0..126 * 126 {
            channel_last[p * 64 + c] = encoder[c * 126 * 126 + p];
        }
    }
    assert!(rel_err(&pair, &channel_last) < 1e-4);
    for (name, dims) in [
        ("residue", vec![126, 64]),
        ("score", vec![126, 126]),
        ("gradient", vec![126, 3]),
        ("ca", vec![126, 3]),
    ] {
        assert_eq!(npz_array(&npz, name).0, dims, "{name}");
    }
    let (_, score) = npz_array(&npz, "score");
    assert!(rel_err(&score, &load("conv_out.npy")) < 1e-4);

    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("A0A023PZB3_A.json")).expect("json"),
    )
    .expect("json");
    assert_eq!(meta["noise_level"], 4);
    assert_eq!(meta["chain"], "A");
    assert_eq!(meta["sequence"].as_str().map(str::len), Some(126));
    assert_eq!(meta["weights_sha256"].as_str().map(str::len), Some(64));
    assert_eq!(meta["residue_numbers"][0], "1");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&bad);
}

/// Two inputs with the same name (AlphaFold's `*/ranked_0.pdb`) and a name with a dot keep their
/// own outputs; `--arrays` leaves `pair` out; the JSON carries the protein and residue embeddings.
#[test]
fn embed_keeps_every_input_and_writes_the_chosen_arrays() {
    let shared = shared();
    let dir = std::env::temp_dir().join(format!("foldspace-cli-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b, out) = (dir.join("a"), dir.join("b"), dir.join("out"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::copy(
            shared.join("reference/A0A023PZB3.pdb"),
            d.join("model.v2.pdb"),
        )
        .expect("copy");
    }
    let run = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .arg("embed")
        .arg(a.join("model.v2.pdb"))
        .arg(b.join("model.v2.pdb"))
        .args(["--arrays", "protein,residue", "--weights"])
        .arg(shared.join("reference/model_trgt_opt.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run foldspace");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("same name"),
        "the renaming is said: {stderr}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "model.v2-2_A.json",
            "model.v2-2_A.npz",
            "model.v2_A.json",
            "model.v2_A.npz"
        ]
    );
    let npz = out.join("model.v2_A.npz");
    let zip = zip::ZipArchive::new(std::fs::File::open(&npz).expect("npz")).expect("zip");
    let mut members: Vec<&str> = zip.file_names().collect();
    members.sort();
    assert_eq!(members, ["protein.npy", "residue.npy"]);
    let (_, protein) = npz_array(&npz, "protein");
    let (_, residue) = npz_array(&npz, "residue");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.v2_A.json")).expect("json"))
            .expect("json");
    let listed: Vec<&String> = meta["arrays"].as_object().expect("arrays").keys().collect();
    assert_eq!(listed, ["protein", "residue"]);
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    let close = |a: &[f32], b: &[f32]| a.len() == b.len() && rel_err(a, b) < 1e-6;
    assert!(close(&floats(&meta["protein_embedding"]), &protein));
    let rows = meta["residue_embeddings"].as_array().expect("rows");
    assert_eq!(rows.len(), 126);
    let flat: Vec<f32> = rows.iter().flat_map(floats).collect();
    assert!(
        close(&flat, &residue),
        "JSON residue embeddings differ from the .npz"
    );
    // An unknown array is refused before any work, with the names it could be.
    let bad = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .arg("embed")
        .arg(a.join("model.v2.pdb"))
        .args(["--arrays", "protein,pairs", "--out"])
        .arg(&out)
        .output()
        .expect("run foldspace");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("\"pairs\"") && stderr.contains("residue"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_documents_the_options() {
    let run = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args(["embed", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&run.stdout);
    for option in [
        "--weights",
        "--noise-level",
        "--backend",
        "--chain",
        "--arrays",
        "--out",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}

#[test]
fn out_of_range_noise_level_is_refused() {
    let shared = shared();
    let run = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .arg("embed")
        .arg(shared.join("reference/A0A023PZB3.pdb"))
        .args(["--noise-level", "61", "--weights"])
        .arg(shared.join("reference/model_trgt_opt.safetensors"))
        .args(["--out", "/tmp/foldspace-never-written"])
        .output()
        .expect("run");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("out of range"));
}

/// Without --weights, `embed` uses our weights shipped in assets/weights/ (f32), and the f16
/// export of the same weights gives nearly the same embedding.
#[test]
fn embed_defaults_to_the_shipped_weights() {
    let shared = shared();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join("assets/weights/foldspace-score.json")).expect("manifest"),
    )
    .expect("json");
    let out = std::env::temp_dir().join(format!("foldspace-default-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = |extra: &[&str], dir: &str| {
        let r = Command::new(env!("CARGO_BIN_EXE_foldspace"))
            .current_dir(&repo)
            .arg("embed")
            .arg(shared.join("reference/A0A023PZB3.pdb"))
            .args(extra)
            .arg("--out")
            .arg(out.join(dir))
            .output()
            .expect("run foldspace");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(dir).join("A0A023PZB3_A.json")).expect("json"),
        )
        .expect("meta");
        (
            meta,
            npz_array(&out.join(dir).join("A0A023PZB3_A.npz"), "protein").1,
        )
    };
    let (meta, full) = run(&[], "f32");
    assert_eq!(meta["weights_sha256"], manifest["files"][0]["sha256"]);
    let f16 = repo.join("assets/weights/foldspace-score-f16.safetensors");
    let (meta16, half) = run(&["--weights", f16.to_str().expect("path")], "f16");
    assert_eq!(meta16["weights_sha256"], manifest["files"][1]["sha256"]);
    let e = rel_err(&half, &full);
    assert!(
        e < 1e-2,
        "f16 weights move the protein embedding by {e:.2e}"
    );
}
