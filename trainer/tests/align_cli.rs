//! `foldspace pool-structures`, `align`, `eval-retrieval`, `bank` and `search` end to end on a
//! small real subset of the shared data (TRAINING.md has the full run).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared() -> PathBuf {
    common::shared("data/function/chain_function.jsonl.gz")
}

fn package() -> PathBuf {
    common::package()
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn foldspace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_foldspace"))
        .env("FOLDSPACE_MINILM", package())
        .args(args)
        .output()
        .expect("run foldspace")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gunzip(path: &Path) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut s)
        .expect("gunzip");
    s
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    line[at..].split('"').next()
}

/// Subsets: 40 annotated train chains, 15 annotated val chains and 10 unannotated train chains
/// (all under 150 residues), their annotations and 30 Swiss-Prot entries.
fn subset(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let data = shared().join("data");
    let function = gunzip(&data.join("function/chain_function.jsonl.gz"));
    let annotated: std::collections::HashMap<&str, &str> = function
        .lines()
        .filter_map(|l| Some((field(l, "name")?, l)))
        .collect();
    let known = known_terms();
    let chains = gunzip(&data.join("structures/chains.jsonl.gz"));
    let (mut train, mut val, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for line in chains.lines() {
        let (Some(name), Some(split), Some(seq)) = (
            field(line, "name"),
            field(line, "split"),
            field(line, "seq"),
        ) else {
            continue;
        };
        if seq.len() > 150 || seq.len() < 30 {
            continue;
        }
        let is_annotated = annotated.get(name).is_some_and(|a| {
            let v: serde_json::Value = serde_json::from_str(a).expect("json");
            v["go"]["molecular_function"].as_array().is_some_and(|mf| {
                mf.iter()
                    .any(|t| t != "GO:0003674" && t.as_str().is_some_and(|t| known.contains(t)))
            })
        });
        match (split, is_annotated) {
            ("train", true) if train.len() < 40 => train.push((name, line)),
            ("val", true) if val.len() < 15 => val.push((name, line)),
            ("train", false) if plain.len() < 10 && !annotated.contains_key(name) => {
                plain.push((name, line))
            }
            _ => {}
        }
    }
    assert!(train.len() == 40 && val.len() == 15 && plain.len() == 10);
    let mut c = std::fs::File::create(dir.join("chains.jsonl")).expect("create");
    let mut f = std::fs::File::create(dir.join("function.jsonl")).expect("create");
    for (name, line) in train.iter().chain(&val).chain(&plain) {
        writeln!(c, "{line}").expect("write");
        if let Some(a) = annotated.get(name) {
            writeln!(f, "{a}").expect("write");
        }
    }
    let swissprot = gunzip(&data.join("function/swissprot50_go.tsv.gz"));
    let mut s = std::fs::File::create(dir.join("swissprot.tsv")).expect("create");
    for line in swissprot.lines().take(31) {
        writeln!(s, "{line}").expect("write");
    }
    (
        dir.join("chains.jsonl"),
        dir.join("function.jsonl"),
        dir.join("swissprot.tsv"),
    )
}

/// The GO ids the term file has (the annotations also name obsolete ones, which are left out).
fn known_terms() -> std::collections::HashSet<String> {
    gunzip(&shared().join("data/function/go_terms.tsv.gz"))
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect()
}

/// Stage 2 from the stage-1 `model`: the score network is tuned and written beside the model,
/// and everything downstream reads structures through it (never through vectors of another
/// network).
fn stage_two(
    dir: &Path,
    on_subset: &dyn Fn(&str, &[&str]) -> Output,
    model: &str,
    go_parents: &str,
) {
    let p = |x: &Path| x.to_str().expect("path").to_string();
    let tuned = p(&dir.join("tuned"));
    let out = on_subset(
        "align",
        &["--steps", "1", "--fine-tune-structure", "--out", &tuned],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--init"));
    ok(&on_subset(
        "align",
        &[
            "--steps",
            "2",
            "--triples",
            "4",
            "--sequence-structure",
            "2",
            "--sequence-text",
            "2",
            "--fine-tune-structure",
            "--structure-learning-rate",
            "1e-3",
            "--init",
            model,
            "--out",
            &tuned,
        ],
    ));
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(model).join("align.json")).expect("json"))
            .expect("json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tuned/align.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["training"]["stage"], 2);
    assert_eq!(manifest["structure_network"], "structure.safetensors");
    assert!(first.get("structure_network").is_none());
    let network = std::fs::read(dir.join("tuned/structure.safetensors")).expect("network");
    let sidecar =
        std::fs::read_to_string(dir.join("tuned/structure.safetensors.sha256")).expect("sha");
    let sha = manifest["structure_weights_sha256"].as_str().expect("sha");
    assert!(sidecar.starts_with(sha), "{sidecar} vs {sha}");
    assert_ne!(
        sha,
        first["structure_weights_sha256"].as_str().expect("sha")
    );
    assert!(network.len() > 100_000);
    // eval-retrieval of the tuned model on the val chains, then `extra`.
    let evaluate = |extra: &[&str]| {
        let mut args = vec![
            "--go-parents",
            go_parents,
            "--model",
            &tuned,
            "--split",
            "val",
        ];
        args.extend_from_slice(extra);
        on_subset("eval-retrieval", &args)
    };
    // The stage-1 cache holds vectors of the shipped network: refused for the tuned model.
    let out = evaluate(&[]);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("give another cache file"), "{log}");
    // With its own cache it evaluates, pooling the chains through the tuned network.
    let own_cache = p(&dir.join("structure-tuned.jsonl"));
    let v: serde_json::Value = serde_json::from_str(&ok(&evaluate(&[
        "--structure-cache",
        &own_cache,
        "--no-transfer",
        "--json",
    ])))
    .expect("one JSON object");
    assert_eq!(v["n"], 15);
    // Without transfer only the evaluated (val) chains are pooled: 15 vectors after the marker.
    assert!(v["go_mf_fmax_transfer"].is_null(), "{v}");
    assert!(
        v["go_mf_fmax"]
            .as_f64()
            .is_some_and(|f| (0.0..=1.0).contains(&f))
    );
    assert_eq!(
        std::fs::read_to_string(&own_cache)
            .expect("cache")
            .lines()
            .count(),
        16
    );
    let cached = std::fs::read_to_string(&own_cache).expect("cache");
    assert!(cached.starts_with(&format!("{{\"k\":\"#source:{sha}\"")));
    // Its pooled vectors differ from the shipped network's.
    let shipped = std::fs::read_to_string(dir.join("structure.jsonl")).expect("cache");
    let vector = |text: &str, name: &str| -> String {
        text.lines()
            .find(|l| l.contains(&format!("\"k\":\"{name}\"")))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let name = cached
        .lines()
        .nth(1)
        .and_then(|l| field(l, "k"))
        .expect("a pooled chain");
    assert!(!vector(&shipped, name).is_empty());
    assert_ne!(vector(&cached, name), vector(&shipped, name));
    // `search --structure` reads the query through the tuned network too.
    let bank = p(&dir.join("tuned-bank.safetensors"));
    ok(&on_subset(
        "bank",
        &[
            "--go-parents",
            go_parents,
            "--model",
            &tuned,
            "--structure-cache",
            &own_cache,
            "--out",
            &bank,
        ],
    ));
    let example = p(&repo("assets/examples/1a8o.pdb"));
    let v: serde_json::Value = serde_json::from_str(&ok(&foldspace(&[
        "search",
        "--bank",
        &bank,
        "--model",
        &tuned,
        "--structure",
        &example,
        "--json",
    ])))
    .expect("one JSON object");
    assert_eq!(v["bank_size"], 65);
    // The shipped network is not the one this model reads through.
    let out = foldspace(&[
        "search",
        "--bank",
        &bank,
        "--model",
        &tuned,
        "--weights",
        &p(&repo("assets/weights/foldspace-score.safetensors")),
        "--structure",
        &example,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trained on structure vectors"));
}

/// Swiss-Prot entries with an informative function or process term have a text, and texts are
/// made of names.
fn texts_name_known_terms(swissprot: &Path, text_cache: &str, manifest: &serde_json::Value) {
    // Entries with an informative function or process term (one the term file has) have a text;
    // the others are left out.
    let known = known_terms();
    let with_text = std::fs::read_to_string(swissprot)
        .expect("subset")
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f[1..3]
                .iter()
                .flat_map(|x| x.split(','))
                .any(|t| known.contains(t) && t != "GO:0003674" && t != "GO:0008150")
        })
        .count();
    assert!(with_text >= 20);
    assert_eq!(manifest["training"]["items"]["swissprot"], with_text);
    // Texts are made of names: no obsolete GO id (one the term file lacks) stands in for a name.
    let texts = std::fs::read_to_string(text_cache).expect("text cache");
    assert!(texts.lines().count() > 40);
    for line in texts.lines() {
        let t: serde_json::Value = serde_json::from_str(line).expect("json");
        let t = t["k"].as_str().expect("text");
        for (at, _) in t.match_indices("GO:") {
            let id = t.get(at..at + 10).unwrap_or(&t[at..]);
            assert!(
                known.contains(id),
                "an unknown GO id in a training text: {t}"
            );
        }
    }
}

/// `align --init` continues from the model: its weights are the start, the manifest says so.
fn continued(
    dir: &Path,
    on_subset: &dyn Fn(&str, &[&str]) -> Output,
    model: &str,
    manifest: &serde_json::Value,
) {
    let p = |x: &Path| x.to_str().expect("path").to_string();
    let continued = p(&dir.join("continued"));
    ok(&on_subset(
        "align",
        &[
            "--steps",
            "2",
            "--final-learning-rate",
            "1e-4",
            "--near-misses",
            "0.5",
            "--structure-weight",
            "0.5",
            "--init",
            model,
            "--out",
            &continued,
        ],
    ));
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("continued/align.json")).expect("manifest"))
            .expect("json");
    assert_eq!(
        second["training"]["continued_from"]["training"]["weights_sha256"],
        manifest["training"]["weights_sha256"]
    );
    assert_eq!(second["structure_mean"], manifest["structure_mean"]);
    assert_eq!(second["training"]["train"]["final_learning_rate"], 1e-4);
    assert_eq!(second["training"]["train"]["near_misses"], 0.5);
    assert_eq!(second["config"]["structure_weight"], 0.5);
    assert_eq!(manifest["config"]["structure_weight"], 1.0);
    let out = on_subset("align", &["--near-misses", "1.5", "--out", &continued]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fraction"));
    assert_ne!(
        second["training"]["weights_sha256"],
        manifest["training"]["weights_sha256"]
    );
    kept_network(dir, on_subset, model, manifest);
}

/// `align --keep-structure-network` writes the network the structure tower read (here the
/// shipped weights) beside the model and names it, as `assets/align/` ships it.
fn kept_network(
    dir: &Path,
    on_subset: &dyn Fn(&str, &[&str]) -> Output,
    model: &str,
    manifest: &serde_json::Value,
) {
    assert!(manifest.get("structure_network").is_none());
    let kept = dir.join("kept");
    let args = [
        "--steps",
        "0",
        "--keep-structure-network",
        "--init",
        model,
        "--out",
    ];
    ok(&on_subset(
        "align",
        &[&args[..], &[kept.to_str().expect("path")]].concat(),
    ));
    let third: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept.join("align.json")).expect("manifest"))
            .expect("json");
    assert_eq!(third["structure_network"], "structure.safetensors");
    assert_eq!(
        third["structure_weights_sha256"],
        manifest["structure_weights_sha256"]
    );
    let network = std::fs::read(kept.join("structure.safetensors")).expect("network");
    let shipped = repo("assets/weights/foldspace-score.safetensors");
    assert!(network == std::fs::read(shipped).expect("shipped weights"));
}

/// `eval-retrieval` reports every measure as a fraction, and refuses a negative weight.
fn evaluated(on_subset: &dyn Fn(&str, &[&str]) -> Output, model: &str, go_parents: &str) {
    let out = ok(&on_subset(
        "eval-retrieval",
        &[
            "--go-parents",
            go_parents,
            "--model",
            model,
            "--split",
            "val",
            "--json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["n"], 15);
    assert_eq!(v["structure_weight"], 1.0);
    for path in [
        "/text_to_protein/r1",
        "/text_to_protein/r10",
        "/text_to_protein/map",
        "/protein_to_text/map",
        "/go_mf_fmax",
        "/go_mf_fmax_transfer/fmax",
        "/baselines/random/text_to_protein/map",
        "/baselines/random/go_mf_fmax",
        "/baselines/naive/go_mf_fmax",
        "/baselines/nearest_sequence/go_mf_fmax",
    ] {
        let x = v.pointer(path).and_then(|x| x.as_f64()).expect(path);
        assert!((0.0..=1.0).contains(&x), "{path} = {x}");
    }
    // 15 queries over 15 candidates: the top 10 holds the query's own protein at least 10/15
    // of the time by chance alone, so R@10 ≥ R@1 and both are fractions of 15.
    let r10 = v["text_to_protein"]["r10"].as_f64().expect("r10");
    assert!(r10 >= v["text_to_protein"]["r1"].as_f64().expect("r1"));
    assert_eq!(v["go_mf_fmax_transfer"]["neighbours"], 25);
    assert!(((r10 * 15.0).round() - r10 * 15.0).abs() < 1e-9);

    let out = on_subset(
        "eval-retrieval",
        &[
            "--go-parents",
            go_parents,
            "--model",
            model,
            "--structure-weight=-1",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--structure-weight"));
}

/// `search` by text, sequence and structure over a bank, ranked, with likely functions; bad
/// input is named.
fn searched(dir: &Path, bank: &str, model: &str) {
    let p = |x: &Path| x.to_str().expect("path").to_string();
    let search = |query: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "search", "--bank", bank, "--model", model, "--top", "5", "--json",
        ];
        args.extend_from_slice(query);
        serde_json::from_str(&ok(&foldspace(&args))).expect("one JSON object")
    };
    let example = p(&repo("assets/examples/1a8o.pdb"));
    for query in [
        vec!["--text", "DNA binding"],
        vec!["--sequence", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"],
        vec!["--structure", example.as_str()],
    ] {
        let v = search(&query);
        let hits = v["hits"].as_array().expect("hits");
        assert_eq!(hits.len(), 5, "{v}");
        assert_eq!(v["bank_size"], 65);
        let scores: Vec<f64> = hits
            .iter()
            .map(|h| h["score"].as_f64().expect("score"))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        assert!(scores.iter().all(|s| (-1.0..=1.0001).contains(s)));
        if query[0] != "--text" {
            // Transferred from the closest annotated chains: names with shares in (0, 1], best
            // first.
            let terms = v["likely_function"].as_array().expect("terms");
            assert!((1..=5).contains(&terms.len()), "{v}");
            let shares: Vec<f64> = terms
                .iter()
                .map(|t| t["score"].as_f64().expect("score"))
                .collect();
            assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
            assert!(
                shares.iter().all(|s| *s > 0.0 && *s <= 1.0001),
                "{shares:?}"
            );
            assert!(
                terms.iter().all(|t| t["name"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty() && !n.starts_with("GO:"))),
                "{v}"
            );
        }
    }

    // Bad input is named.
    let out = foldspace(&["search", "--bank", bank, "--model", model, "--text", "  "]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"this is not a bank").expect("write");
    let out = foldspace(&[
        "search",
        "--bank",
        &p(&junk),
        "--model",
        model,
        "--text",
        "kinase",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable search bank"));
    let out = foldspace(&[
        "search",
        "--bank",
        bank,
        "--model",
        model,
        "--sequence",
        "MK1",
    ]);
    assert!(!out.status.success());
}

#[test]
fn align_train_evaluate_bank_and_search() {
    let dir = std::env::temp_dir().join(format!("foldspace-align-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (chains, function, swissprot) = subset(&dir);
    let go = shared().join("data/function");
    let p = |x: &Path| x.to_str().expect("path").to_string();
    let structure_cache = p(&dir.join("structure.jsonl"));
    let text_cache = p(&dir.join("text.jsonl"));
    let model = p(&dir.join("model"));
    let go_terms = p(&go.join("go_terms.tsv.gz"));
    let go_parents = p(&go.join("go_parents.tsv.gz"));
    let (chains_arg, function_arg) = (p(&chains), p(&function));
    // `command` over the subset with its caches (unless `extra` names a structure cache), then
    // `extra`.
    let on_subset = |command: &str, extra: &[&str]| -> Output {
        let mut args = vec![
            command,
            "--structures",
            &chains_arg,
            "--function",
            &function_arg,
            "--go-terms",
            &go_terms,
            "--text-cache",
            &text_cache,
        ];
        if !extra.contains(&"--structure-cache") {
            args.extend_from_slice(&["--structure-cache", &structure_cache]);
        }
        args.extend_from_slice(extra);
        foldspace(&args)
    };

    ok(&foldspace(&[
        "pool-structures",
        "--chains",
        &p(&chains),
        "--cache",
        &structure_cache,
    ]));
    let cached = std::fs::read_to_string(&structure_cache).expect("cache");
    // 65 vectors, after the line naming the weights they came from.
    assert_eq!(cached.lines().count(), 66);
    assert!(cached.starts_with("{\"k\":\"#source:"), "{}", &cached[..80]);

    let out = on_subset(
        "align",
        &[
            "--swissprot",
            &p(&swissprot),
            "--steps",
            "3",
            "--out",
            &model,
        ],
    );
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("items: 40 train chains with all three modalities, 10 sequence–structure"),
        "{log}"
    );
    let metrics = std::fs::read_to_string(dir.join("model/metrics.csv")).expect("metrics");
    assert_eq!(metrics.lines().count(), 4);
    for line in metrics.lines().skip(1) {
        let loss: f64 = line
            .split(',')
            .nth(1)
            .expect("loss")
            .parse()
            .expect("number");
        assert!(loss.is_finite() && loss > 0.0, "{line}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model/align.json")).expect("manifest"))
            .expect("json");
    texts_name_known_terms(&swissprot, &text_cache, &manifest);

    continued(&dir, &on_subset, &model, &manifest);

    stage_two(&dir, &on_subset, &model, &go_parents);

    evaluated(&on_subset, &model, &go_parents);

    let bank = p(&dir.join("bank.safetensors"));
    ok(&on_subset(
        "bank",
        &[
            "--go-parents",
            &go_parents,
            "--model",
            &model,
            "--out",
            &bank,
        ],
    ));
    searched(&dir, &bank, &model);

    // A synthetic bank for timing.
    let synthetic = p(&dir.join("synthetic.safetensors"));
    ok(&foldspace(&[
        "bank",
        "--structures",
        &p(&chains),
        "--function",
        &p(&function),
        "--go-terms",
        &go_terms,
        "--go-parents",
        &go_parents,
        "--model",
        &model,
        "--text-cache",
        &text_cache,
        "--synthetic",
        "2000",
        "--out",
        &synthetic,
    ]));
    let mut args = vec![
        "search", "--bank", &synthetic, "--model", &model, "--json", "--top", "3",
    ];
    args.extend_from_slice(&["--text", "kinase activity"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&foldspace(&args))).expect("json");
    assert_eq!(v["bank_size"], 2000);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parse a cache file's vectors by chain name (the marker line left out).
fn cache_vectors(text: &str) -> std::collections::HashMap<String, Vec<f64>> {
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|v| !v["k"].as_str().expect("key").starts_with('#'))
        .map(|v| {
            let values = v["v"].as_array().expect("vector");
            (
                v["k"].as_str().expect("key").to_string(),
                values.iter().map(|x| x.as_f64().expect("number")).collect(),
            )
        })
        .collect()
}

/// `pool-structures --shard K/N`: the shards' files together hold each chain once, with the
/// vector pooling them all at once gives (`whole`, level 0); a shard past N is refused.
fn shards_make_the_whole(dir: &Path, run: &dyn Fn(&[&str]) -> Output, chains: &str, whole: &str) {
    let whole = cache_vectors(whole);
    let mut seen = std::collections::HashMap::new();
    for shard in ["0/2", "1/2"] {
        let file = dir.join(format!("shard-{}.jsonl", &shard[..1]));
        let file = file.to_str().expect("path");
        ok(&run(&[
            "pool-structures",
            "--chains",
            chains,
            "--splits",
            "train,val",
            "--levels",
            "0",
            "--shard",
            shard,
            "--cache",
            file,
        ]));
        let part = cache_vectors(&std::fs::read_to_string(file).expect("shard cache"));
        // 65 chains: 33 in the first shard, 32 in the second.
        assert_eq!(part.len(), if shard == "0/2" { 33 } else { 32 });
        for (name, v) in part {
            assert!(seen.insert(name, v).is_none(), "a chain in both shards");
        }
    }
    assert_eq!(seen.len(), whole.len());
    for (name, v) in &whole {
        let got = &seen[name];
        let scale = v.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-6);
        assert!(
            got.iter()
                .zip(v)
                .all(|(g, x)| (g - x).abs() <= 1e-4 * scale),
            "{name}: the shard's vector differs from the whole run's"
        );
    }
    let out = run(&["pool-structures", "--chains", chains, "--shard", "2/2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("K < N"));
}

/// `pool-structures --levels` pools at several noise levels in one pass (a cache per level),
/// `eval-structure-levels` probes them, and `align --structure-level` records the level, which
/// `eval-retrieval` then pools at.
#[test]
fn structure_levels_are_pooled_probed_and_recorded() {
    let dir = std::env::temp_dir().join(format!("foldspace-levels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (chains, function, _) = subset(&dir);
    let go = shared().join("data/function");
    let p = |x: &Path| x.to_str().expect("path").to_string();
    let cache = dir.join("cache");
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_foldspace"))
            .env("FOLDSPACE_MINILM", package())
            .env("FOLDSPACE_CACHE", &cache)
            .args(args)
            .output()
            .expect("run foldspace")
    };
    let (chains, function, go_terms) = (p(&chains), p(&function), p(&go.join("go_terms.tsv.gz")));
    let go_parents = p(&go.join("go_parents.tsv.gz"));
    // `command` on the subset's corpus (with the GO graph where the command reads one), then `extra`.
    let on_corpus = |command: &str, parents: bool, extra: &[&str]| -> Output {
        let mut args = vec![
            command,
            "--structures",
            &chains,
            "--function",
            &function,
            "--go-terms",
            &go_terms,
        ];
        if parents {
            args.extend_from_slice(&["--go-parents", &go_parents]);
        }
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = ok(&run(&[
        "pool-structures",
        "--chains",
        &chains,
        "--splits",
        "train,val",
        "--levels",
        "60,0",
    ]));
    let files: Vec<&str> = out.lines().collect();
    assert_eq!(files.len(), 2, "{out}");
    assert!(files[0].ends_with("-w64.jsonl"), "{out}");
    assert!(files[1].ends_with("-w64-l0.jsonl"), "{out}");
    let read = |f: &str| std::fs::read_to_string(f).expect("cache");
    let (fine, coarse) = (read(files[0]), read(files[1]));
    // 65 vectors each, after the line naming the weights.
    assert_eq!(fine.lines().count(), 66);
    assert_eq!(coarse.lines().count(), 66);
    assert_ne!(fine.lines().nth(1), coarse.lines().nth(1));
    // One file cannot hold two levels; a level past the ladder is refused.
    let out = run(&[
        "pool-structures",
        "--chains",
        &chains,
        "--levels",
        "60,0",
        "--cache",
        &p(&dir.join("x")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("one level"));
    let out = run(&["pool-structures", "--chains", &chains, "--levels", "61"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
    shards_make_the_whole(&dir, &run, &chains, &coarse);

    let out = ok(&on_corpus(
        "eval-structure-levels",
        true,
        &["--levels", "60,0", "--concatenated", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["split"], "val");
    assert_eq!(v["proteins"], 15);
    assert_eq!(v["windows"], "central");
    let rows = v["levels"].as_array().expect("levels");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["level"], 60);
    assert_eq!(rows[1]["level"], 0);
    assert!(rows[2]["level"].is_null(), "the side-by-side row");
    assert_eq!(rows[2]["label"], "60+0");
    assert_eq!(rows[2]["levels"], serde_json::json!([60, 0]));
    assert_eq!(rows[3]["label"], "random");
    for r in rows {
        let map = r["protein_to_protein"]["map"].as_f64().expect("map");
        let f = r["go_mf_fmax_transfer"].as_f64().expect("fmax");
        assert!(
            (0.0..=1.0).contains(&map) && (0.0..=1.0).contains(&f),
            "{r}"
        );
    }

    let model = p(&dir.join("model"));
    let align = |extra: &[&str]| {
        let mut args = vec!["--steps", "1"];
        args.extend_from_slice(extra);
        on_corpus("align", false, &args)
    };
    ok(&align(&["--structure-level", "0", "--out", &model]));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model/align.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["config"]["structure_level"], 0);
    // A continued model keeps its level; another one is refused.
    let out = align(&[
        "--structure-level",
        "60",
        "--init",
        &model,
        "--out",
        &p(&dir.join("m2")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("noise level 0"));
    let v = val_retrieval(&on_corpus, &model);
    assert_eq!(v["structure_level"], 0);
    assert_eq!(v["structure_windows"], "central");
    tiles_are_pooled_and_recorded(&dir, &run, &on_corpus, &align, &chains, &coarse);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `eval-retrieval` of a model on the val split (no transfer), as JSON.
fn val_retrieval(
    on_corpus: &dyn Fn(&str, bool, &[&str]) -> Output,
    model: &str,
) -> serde_json::Value {
    let out = ok(&on_corpus(
        "eval-retrieval",
        true,
        &[
            "--model",
            model,
            "--split",
            "val",
            "--no-transfer",
            "--json",
        ],
    ));
    serde_json::from_str(&out).expect("one JSON object")
}

/// Tiles over the whole chain (`--windows tiled`): their own cache, recorded with the model
/// (`align --structure-windows`), kept when continued, read by `eval-retrieval`.
fn tiles_are_pooled_and_recorded(
    dir: &Path,
    run: &dyn Fn(&[&str]) -> Output,
    on_corpus: &dyn Fn(&str, bool, &[&str]) -> Output,
    align: &dyn Fn(&[&str]) -> Output,
    chains: &str,
    central: &str,
) {
    let p = |x: &Path| x.to_str().expect("path").to_string();
    let read = |f: &str| std::fs::read_to_string(f).expect("cache");
    let out = ok(&run(&[
        "pool-structures",
        "--chains",
        chains,
        "--splits",
        "train,val",
        "--levels",
        "0",
        "--windows",
        "tiled",
    ]));
    assert!(out.trim().ends_with("-t64-l0.jsonl"), "{out}");
    let tiled = read(out.trim());
    assert_eq!(tiled.lines().count(), 66);
    assert_ne!(tiled, central, "the subset has chains longer than a window");
    let tiled_model = p(&dir.join("tiled"));
    let args = ["--structure-level", "0", "--structure-windows", "tiled"];
    ok(&align(&[&args[..], &["--out", &tiled_model]].concat()));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tiled/align.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["config"]["structure_windows"], "tiled");
    for (extra, says) in [
        (
            &["--structure-windows", "central"][..],
            "leave --structure-windows out",
        ),
        (&["--fine-tune-structure"][..], "not a tiled model"),
    ] {
        let out = align(
            &[
                extra,
                &["--init", &tiled_model, "--out", &p(&dir.join("m3"))],
            ]
            .concat(),
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    let out = run(&["pool-structures", "--chains", chains, "--windows", "all"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`central`"));
    let v = val_retrieval(on_corpus, &tiled_model);
    assert_eq!(v["structure_windows"], "tiled");
}
