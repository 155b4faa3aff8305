//! `foldspace eval-retrieval`: cross-modal retrieval and zero-shot GO molecular-function Fmax, with
//! random, naive and nearest-sequence baselines.

use super::*;
use foldspace::align::evaluation::{
    Reference, candidate_terms, cross_modal, knn_transfer, naive, nearest_sequence,
    propagated_function, random_predictions, zero_shot,
};

/// `--prior-weights`: one or more weights in [0, 1].
#[derive(Clone, Debug)]
struct PriorWeights(Vec<f32>);

impl Default for PriorWeights {
    fn default() -> Self {
        Self(vec![0.0])
    }
}

impl std::fmt::Display for PriorWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<String> = self.0.iter().map(f32::to_string).collect();
        f.write_str(&words.join(","))
    }
}

impl std::str::FromStr for PriorWeights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let weights = s
            .split(',')
            .map(|w| match w.trim().parse::<f32>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
                _ => Err(format!("a prior weight is a number in [0, 1], not `{w}`")),
            })
            .collect::<Result<Vec<f32>, String>>()?;
        if weights.is_empty() {
            return Err("give at least one prior weight".into());
        }
        Ok(Self(weights))
    }
}

#[derive(Args)]
pub(crate) struct EvalRetrievalArgs {
    #[command(flatten)]
    inputs: FunctionInputs,
    #[command(flatten)]
    towers: Towers,
    /// Evaluate only chains of this split (e.g. val); default: every split.
    #[arg(long)]
    split: Option<String>,
    /// GO terms each protein predicts before propagation (Fmax).
    #[arg(long, default_value_t = 50)]
    terms_per_protein: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Neighbours of the transfer predictor ("likely function").
    #[arg(long, default_value_t = TRANSFER_NEIGHBOURS)]
    neighbours: usize,
    /// Weight of the prior (each term's share of the train chains) blended with the neighbours'
    /// votes in the transfer predictor; several (`0,0.1,0.2`) report the transfer Fmax at each,
    /// the first in `go_mf_fmax_transfer` (default 0: the votes alone, the page's predictor).
    #[arg(long, default_value_t = PriorWeights::default())]
    prior_weights: PriorWeights,
    /// Weight of the structure vector in the protein vector (default: the model's), to compare
    /// weights; `align --structure-weight` sets the model's.
    #[arg(long)]
    structure_weight: Option<f32>,
    /// Leave out the transfer predictor (it needs the structure vectors of every train chain;
    /// for a stage-2 model, whose network must pool them afresh, that is hours on a CPU).
    #[arg(long)]
    no_transfer: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `foldspace eval-retrieval`: cross-modal retrieval and zero-shot GO-MF prediction with baselines.
pub(crate) fn eval_retrieval(args: EvalRetrievalArgs) -> Result<()> {
    let corpus = args.inputs.read()?;
    let o = &corpus.ontology;
    let device = compute(args.towers.backend)?.device;
    let (mut model, _, score) = args.towers.open(&device)?;
    if let Some(w) = args.structure_weight {
        model.config.structure_weight = checked_weight(w)?;
    }
    let proteins = evaluated_proteins(&corpus, args.split.as_deref())?;
    let n = proteins.len();
    let quiet = args.json;
    let log = |m: String| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    log(format!("{n} proteins"));
    let level = model.config.level(&score);
    let windows = model.config.structure_windows;
    let mut structures = args.towers.structure_cache(&score, level, windows)?;
    let chains: Vec<&JsonChain> = proteins.iter().map(|(_, c)| *c).collect();
    structures.fill_structures(&score, level, windows, &chains)?;
    let (encoder, mut text_cache) = args.towers.text()?;
    let (train_chains, references) = train_references(&corpus);
    // Candidate GO terms: the MF terms of the training chains, propagated.
    let (terms, frequency) = candidate_terms(&references);
    let term_names: Vec<String> = terms.iter().map(|t| o.name(t).to_string()).collect();
    let queries: Vec<String> = proteins
        .iter()
        .map(|(a, _)| query_text(o, &a.function))
        .collect();
    let mut all_texts = queries.clone();
    all_texts.extend(term_names.iter().cloned());
    text_cache.fill_texts(&encoder, &all_texts)?;
    if !args.no_transfer {
        structures.fill_structures(&score, level, windows, &train_chains)?;
    }
    let query_inputs = text_cache.get_all(queries.iter().map(String::as_str))?;
    let term_inputs = text_cache.get_all(term_names.iter().map(String::as_str))?;
    let text_vectors = pollster::block_on(model.embed_texts(&query_inputs, &device))?;
    let term_vectors = pollster::block_on(model.embed_texts(&term_inputs, &device))?;
    let ProteinVectors {
        sequence: sequence_vectors,
        structure: structure_vectors,
        fused: protein_vectors,
    } = embed_proteins(&model, &structures, &chains, &device)?;
    let sets: Vec<Vec<String>> = proteins.iter().map(|(a, _)| mf_set(a)).collect();
    let hit = |q: usize, c: usize| q == c || sets[q] == sets[c];
    let (t2p, p2t) = cross_modal(&protein_vectors, &text_vectors, hit);
    let (t2p_seq, p2t_seq) = cross_modal(&sequence_vectors, &text_vectors, hit);
    let (t2p_str, p2t_str) = cross_modal(&structure_vectors, &text_vectors, hit);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let random_scores: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..n).map(|_| rng.random::<f32>()).collect())
        .collect();
    let t2p_random = retrieval(n, |q| random_scores[q].clone(), hit);
    // Fmax.
    let truth: Vec<BTreeSet<String>> = proteins
        .iter()
        .map(|(a, _)| propagated_function(o, &a.function))
        .collect();
    let k = args.terms_per_protein;
    let zero =
        |vectors: &[Vec<f32>]| fmax(&zero_shot(o, vectors, &terms, &term_vectors, k), &truth);
    let fmax_model = zero(&protein_vectors);
    let fmax_sequence = zero(&sequence_vectors);
    let fmax_structure = zero(&structure_vectors);
    let fmax_random = fmax(&random_predictions(o, n, &terms, k, &mut rng), &truth);
    let fmax_naive = fmax(&naive(&frequency, n), &truth);
    // Nearest training chain by Smith–Waterman identity (itself excluded).
    let named: Vec<(&str, &str)> = chains
        .iter()
        .map(|c| (c.name.as_str(), c.chain.sequence.as_str()))
        .collect();
    let fmax_nearest = fmax(&nearest_sequence(&named, &references), &truth);
    // Transfer from the nearest training chains in the shared space (itself excluded).
    let fmax_knn = if args.no_transfer {
        None
    } else {
        let train_vectors = embed_proteins(&model, &structures, &train_chains, &device)?.fused;
        let queries: Vec<(&str, &[f32])> = chains
            .iter()
            .zip(&protein_vectors)
            .map(|(c, v)| (c.name.as_str(), v.as_slice()))
            .collect();
        Some(
            args.prior_weights
                .0
                .iter()
                .map(|&w| {
                    let predictions = knn_transfer(
                        &queries,
                        &references,
                        &train_vectors,
                        args.neighbours,
                        &frequency,
                        w,
                    );
                    (w, fmax(&predictions, &truth))
                })
                .collect::<Vec<(f32, f64)>>(),
        )
    };
    let transfer_json = fmax_knn
        .as_deref()
        .and_then(|all| transfer_json(all, args.neighbours));
    let r = |x: Retrieval| serde_json::json!({"r1": x.r1, "r10": x.r10, "map": x.map});
    let out = serde_json::json!({
        "n": n,
        "split": args.split.clone().unwrap_or_else(|| "all".into()),
        "text_to_protein": r(t2p),
        "protein_to_text": r(p2t),
        "go_mf_fmax": fmax_model,
        "go_mf_fmax_transfer": transfer_json,
        "structure_weight": model.config.structure_weight,
        "structure_level": level,
        "structure_windows": windows,
        "towers": {
            "sequence": {"text_to_protein": r(t2p_seq), "protein_to_text": r(p2t_seq), "go_mf_fmax": fmax_sequence},
            "structure": {"text_to_protein": r(t2p_str), "protein_to_text": r(p2t_str), "go_mf_fmax": fmax_structure},
        },
        "baselines": {
            "random": {"text_to_protein": r(t2p_random), "go_mf_fmax": fmax_random},
            "naive": {"go_mf_fmax": fmax_naive},
            "nearest_sequence": {"go_mf_fmax": fmax_nearest},
        },
        "candidate_terms": terms.len(),
        "train_chains_for_baselines": references.len(),
    });
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_retrieval(
            &args,
            n,
            terms.len(),
            [
                ("text→protein", t2p),
                ("protein→text", p2t),
                ("text→protein (sequence)", t2p_seq),
                ("text→protein (structure)", t2p_str),
                ("text→protein (random)", t2p_random),
            ],
            &Fmaxes {
                model: fmax_model,
                sequence: fmax_sequence,
                structure: fmax_structure,
                transfer: fmax_knn,
                random: fmax_random,
                naive: fmax_naive,
                nearest: fmax_nearest,
            },
        );
    }
    Ok(())
}

/// `go_mf_fmax_transfer`: the transfer Fmax at the first prior weight, and at each.
fn transfer_json(all: &[(f32, f64)], neighbours: usize) -> Option<serde_json::Value> {
    let &(w, f) = all.first()?;
    Some(serde_json::json!({
        "fmax": f,
        "neighbours": neighbours.max(1),
        "prior_weight": w,
        "by_prior_weight": all
            .iter()
            .map(|&(w, f)| serde_json::json!({"prior_weight": w, "fmax": f}))
            .collect::<Vec<_>>(),
    }))
}

/// A protein's molecular-function set, the root left out.
fn mf_set(a: &Annotation) -> Vec<String> {
    a.function
        .iter()
        .filter(|t| t.as_str() != MF_ROOT)
        .cloned()
        .collect()
}

/// The evaluated proteins: in both files, in the split (all if none), with an informative MF set.
fn evaluated_proteins<'a>(
    corpus: &'a Corpus,
    split: Option<&str>,
) -> Result<Vec<(&'a Annotation, &'a JsonChain)>> {
    let o = &corpus.ontology;
    let proteins: Vec<(&Annotation, &JsonChain)> = corpus
        .function
        .iter()
        .filter_map(|a| Some((a, corpus.chain(&a.name)?)))
        .filter(|(a, c)| {
            split.is_none_or(|s| c.split == s)
                && !query_text(o, &a.function).is_empty()
                && c.chain.len() >= 2
        })
        .collect();
    let n = proteins.len();
    if n < 2 {
        bail!(
            "only {n} chains are in both files{} with a molecular-function term",
            split.map(|s| format!(" (split {s})")).unwrap_or_default()
        );
    }
    Ok(proteins)
}

/// The annotated training chains (with an informative MF set), and them as the baselines' and
/// the transfer predictor's references (propagated terms).
fn train_references(corpus: &Corpus) -> (Vec<&JsonChain>, Vec<Reference<'_>>) {
    let o = &corpus.ontology;
    let train_chains: Vec<&JsonChain> = corpus
        .function
        .iter()
        .filter_map(|a| Some((corpus.chain(&a.name)?, a)))
        .filter(|(c, a)| c.split == "train" && !mf_set(a).is_empty())
        .map(|(c, _)| c)
        .collect();
    let references: Vec<Reference> = corpus
        .function
        .iter()
        .filter_map(|a| Some((corpus.chain(&a.name)?, a)))
        .filter(|(c, a)| c.split == "train" && !mf_set(a).is_empty())
        .map(|(c, a)| Reference {
            name: &c.name,
            sequence: &c.chain.sequence,
            terms: propagated_function(o, &a.function),
        })
        .collect();
    (train_chains, references)
}

/// The GO-MF Fmax of each predictor (transfer: `None` when not run).
struct Fmaxes {
    model: f64,
    sequence: f64,
    structure: f64,
    transfer: Option<Vec<(f32, f64)>>,
    random: f64,
    naive: f64,
    nearest: f64,
}

/// The human-readable report of eval-retrieval.
fn print_retrieval(
    args: &EvalRetrievalArgs,
    n: usize,
    terms: usize,
    rows: [(&str, Retrieval); 5],
    f: &Fmaxes,
) {
    println!(
        "{n} proteins{}; {terms} candidate GO-MF terms",
        args.split
            .as_deref()
            .map(|s| format!(" (split {s})"))
            .unwrap_or_default(),
    );
    println!("{:<28} {:>6} {:>6} {:>6}", "", "R@1", "R@10", "MAP");
    for (name, x) in rows {
        println!("{name:<28} {:>6.3} {:>6.3} {:>6.3}", x.r1, x.r10, x.map);
    }
    println!(
        "GO-MF Fmax: model zero-shot {:.3} (sequence {:.3}, structure {:.3}), model transfer from {} neighbours {}; random {:.3}, naive {:.3}, nearest sequence {:.3}",
        f.model,
        f.sequence,
        f.structure,
        args.neighbours.max(1),
        f.transfer.as_ref().map_or("not run".to_string(), |all| {
            let parts: Vec<String> = all
                .iter()
                .map(|(w, f)| format!("{f:.3} (prior weight {w})"))
                .collect();
            parts.join(", ")
        }),
        f.random,
        f.naive,
        f.nearest
    );
}
