//! `foldspace pretrain`, `export` and `eval-dsm` end to end on real chains (a small slice of the
//! shared chains.jsonl.gz) with a tiny network: an interrupted and resumed run equals the
//! uninterrupted one, exported weights load, and eval-dsm is deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared() -> PathBuf {
    common::shared("data/structures/chains.jsonl.gz")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("foldspace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The first `train` training chains and `val` validation chains of the shared file.
fn slice(dir: &Path, train: usize, val: usize) -> PathBuf {
    let file = std::fs::File::open(shared().join("data/structures/chains.jsonl.gz")).expect("open");
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let (mut t, mut v) = (0, 0);
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in reader.lines() {
        let line = line.expect("line");
        let (is_train, is_val) = (
            line.contains("\"split\": \"train\"") || line.contains("\"split\":\"train\""),
            line.contains("\"split\": \"val\"") || line.contains("\"split\":\"val\""),
        );
        if (is_train && t < train) || (is_val && v < val) {
            writeln!(out, "{line}").expect("write");
            t += usize::from(is_train);
            v += usize::from(is_val);
        }
        if t >= train && v >= val {
            break;
        }
    }
    assert!(
        t == train && v == val,
        "the shared file has too few chains ({t}, {v})"
    );
    let path = dir.join("chains.jsonl.gz");
    std::fs::write(&path, out.finish().expect("gzip")).expect("write");
    path
}

/// A tiny network with every part of our recipe (output scale, warm-up and cosine decay,
/// stratified levels, global-norm clipping, recalibrated statistics) in its first stage and the
/// reference's plain settings (the fields' defaults) in its second.
const TINY: &str = r#"{"model":{"in_channels":149,"hidden_channels":8,"bottleneck_channels":4,"blocks":2,
"dilations":[1,3,5,9],"levels":61,"sigma_max":10.0,"sigma_min":0.01,"output_scale":0.01},
"filter":{"min_length":32,"max_length":400,"max_ca_gap":4.2,"gap_policy":"cut"},
"stages":[{"steps":4,"crop":16,"batch_size":4,"proteins_per_batch":2,"learning_rate":0.001,
           "warmup_steps":2,"final_learning_rate":0.0001,"levels":"stratified"},
          {"steps":2,"crop":null,"batch_size":2,"proteins_per_batch":1,"learning_rate":0.0005,"max_length":150}],
"adam":[0.9,0.999,1e-8],"ema_decay":0.9,"seed":3,"checkpoint_every":2,"eval_every":3,
"val_chains":2,"val_levels":[0,30,60],"val_crop":16,"max_grad_norm":1.0,"recalibrate_batches":2}"#;

fn foldspace(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args(args)
        .output()
        .expect("run foldspace");
    assert!(
        out.status.success(),
        "foldspace {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read(path: PathBuf) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .read_to_end(&mut bytes)
        .expect("read");
    bytes
}

fn losses(run: &Path) -> Vec<String> {
    String::from_utf8(read(run.join("metrics.csv")))
        .expect("utf-8")
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn resumed_run_equals_the_uninterrupted_one_and_exports() {
    let dir = scratch("train");
    let data = slice(&dir, 24, 3);
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).expect("config");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let common = ["pretrain", "--data", s(&data), "--config", s(&config)];
    foldspace(&[&common[..], &["--out", s(&a)]].concat());
    // Interrupted after 3 steps (mid-stage, between checkpoints), then resumed twice.
    foldspace(&[&common[..], &["--out", s(&b), "--stop-after", "3"]].concat());
    let again = foldspace(&[
        "pretrain",
        "--data",
        s(&data),
        "--out",
        s(&b),
        "--resume",
        "--stop-after",
        "2",
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming at step 3"));
    foldspace(&["pretrain", "--data", s(&data), "--out", s(&b), "--resume"]);
    let last = |run: &Path, file: &str| read(run.join("checkpoints/step-00000006").join(file));
    assert_eq!(losses(&a), losses(&b), "the per-step losses differ");
    assert_eq!(losses(&a).len(), 6);
    assert!(
        last(&a, "model.safetensors") == last(&b, "model.safetensors"),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    assert!(last(&a, "ema.safetensors") == last(&b, "ema.safetensors"));
    let val = String::from_utf8(read(a.join("val.jsonl"))).expect("utf-8");
    assert_eq!(val.lines().count(), 2, "validation at steps 3 and 6");
    assert!(val.contains("\"high\"") && val.contains("\"mid\"") && val.contains("\"low\""));
    // A run directory that already holds a run is not overwritten.
    let refused = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args([&common[..], &["--out", s(&a)]].concat())
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    // Export: f32 and f16 with SHA-256 files and a manifest; both load and agree.
    let weights = dir.join("weights");
    foldspace(&[
        "export",
        "--run",
        s(&a),
        "--out",
        s(&weights),
        "--name",
        "tiny",
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(weights.join("tiny.json"))).expect("manifest");
    assert_eq!(manifest["step"], 6);
    // The training-time output scale is folded into conv_out: shipped weights have 1.
    assert_eq!(manifest["config"]["output_scale"], 1.0);
    // The learning rates of the log follow the schedule: warm-up 5e-4, 1e-3, then the cosine
    // from 1e-3 to 1e-4 over the stage's last two steps; the second stage is constant.
    let metrics = String::from_utf8(read(a.join("metrics.csv"))).expect("utf-8");
    let rates: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).expect("rate").parse().expect("number"))
        .collect();
    for (got, want) in rates.iter().zip([5e-4, 1e-3, 1e-3, 1e-4, 5e-4, 5e-4]) {
        assert!((got - want).abs() < 1e-9, "rates {rates:?}");
    }
    for f in manifest["files"].as_array().expect("files") {
        let name = f["file"].as_str().expect("name");
        let sum = String::from_utf8(read(weights.join(format!("{name}.sha256")))).expect("sha");
        assert!(sum.starts_with(f["sha256"].as_str().expect("sha")));
    }
    let eval = |file: &str| -> f64 {
        let out = foldspace(&[
            "eval-dsm",
            "--weights",
            s(&weights.join(file)),
            "--data",
            s(&data),
            "--max-chains",
            "3",
            "--levels",
            "10,40",
            "--crop",
            "40",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["mean"].as_f64().expect("mean")
    };
    let (full, half) = (eval("tiny.safetensors"), eval("tiny-f16.safetensors"));
    assert!(
        (full - half).abs() <= 1e-2 * full.abs(),
        "f32 {full} vs f16 {half}"
    );
    assert!(
        read(weights.join("tiny-f16.safetensors")).len()
            < read(weights.join("tiny.safetensors")).len()
    );
}

#[test]
fn eval_dsm_is_deterministic_with_the_published_checkpoint() {
    let dir = scratch("eval");
    let data = slice(&dir, 3, 1);
    let weights = shared().join("reference/model_trgt_opt.pth");
    let run = |seed: &str| {
        foldspace(&[
            "eval-dsm",
            "--weights",
            s(&weights),
            "--data",
            s(&data),
            "--max-chains",
            "2",
            "--levels",
            "0,30,45,60",
            "--crop",
            "32",
            "--seed",
            seed,
            "--json",
        ])
        .stdout
    };
    let (first, second) = (run("5"), run("5"));
    assert_eq!(first, second, "two runs with one seed differ");
    assert_ne!(first, run("6"), "the seed does not change the draw");
    let v: serde_json::Value = serde_json::from_slice(&first).expect("json");
    assert_eq!(v["chains"], 2);
    let levels = v["levels"].as_object().expect("levels");
    assert_eq!(levels.keys().collect::<Vec<_>>(), ["0", "30", "45", "60"]);
    for band in ["high", "mid", "low"] {
        assert!(v["bands"][band].as_f64().expect("band").is_finite());
    }
    let mean = v["mean"].as_f64().expect("mean");
    let avg = levels
        .values()
        .map(|x| x.as_f64().expect("loss"))
        .sum::<f64>()
        / 4.0;
    assert!((mean - avg).abs() < 1e-9 * avg.abs());
    // Bad arguments are reported, not panicked on.
    let bad = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args([
            "eval-dsm",
            "--weights",
            s(&weights),
            "--data",
            s(&data),
            "--levels",
            "61",
        ])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("out of range"));
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_continues() {
    let dir = scratch("sigint");
    let data = slice(&dir, 8, 1);
    let config = dir.join("tiny.json");
    // Many steps: the run is stopped by SIGINT long before the end.
    std::fs::write(&config, TINY.replace("\"steps\":4", "\"steps\":100000")).expect("config");
    let run = dir.join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args([
            "pretrain",
            "--data",
            s(&data),
            "--config",
            s(&config),
            "--out",
            s(&run),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let metrics = run.join("metrics.csv");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 4 {
        assert!(
            started.elapsed().as_secs() < 120,
            "the run made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted: saved at step"), "{stderr}");
    let latest = std::fs::read_to_string(run.join("checkpoints/LATEST")).expect("LATEST");
    let step: u64 = latest
        .trim()
        .trim_start_matches("step-")
        .parse()
        .expect("step");
    let rows = std::fs::read_to_string(&metrics)
        .expect("metrics")
        .lines()
        .count() as u64
        - 1;
    assert_eq!(rows, step, "the checkpoint is not at the last logged step");
    let again = foldspace(&[
        "pretrain",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--resume",
        "--stop-after",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("resuming at step {step}")));
}

#[test]
fn a_fork_continues_exactly_and_may_change_the_crops() {
    let dir = scratch("fork");
    let data = slice(&dir, 24, 3);
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).expect("config");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let common = ["pretrain", "--data", s(&data), "--config", s(&config)];
    foldspace(&[&common[..], &["--out", s(&a)]].concat());
    foldspace(&[&common[..], &["--out", s(&b), "--stop-after", "2"]].concat());
    // A fork with the same config is a resume under another name: bit for bit the same run.
    let same = dir.join("same");
    let forked = foldspace(&[
        "pretrain",
        "--data",
        s(&data),
        "--out",
        s(&same),
        "--fork",
        s(&b),
    ]);
    assert!(String::from_utf8_lossy(&forked.stderr).contains("at step 2"));
    assert_eq!(losses(&a), losses(&same), "the fork's losses differ");
    let last = |run: &Path| read(run.join("checkpoints/step-00000006/model.safetensors"));
    assert!(last(&a) == last(&same), "the fork's weights differ");
    let record: serde_json::Value =
        serde_json::from_slice(&read(same.join("fork.json"))).expect("fork.json");
    assert_eq!(record["step"], 2);
    // A fork with crops of several sizes: the first two steps are the source's, then each
    // step's crop is in 16..=24 with its batch scaled to about the pixels of 4 crops of 16.
    foldspace(&[
        "pretrain",
        "--data",
        s(&data),
        "--out",
        s(&c),
        "--fork",
        s(&b),
        "--crop-max",
        "24",
    ]);
    assert_eq!(losses(&c)[..2], losses(&a)[..2]);
    let rows: Vec<Vec<String>> = String::from_utf8(read(c.join("metrics.csv")))
        .expect("utf-8")
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    for row in &rows[2..4] {
        let (batch, crop): (usize, usize) = (row[4].parse().unwrap(), row[5].parse().unwrap());
        assert!((16..=24).contains(&crop), "crop {crop}");
        let pixels = (batch * crop * crop) as f64 / (4.0 * 16.0 * 16.0);
        assert!(
            batch.is_multiple_of(2) && (0.5..=1.5).contains(&pixels),
            "{row:?}"
        );
    }
    let written: serde_json::Value =
        serde_json::from_slice(&read(c.join("config.json"))).expect("config");
    assert_eq!(written["stages"][0]["crop_max"], 24);
    // The network cannot change in a fork.
    let wider = TINY.replace("\"hidden_channels\":8", "\"hidden_channels\":16");
    std::fs::write(&config, wider).expect("config");
    let refused = Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .args([
            "pretrain",
            "--data",
            s(&data),
            "--out",
            s(&dir.join("d")),
            "--fork",
            s(&b),
            "--config",
            s(&config),
        ])
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keeps the network"));
}
