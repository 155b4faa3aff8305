//! `foldspace compare`, `eval-ppi` and `eval-qa` end to end, on real files (small subsets so the
//! test stays short; EVALUATION.md has the full runs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared() -> PathBuf {
    common::shared("data/ppi/Train_335.jsonl.gz")
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn foldspace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args(args)
        .output()
        .expect("run foldspace")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("foldspace-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn compare_reproduces_tmscore_and_reports_bad_input() {
    let model = repo("crate/tests/data/quality/best-ca.pdb");
    let native = repo("crate/tests/data/quality/1crn-ca.pdb");
    let out = foldspace(&[
        "compare",
        model.to_str().expect("path"),
        native.to_str().expect("path"),
        "--json",
    ]);
    let v = json_of(&out);
    let close = |key: &str, want: f64, tol: f64| {
        let got = v[key].as_f64().expect(key);
        assert!((got - want).abs() <= tol, "{key}: {got} vs {want}");
    };
    close("tm_score", 0.2875, 5e-5);
    close("gdt_ts", 0.4402, 5e-5);
    close("gdt_ha", 0.2772, 5e-5);
    close("rmsd", 6.709, 5e-4);
    assert_eq!(v["aligned"], 46);
    assert_eq!(
        v["lddt_per_residue"].as_array().expect("per residue").len(),
        46
    );

    // Text output names the scores.
    let text = foldspace(&[
        "compare",
        model.to_str().expect("path"),
        native.to_str().expect("path"),
    ]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("TM-score  0.2875") && stdout.contains("GDT_TS    0.4402"));

    // A file that is not a structure, and a chain that does not exist.
    let readme = repo("README.md");
    let bad = foldspace(&[
        "compare",
        readme.to_str().expect("path"),
        native.to_str().expect("path"),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("README.md") && err.contains("not a structure"),
        "{err}"
    );
    let bad = foldspace(&[
        "compare",
        model.to_str().expect("path"),
        native.to_str().expect("path"),
        "--model-chain",
        "Z",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("no chain Z"), "{err}");
}

/// The first `n` chains of a benchmark file with at most `max_len` residues, as a new file.
fn subset(src: &Path, dst: &Path, n: usize, max_len: usize) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(src).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["seq"].as_str().map(str::len).unwrap_or(0) <= max_len && !v["ca"].is_null()
        })
        .take(n)
        .collect();
    assert_eq!(lines.len(), n, "not enough short chains in {src:?}");
    let mut f = std::fs::File::create(dst).expect("create");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

/// Small benchmark files in a fresh directory `name`: the first `train` and `test` short chains of
/// Train_335 and Test_60, as (train file, test file, cache directory).
fn small_ppi(name: &str, train: usize, test: usize) -> (PathBuf, PathBuf, PathBuf) {
    let shared = shared();
    let dir = tmp(name);
    let (train_file, test_file) = (dir.join("Train_small.jsonl"), dir.join("Test_small.jsonl"));
    subset(
        &shared.join("data/ppi/Train_335.jsonl.gz"),
        &train_file,
        train,
        120,
    );
    subset(
        &shared.join("data/ppi/Test_60.jsonl.gz"),
        &test_file,
        test,
        160,
    );
    (train_file, test_file, dir.join("cache"))
}

/// `eval-ppi` on those files with its cache there, JSON out, and the `extra` options.
fn eval_ppi_args(train: &Path, test: &Path, cache: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "eval-ppi",
        "--train",
        train.to_str().expect("path"),
        "--test",
        test.to_str().expect("path"),
        "--cache",
        cache.to_str().expect("path"),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn eval_ppi_with_and_without_embeddings() {
    let (train, test, cache) = small_ppi("ppi", 24, 8);
    let weights = shared().join("reference/model_trgt_opt.safetensors");
    let common = |w: &str, model: &str| -> Vec<String> {
        eval_ppi_args(
            &train,
            &test,
            &cache,
            &[
                "--weights",
                w,
                "--model",
                model,
                "--seeds",
                "2",
                "--epochs",
                "4",
            ],
        )
    };
    let args = common(weights.to_str().expect("path"), "pair");
    let out = foldspace(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v = json_of(&out);
    let t = &v["tests"]["Test_small"];
    for m in ["acc", "precision", "recall", "f1", "mcc", "auroc", "auprc"] {
        let mean = t[m]["mean"].as_f64().unwrap_or(f64::NAN);
        let std = t[m]["std"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (-1.0..=1.0).contains(&mean) && std >= 0.0,
            "{m}: {mean} ± {std}"
        );
    }
    assert!(
        t["auroc"]["mean"].as_f64().expect("auroc") > 0.55,
        "interface residues rank above the rest: {t}"
    );
    assert_eq!(v["runs"].as_array().expect("runs").len(), 2);
    assert_eq!(t["chains"], 8);
    // The embeddings were cached; a second run reads them back.
    let again = foldspace(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("from the cache"), "{stderr}");
    assert_eq!(
        json_of(&again)["tests"],
        v["tests"],
        "same seeds, same numbers"
    );
    // Without embeddings: the same schema, no weights.
    let none = json_of(&foldspace(
        &common("none", "window")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    assert!(none["weights"].is_null());
    assert!(none["tests"]["Test_small"]["mcc"]["mean"].is_f64());
    assert_eq!(none["exposure"], false);
    // Exposure features widen the input: another model, other numbers.
    let mut exposed = common("none", "window");
    exposed.push("--exposure".into());
    let exposed = json_of(&foldspace(
        &exposed.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(exposed["exposure"], true);
    assert!(exposed["tests"]["Test_small"]["auroc"]["mean"].is_f64());
    assert_ne!(exposed["tests"], none["tests"]);
    // The residue embedding over the spatial neighbours, from the same cached pair embeddings.
    let w = weights.to_str().expect("path");
    let mut local = common(w, "window");
    local.extend(["--residue-embedding".into(), "neighbours".into()]);
    let local = foldspace(&local.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&local.stderr).contains("from the cache"));
    let local = json_of(&local);
    assert_eq!(local["residue_embedding"], "neighbours");
    assert_eq!(local["embeddings"], true);
    let mut mean = common(w, "window");
    mean.extend(["--residue-embedding".into(), "mean".into()]);
    let mean = json_of(&foldspace(
        &mean.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(mean["residue_embedding"], "mean");
    assert_ne!(
        local["tests"], mean["tests"],
        "another input, other numbers"
    );
    // The score model's plausibility alone (no embedding input): computed, cached, read back.
    let mut plausible = common(w, "window");
    plausible.extend(["--residue-embedding", "none", "--plausibility", "20"].map(String::from));
    let run = || foldspace(&plausible.iter().map(String::as_str).collect::<Vec<_>>());
    let first = json_of(&run());
    assert_eq!(first["embeddings"], false);
    assert!(first["residue_embedding"].is_null());
    assert_eq!(first["plausibility"]["level"], 20);
    assert_ne!(
        first["tests"], none["tests"],
        "two more inputs, other numbers"
    );
    let again = run();
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("plausibility of Test_small from the cache")
    );
    assert_eq!(json_of(&again)["tests"], first["tests"]);
    // Plausibility needs weights; a level the model lacks is named.
    for (weights, level, says) in [
        ("none", "20", "needs score-model weights"),
        (w, "99", "out of range"),
    ] {
        let mut bad = common(weights, "window");
        bad.extend(["--plausibility".into(), level.into()]);
        let out = foldspace(&bad.iter().map(String::as_str).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{err}");
    }

    // A file that is not the benchmark format.
    let readme = repo("README.md");
    let bad = foldspace(&[
        "eval-ppi",
        "--train",
        readme.to_str().expect("path"),
        "--test",
        test.to_str().expect("path"),
        "--weights",
        "none",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("README.md"), "{err}");
}

#[test]
fn eval_ppi_with_sequence_profiles() {
    let (train, test, cache) = small_ppi("ppi-profiles", 16, 6);
    let swissprot = shared().join("data/function/swissprot50_go.tsv.gz");
    let run = |db: &Path| {
        let args = eval_ppi_args(
            &train,
            &test,
            &cache,
            &[
                "--weights",
                "none",
                "--model",
                "window",
                "--seeds",
                "1",
                "--epochs",
                "3",
                "--profiles",
                db.to_str().expect("path"),
            ],
        );
        foldspace(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&swissprot);
    let v = json_of(&out);
    let p = &v["profiles"];
    assert_eq!(p["databases"]["sequences"], 141_596, "{p}");
    assert_eq!(p["hits"]["Train_small"]["chains"], 16);
    assert_eq!(p["hits"]["Test_small"]["chains"], 6);
    // Real proteins have homologues in Swiss-Prot: most of these chains get some.
    let none = p["hits"]["Train_small"]["none"].as_u64().expect("none")
        + p["hits"]["Test_small"]["none"].as_u64().expect("none");
    assert!(none < 11, "most chains find homologues: {p}");
    assert!(v["tests"]["Test_small"]["auroc"]["mean"].is_f64());
    // Cached: the rerun reads the profiles back and gives the same numbers.
    let again = run(&swissprot);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("profiles of Test_small from the cache"),
        "{stderr}"
    );
    assert_eq!(json_of(&again)["tests"], v["tests"]);
    // A database that is not one.
    let bad = run(&repo("README.md"));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("README.md") && err.contains("no sequence"),
        "{err}"
    );
}

#[test]
fn eval_qa_ranks_generated_and_given_decoys() {
    let shared = shared();
    let weights = shared.join("reference/model_trgt_opt.safetensors");
    let natives = shared.join("data/structures/chains.jsonl.gz");
    // σ = 1 Å (level 20): the published model's score magnitude tracks the damage.
    let qa = |extra: &[&str]| {
        let mut args = vec![
            "eval-qa",
            "--natives",
            natives.to_str().expect("path"),
            "--max-natives",
            "2",
            "--max-length",
            "80",
            "--noise-levels",
            "20",
            "--weights",
            weights.to_str().expect("path"),
            "--json",
        ];
        args.extend_from_slice(extra);
        foldspace(&args)
    };
    let v = json_of(&qa(&[]));
    assert!(v["smooth_radius"].is_null());
    // The 15 Å neighbourhood mean: recorded, applied (another per-residue signal), and as good.
    let smooth = json_of(&qa(&["--smooth", "15"]));
    assert_eq!(smooth["smooth_radius"], 15.0);
    let local_of = |v: &serde_json::Value| {
        v["levels"][0]["local_spearman_gnorm_vs_lddt_error"]
            .as_f64()
            .expect("local")
    };
    assert!((local_of(&smooth) - local_of(&v)).abs() > 1e-4);
    assert!(
        local_of(&smooth) > 0.5,
        "smoothed local Spearman {}",
        local_of(&smooth)
    );
    let out = qa(&["--smooth=-1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("radius"));
    assert_eq!(v["targets"], 2);
    assert_eq!(v["structures_scored"], 16);
    let level = &v["levels"][0];
    let local = level["local_spearman_gnorm_vs_lddt_error"]
        .as_f64()
        .expect("local");
    let global = level["global_spearman_vs_gdt_ts"]["mean"]
        .as_f64()
        .expect("global");
    assert!(local > 0.5, "local Spearman {local}");
    assert!(global > 0.5, "global Spearman {global}");

    // A directory of decoy files (noisy copies of 1a8o written as PDB) and the native.
    let native = repo("assets/examples/1a8o.pdb");
    let text = std::fs::read_to_string(&native).expect("1a8o");
    let dir = tmp("decoys");
    for (k, sigma) in [0.3f32, 1.5, 4.0].iter().enumerate() {
        let mut state = 12345u64 + k as u64;
        let mut noise = || {
            // A small LCG is enough for test noise (uniform, scaled to the wanted spread).
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0 * sigma * 1.7
        };
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("ATOM") && line.get(12..16) == Some(" CA ") {
                let x: f32 = line[30..38].trim().parse().expect("x");
                let y: f32 = line[38..46].trim().parse().expect("y");
                let z: f32 = line[46..54].trim().parse().expect("z");
                out.push_str(&format!(
                    "{}{:8.3}{:8.3}{:8.3}{}\n",
                    &line[..30],
                    x + noise(),
                    y + noise(),
                    z + noise(),
                    &line[54..]
                ));
            }
        }
        out.push_str("END\n");
        std::fs::write(dir.join(format!("decoy{k}.pdb")), out).expect("write");
    }
    std::fs::write(dir.join("notes.txt"), "not a structure").expect("write");
    let out = foldspace(&[
        "eval-qa",
        "--decoys",
        dir.to_str().expect("path"),
        "--native",
        native.to_str().expect("path"),
        "--noise-levels",
        "20",
        "--weights",
        weights.to_str().expect("path"),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipping") && stderr.contains("notes.txt"),
        "{stderr}"
    );
    let v = json_of(&out);
    assert_eq!(v["structures_scored"], 3);
    let gdt: Vec<f64> = v["structures"]
        .as_array()
        .expect("structures")
        .iter()
        .map(|s| s["gdt_ts"].as_f64().expect("gdt"))
        .collect();
    assert!(gdt[0] > gdt[1] && gdt[1] > gdt[2], "{gdt:?}");
    let r = v["levels"][0]["global_spearman_vs_gdt_ts"]["mean"]
        .as_f64()
        .expect("defined for one target with 3 decoys");
    assert!(r > 0.0, "less damage, smaller score: {r}");
}
