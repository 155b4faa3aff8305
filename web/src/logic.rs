//! The page's logic that needs no browser: colour schemes and legends, heatmap pixels, query
//! parameters, file-size limits and the texts the page shows. Tested natively.

use foldspace::structure::remote::{IdError, Sources, StructureId, source_url};
use foldspace::structure::{BFactorKind, Chain, Structure};

/// Largest structure file the page reads (bytes, after decompression as well).
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Longest chain the model runs on; longer chains get the map and 3D view only. With WebGPU it
/// runs on them unasked.
pub const MAX_MODEL_RESIDUES: usize = 1000;
/// Longest chain the model runs on unasked with the CPU backend: longer ones wait for the user
/// to ask ([`long_chain_words`]). It runs in the model worker, so the page answers meanwhile,
/// but slowly (16 s at 295 residues, BENCHMARKS.md "The page"), and the time grows about as L².
pub const MAX_MODEL_RESIDUES_CPU: usize = 400;

/// What the page says of a chain longer than the model runs on unasked (`limit`): how long a
/// run would take, from the last run on this device (`pace`: its length and milliseconds; the
/// time taken to grow as the square of the length), or that it is slow where none ran yet.
pub fn long_chain_words(
    chain: &str,
    len: usize,
    limit: usize,
    pace: Option<(usize, f64)>,
) -> String {
    let time = match pace {
        Some((l0, ms)) if l0 > 0 && ms.is_finite() && ms > 0.0 => {
            let seconds = ms / 1000.0 * (len as f64 / l0 as f64).powi(2);
            format!(
                "about {} a run here (estimated from the last run: {:.1} s at {l0} residues)",
                duration_words(seconds),
                ms / 1000.0
            )
        }
        _ => "minutes on a slow machine".into(),
    };
    format!(
        "chain {chain} has {len} residues: on the CPU the model runs unasked on up to {limit}; \
         longer chains take {time}"
    )
}

/// A duration in words, rounded to what an estimate can say ("40 s", "3 min").
pub fn duration_words(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{:.0} s", (seconds / 5.0).ceil().max(1.0) * 5.0)
    } else {
        format!("{:.0} min", (seconds / 60.0).round())
    }
}

/// AlphaFold's four pLDDT bands (the colours of the AlphaFold DB).
pub const PLDDT_BANDS: [(&str, [u8; 3]); 4] = [
    ("< 50", [0xFF, 0x7D, 0x45]),
    ("50–70", [0xFF, 0xDB, 0x13]),
    ("70–90", [0x65, 0xCB, 0xF3]),
    ("> 90", [0x00, 0x53, 0xD6]),
];

/// The colour of one pLDDT value.
pub fn plddt_color(v: f32) -> [u8; 3] {
    let band = if v < 50.0 {
        0
    } else if v < 70.0 {
        1
    } else if v < 90.0 {
        2
    } else {
        3
    };
    PLDDT_BANDS[band].1
}

/// How the 3D trace is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// One colour per chain.
    Chain,
    /// B-factor (temperature factor), or pLDDT bands for predicted models.
    BFactor,
    /// Per-residue score magnitude ‖g_i‖ at the embedding's noise level.
    Score,
    /// Per-residue plausibility: ‖g‖ at σ = [`PLAUSIBILITY_SIGMA`] averaged over each residue's
    /// 15 Å neighbourhood, on a fixed scale (see EVALUATION.md: at this σ the score magnitude
    /// tracks local error, lDDT, best, and the neighbourhood mean tracks it better).
    Plausibility,
}

/// The noise level (σ, Å) at which the page scores plausibility: level 25 of the shipped
/// network's ladder (0.5623 Å; the page takes the level nearest this σ), where its score tracks
/// local and global error best (EVALUATION.md, `eval-qa`: per-residue ρ 0.84, per-target r 0.97;
/// averaged over each residue's 15 Å neighbourhood, as the page shows it, ρ 0.90).
pub const PLAUSIBILITY_SIGMA: f32 = 0.5623;
/// ‖g‖ (1/Å) at that σ, averaged over 15 Å, from which a residue is drawn fully red: with the
/// shipped network, natives average 0.77, copies with 0.5 / 1 / 2 / 4 Å of noise 2.1 / 3.4 / 6.0
/// / 10.9 (EVALUATION.md), so red means errors of about 2 Å. (Other weights, `?weights=`, are coloured
/// on the same scale: the published checkpoint's magnitudes differ, EVALUATION.md.)
pub const PLAUSIBILITY_MAX: f32 = 6.0;
/// What the plausibility colouring is worth, in one line for the page (numbers from
/// `evaluation/eval-qa-smooth/ours-r15.json`; EVALUATION.md has the tables and the command).
pub const PLAUSIBILITY_NOTE: &str = "On 20 held-out proteins with 8 structures each (the native, \
    Gaussian noise of 0.5–4 Å on every C-alpha, two rigid segment shifts, a short Langevin run), \
    this score (the model's ‖g‖ averaged over each residue's 15 Å neighbourhood) ranks residues by \
    their local error (1 − lDDT) with Spearman ρ = 0.90, and its mean over a chain ranks each \
    protein's structures by GDT_TS with Pearson r = 0.97. It needs no reference structure. A \
    rigidly shifted segment raises it only a little (its mean by 11–29 %), though above the \
    native's for every protein tested.";
/// What the "likely function" list and the text search are worth, in one line for the page
/// (numbers from `evaluation/align-tiled/shipped-ppi_test_like.json`, the shipped alignment model
/// and bank on chains that nothing trained on or chose a run or weight with; TRAINING.md has the
/// tables and the command; a test checks the numbers against that file).
pub const LIKELY_FUNCTION_NOTE: &str = "On 292 PDB chains that neither the model nor the bank \
    was trained on, and that chose no run or weight (the ppi_test_like split), these shares \
    predict GO molecular function with Fmax 0.47 (terms propagated over the GO graph), against \
    0.40 for always naming the most frequent terms and 0.25 for copying the terms of the most \
    similar sequence; a text search ranks the proteins whose functions match the text with MAP \
    0.19 (random 0.02). The shares are similarity-weighted votes of neighbours, not probabilities.";

impl ColorMode {
    /// From the select box value.
    pub fn parse(s: &str) -> Self {
        match s {
            "bfactor" => Self::BFactor,
            "score" => Self::Score,
            "plausibility" => Self::Plausibility,
            _ => Self::Chain,
        }
    }
}

/// A legend: a title and either a gradient with its range or discrete swatches.
#[derive(Debug, Clone, PartialEq)]
pub enum Legend {
    /// Swatches with labels.
    Swatches(String, Vec<(String, [u8; 3])>),
    /// A continuous scale: title, low and high label, colours sampled left to right.
    Gradient(String, String, String, Vec<[u8; 3]>),
}

fn gradient(g: colorous::Gradient, t: f64) -> [u8; 3] {
    let c = g.eval_continuous(t.clamp(0.0, 1.0));
    [c.r, c.g, c.b]
}

/// Chain colours (a qualitative palette).
pub fn chain_color(index: usize) -> [u8; 3] {
    let c = colorous::TABLEAU10[index % colorous::TABLEAU10.len()];
    [c.r, c.g, c.b]
}

/// Colour of another chain drawn for context: its chain colour, dimmed, when the view colours by
/// chain; a neutral grey otherwise (the colour scale belongs to the chain on screen).
pub fn context_color(mode: ColorMode, index: usize) -> [u8; 3] {
    match mode {
        ColorMode::Chain => chain_color(index).map(|c| (c as u16 * 3 / 5 + 0x2a * 2 / 5) as u8),
        _ => [0x6b, 0x72, 0x80],
    }
}

/// Low and high ends used to colour a quantity: the 2nd and 98th percentiles (robust to a few
/// extreme residues), widened when they coincide.
pub fn robust_range(values: &[f32]) -> (f32, f32) {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.02), at(0.98));
    if hi - lo < 1e-6 {
        (lo - 0.5, lo + 0.5)
    } else {
        (lo, hi)
    }
}

/// Per-residue colours (RGB) of a chain and the legend that explains them. `norms` is ‖g_i‖
/// for the mode (at the embedding's level for `Score`; at [`PLAUSIBILITY_SIGMA`], averaged over
/// 15 Å, for `Plausibility`) once the model has run.
pub fn residue_colors(
    mode: ColorMode,
    chain: &Chain,
    chain_index: usize,
    b_kind: BFactorKind,
    norms: Option<&[f32]>,
) -> (Vec<[u8; 3]>, Legend) {
    let n = chain.len();
    match (mode, norms) {
        (ColorMode::Score, Some(norms)) if norms.len() == n => {
            let (lo, hi) = robust_range(norms);
            let colors = norms
                .iter()
                .map(|v| {
                    gradient(
                        colorous::INFERNO,
                        0.08 + 0.84 * ((v - lo) / (hi - lo)) as f64,
                    )
                })
                .collect();
            let ramp = (0..=16)
                .map(|i| gradient(colorous::INFERNO, 0.08 + 0.84 * i as f64 / 16.0))
                .collect();
            (
                colors,
                Legend::Gradient(
                    "score magnitude ‖g‖ (1/Å)".into(),
                    format!("{lo:.3}"),
                    format!("{hi:.3}"),
                    ramp,
                ),
            )
        }
        (ColorMode::Plausibility, Some(norms)) if norms.len() == n => {
            // Green where the model finds the residue's surroundings native-like, red where its
            // score says they are far from it; a fixed scale, comparable across proteins.
            let t = |v: f32| 1.0 - (v / PLAUSIBILITY_MAX).clamp(0.0, 1.0) as f64;
            let colors = norms
                .iter()
                .map(|&v| gradient(colorous::RED_YELLOW_GREEN, 0.05 + 0.9 * t(v)))
                .collect();
            let ramp = (0..=16)
                .map(|i| gradient(colorous::RED_YELLOW_GREEN, 0.95 - 0.9 * i as f64 / 16.0))
                .collect();
            (
                colors,
                Legend::Gradient(
                    format!(
                        "implausibility ‖g‖ at σ ≈ {PLAUSIBILITY_SIGMA:.2} Å, mean within 15 Å (1/Å)"
                    ),
                    "0 native-like".into(),
                    format!("≥ {PLAUSIBILITY_MAX} unlikely"),
                    ramp,
                ),
            )
        }
        (ColorMode::BFactor, _) if b_kind == BFactorKind::Plddt => (
            chain.b_factors.iter().map(|&v| plddt_color(v)).collect(),
            Legend::Swatches(
                "pLDDT".into(),
                PLDDT_BANDS
                    .iter()
                    .map(|(l, c)| (l.to_string(), *c))
                    .collect(),
            ),
        ),
        (ColorMode::BFactor, _) if b_kind == BFactorKind::Temperature => {
            let (lo, hi) = robust_range(&chain.b_factors);
            let colors = chain
                .b_factors
                .iter()
                .map(|v| gradient(colorous::RED_BLUE, 1.0 - ((v - lo) / (hi - lo)) as f64))
                .collect();
            let ramp = (0..=16)
                .map(|i| gradient(colorous::RED_BLUE, 1.0 - i as f64 / 16.0))
                .collect();
            (
                colors,
                Legend::Gradient(
                    "B-factor (Å²)".into(),
                    format!("{lo:.0}"),
                    format!("{hi:.0}"),
                    ramp,
                ),
            )
        }
        _ => {
            let c = chain_color(chain_index);
            (
                vec![c; n],
                Legend::Swatches("chain".into(), vec![(format!("chain {}", chain.id), c)]),
            )
        }
    }
}

/// Largest distance the distance-map colour scale spans (Å); beyond is the last colour.
pub fn distance_scale_max(distances: &[f32]) -> f32 {
    let max = distances
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .fold(0.0f32, f32::max);
    max.clamp(8.0, 40.0)
}

/// RGBA pixels of an `n × n` distance map: near is bright (viridis, reversed), `max` Å and
/// beyond dark.
pub fn distance_rgba(distances: &[f32], max: f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(distances.len() * 4);
    for d in distances {
        let t = 1.0 - (d / max).clamp(0.0, 1.0) as f64;
        let [r, g, b] = gradient(colorous::VIRIDIS, t);
        out.extend_from_slice(&[r, g, b, 255]);
    }
    out
}

/// The distance map's legend.
pub fn distance_legend(max: f32) -> Legend {
    let ramp = (0..=16)
        .map(|i| gradient(colorous::VIRIDIS, 1.0 - i as f64 / 16.0))
        .collect();
    Legend::Gradient(
        "C-alpha distance (Å)".into(),
        "0".into(),
        format!("≥ {max:.0}"),
        ramp,
    )
}

/// RGBA pixels of a `rows × cols` matrix (an embedding), coloured over its own range (magma).
pub fn matrix_rgba(values: &[f32]) -> (Vec<u8>, f32, f32) {
    let (lo, hi) = robust_range(values);
    let mut out = Vec::with_capacity(values.len() * 4);
    for v in values {
        let [r, g, b] = gradient(colorous::MAGMA, ((v - lo) / (hi - lo)) as f64);
        out.extend_from_slice(&[r, g, b, 255]);
    }
    (out, lo, hi)
}

/// A legend's colour ramp as a CSS `linear-gradient`.
pub fn css_gradient(colors: &[[u8; 3]]) -> String {
    let stops: Vec<String> = colors
        .iter()
        .map(|[r, g, b]| format!("rgb({r},{g},{b})"))
        .collect();
    format!("linear-gradient(to right, {})", stops.join(", "))
}

/// `#rrggbb`.
pub fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Which device runs the model (`?backend=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU on a hardware adapter; the CPU where WebGPU is missing or runs in software (a
    /// software WebGPU adapter such as SwiftShader ran the model about 11× slower than the CPU
    /// backend: BENCHMARKS.md, "The page").
    #[default]
    Auto,
    /// The CPU backend (`?backend=cpu`).
    Cpu,
    /// WebGPU whatever the adapter, software ones included (`?backend=webgpu`).
    WebGpu,
}

/// Which browser API draws the 3D view (`?view=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// WebGPU.
    WebGpu,
    /// WebGL 2, where WebGPU is missing or refuses (the same meshes, colours and lighting).
    WebGl2,
}

impl Renderer {
    /// The API's name as browsers spell it.
    pub fn name(self) -> &'static str {
        match self {
            Renderer::WebGpu => "WebGPU",
            Renderer::WebGl2 => "WebGL 2",
        }
    }
}

/// The settings a page address can carry: `?weights=<same-origin url>`, `?level=<n>`,
/// `?backend=auto|cpu|webgpu`, `?view=webgpu|webgl`, `?example=<name>`, `?pdb=`, `?uniprot=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageOptions {
    /// Weights file to load instead of the shipped default.
    pub weights: Option<String>,
    /// Noise level to start with.
    pub level: Option<usize>,
    /// Which device runs the model.
    pub backend: BackendChoice,
    /// The API the 3D view must use (by default WebGPU, else WebGL 2).
    pub renderer: Option<Renderer>,
    /// Example to load at start.
    pub example: Option<String>,
    /// Structure to fetch at start (`?pdb=1ubq`, `?uniprot=P69905`).
    pub id: Option<StructureId>,
    /// Where identifiers are fetched from (`?rcsb=`, `?alphafold=`: base URLs of a mirror).
    pub sources: Sources,
}

/// Why a page option was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    /// Weights from another origin (the page only loads weights from where it is served).
    #[error("?weights= must be a path on this site (same origin), not {0}")]
    CrossOrigin(String),
    /// Not a number.
    #[error("?level= must be a whole number, not {0:?}")]
    Level(String),
    /// An unknown value of a choice.
    #[error("?{key}= must be one of {allowed}, not {value:?}")]
    Choice {
        /// The option.
        key: &'static str,
        /// What it may be.
        allowed: &'static str,
        /// What it was.
        value: String,
    },
    /// An identifier or a source URL that cannot be used.
    #[error("?{key}=: {error}")]
    Id {
        /// The option.
        key: &'static str,
        /// What is wrong with its value.
        error: IdError,
    },
}

/// Parse the query string (without or with the leading `?`).
pub fn parse_query(query: &str) -> Result<PageOptions, OptionError> {
    let mut options = PageOptions::default();
    for pair in query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "weights" => {
                let lower = value.to_ascii_lowercase();
                if lower.contains("://")
                    || lower.starts_with("//")
                    || lower.starts_with("data:")
                    || lower.starts_with("javascript:")
                {
                    return Err(OptionError::CrossOrigin(value));
                }
                options.weights = Some(value);
            }
            "level" => {
                options.level = Some(
                    value
                        .parse()
                        .map_err(|_| OptionError::Level(value.clone()))?,
                )
            }
            "backend" => {
                options.backend = match value.to_ascii_lowercase().as_str() {
                    "" | "auto" => BackendChoice::Auto,
                    "cpu" => BackendChoice::Cpu,
                    "webgpu" | "gpu" => BackendChoice::WebGpu,
                    _ => {
                        return Err(OptionError::Choice {
                            key: "backend",
                            allowed: "auto, cpu, webgpu",
                            value,
                        });
                    }
                }
            }
            "view" => {
                options.renderer = match value.to_ascii_lowercase().as_str() {
                    "" | "auto" => None,
                    "webgpu" => Some(Renderer::WebGpu),
                    "webgl" | "webgl2" => Some(Renderer::WebGl2),
                    _ => {
                        return Err(OptionError::Choice {
                            key: "view",
                            allowed: "auto, webgpu, webgl",
                            value,
                        });
                    }
                }
            }
            "example" => options.example = Some(value),
            "pdb" => {
                options.id = Some(
                    StructureId::pdb(&value)
                        .map_err(|error| OptionError::Id { key: "pdb", error })?,
                )
            }
            "uniprot" => {
                options.id =
                    Some(
                        StructureId::uniprot(&value).map_err(|error| OptionError::Id {
                            key: "uniprot",
                            error,
                        })?,
                    )
            }
            "rcsb" => {
                options.sources.rcsb =
                    source_url(&value).map_err(|error| OptionError::Id { key: "rcsb", error })?
            }
            "alphafold" => {
                options.sources.alphafold = source_url(&value).map_err(|error| OptionError::Id {
                    key: "alphafold",
                    error,
                })?
            }
            _ => {}
        }
    }
    Ok(options)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hexval = |c: u8| (c as char).to_digit(16);
                match (hexval(bytes[i + 1]), hexval(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string `query` with its structure identifier replaced by `id` (`pdb=` or
/// `uniprot=`, which also drops `example=`; none: removed) and the other options kept, so that the address names what the
/// page shows and can be shared.
pub fn with_id(query: &str, id: Option<&StructureId>) -> String {
    let mut pairs: Vec<String> = query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| {
            let key = p.split_once('=').map_or(*p, |(k, _)| k);
            let replaced = matches!(key, "pdb" | "uniprot") || (id.is_some() && key == "example");
            !p.is_empty() && !replaced
        })
        .map(str::to_string)
        .collect();
    match id {
        Some(StructureId::Pdb(s)) => pairs.insert(0, format!("pdb={}", s.to_ascii_lowercase())),
        Some(StructureId::UniProt(s)) => pairs.insert(0, format!("uniprot={s}")),
        None => {}
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Whether a file name looks like a structure file the page reads: `.pdb`, `.ent`, `.cif`,
/// `.mmcif`, each also gzipped (`.gz`), not hidden. Used to pick the structures out of a folder.
pub fn is_structure_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    let plain = base.strip_suffix(".gz").unwrap_or(base);
    !base.starts_with('.')
        && [".pdb", ".ent", ".cif", ".mmcif"]
            .iter()
            .any(|ext| plain.ends_with(ext))
}

/// The residue (of `n`) under a pointer `x` pixels into a plot `width` pixels wide, residues
/// side by side in order.
pub fn residue_at(x: f64, width: f64, n: usize) -> Option<usize> {
    if n == 0 || width.is_nan() || width <= 0.0 || !(0.0..=width).contains(&x) {
        return None;
    }
    Some(((x / width * n as f64) as usize).min(n - 1))
}

/// The host of a URL, for messages (`files.rcsb.org`).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// A one-line description of a chain for the chain picker.
pub fn chain_label(chain: &Chain) -> String {
    format!("chain {} · {} residues", chain.id, chain.len())
}

/// The index of the chain shown first: the first with at least two residues.
pub fn default_chain(structure: &Structure) -> Option<usize> {
    structure
        .first_model_chains()
        .iter()
        .position(|c| c.len() >= 2)
}

/// Human-readable byte count.
pub fn bytes_label(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / (1 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.0} kB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// `name_chain` → a safe download file stem.
pub fn download_stem(file_name: &str, chain: &str) -> String {
    let base = file_name.strip_suffix(".gz").unwrap_or(file_name);
    let base = base.rsplit_once('.').map(|(b, _)| b).unwrap_or(base);
    let clean: String = format!("{base}_{chain}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.trim_matches('_').is_empty() {
        "structure".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `json[path…]` as a number with two decimals, as the notes write it.
    fn two_decimals(json: &serde_json::Value, path: &[&str]) -> String {
        let value = path.iter().fold(json, |v, key| &v[*key]);
        format!(
            "{:.2}",
            value.as_f64().expect("a number in the evaluation output")
        )
    }

    /// The page's notes quote the committed evaluation outputs, rounded, and nothing else.
    #[test]
    fn notes_quote_the_evaluations() {
        let qa: serde_json::Value = serde_json::from_str(include_str!(
            "../../evaluation/eval-qa-smooth/ours-r15.json"
        ))
        .expect("json");
        assert_eq!(
            qa["smooth_radius"].as_f64(),
            Some(f64::from(foldspace::score::refine::PLAUSIBILITY_RADIUS))
        );
        let levels = qa["levels"].as_array().expect("levels");
        let level = levels
            .iter()
            .find(|l| {
                (l["sigma"].as_f64().unwrap_or(0.0) - f64::from(PLAUSIBILITY_SIGMA)).abs() < 1e-3
            })
            .expect("the plausibility level was evaluated");
        let rho = two_decimals(level, &["local_spearman_gnorm_vs_lddt_error"]);
        let r = two_decimals(level, &["global_pearson_vs_gdt_ts", "mean"]);
        assert!(PLAUSIBILITY_NOTE.contains(&format!("ρ = {rho}")), "{rho}");
        assert!(PLAUSIBILITY_NOTE.contains(&format!("r = {r}")), "{r}");

        let e: serde_json::Value = serde_json::from_str(include_str!(
            "../../evaluation/align-tiled/shipped-ppi_test_like.json"
        ))
        .expect("json");
        let shipped: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/align/align.json")).expect("json");
        assert_eq!(e["structure_weight"], shipped["config"]["structure_weight"]);
        assert_eq!(e["structure_level"], shipped["config"]["structure_level"]);
        assert_eq!(
            e["structure_windows"],
            shipped["config"]["structure_windows"]
        );
        assert!(LIKELY_FUNCTION_NOTE.contains(&format!("On {} PDB chains", e["n"])));
        for (path, words) in [
            (&["go_mf_fmax_transfer", "fmax"][..], "Fmax"),
            (&["baselines", "naive", "go_mf_fmax"], "against"),
            (&["baselines", "nearest_sequence", "go_mf_fmax"], "and"),
            (&["text_to_protein", "map"], "MAP"),
            (&["baselines", "random", "text_to_protein", "map"], "random"),
        ] {
            let quoted = format!("{words} {}", two_decimals(&e, path));
            assert!(LIKELY_FUNCTION_NOTE.contains(&quoted), "{quoted}");
        }
    }

    #[test]
    fn long_chains_say_how_long_a_run_takes() {
        // From the last run, the time grows as the square of the length: 2 s at 100 residues is
        // 8 s at 200 (said as 10 s) and 128 s at 800 (2 min).
        let words = long_chain_words("A", 200, 400, Some((100, 2000.0)));
        assert_eq!(
            words,
            "chain A has 200 residues: on the CPU the model runs unasked on up to 400; longer \
             chains take about 10 s a run here (estimated from the last run: 2.0 s at 100 residues)"
        );
        assert!(long_chain_words("B", 800, 400, Some((100, 2000.0))).contains("about 2 min a run"));
        // No run yet (or a meaningless one): no number.
        for pace in [
            None,
            Some((0, 2000.0)),
            Some((100, 0.0)),
            Some((100, f64::NAN)),
        ] {
            let words = long_chain_words("A", 837, 400, pace);
            assert!(
                words.ends_with("longer chains take minutes on a slow machine"),
                "{words}"
            );
        }
        assert_eq!(duration_words(0.2), "5 s");
        assert_eq!(duration_words(41.0), "45 s");
        assert_eq!(duration_words(89.0), "90 s");
        assert_eq!(duration_words(150.0), "3 min");
    }

    #[test]
    fn plddt_bands() {
        assert_eq!(hex(plddt_color(10.0)), "#ff7d45");
        assert_eq!(hex(plddt_color(50.0)), "#ffdb13");
        assert_eq!(hex(plddt_color(89.9)), "#65cbf3");
        assert_eq!(hex(plddt_color(90.0)), "#0053d6");
    }

    #[test]
    fn shareable_queries() {
        let ubq = StructureId::Pdb("1UBQ".into());
        assert_eq!(with_id("", Some(&ubq)), "?pdb=1ubq");
        assert_eq!(
            with_id("?uniprot=P1&backend=cpu&example=1a8o", Some(&ubq)),
            "?pdb=1ubq&backend=cpu"
        );
        assert_eq!(with_id("?pdb=1abc&level=3", None), "?level=3");
        assert_eq!(with_id("?example=1a8o&pdb=1abc", None), "?example=1a8o");
        assert_eq!(with_id("?pdb=1abc", None), "");
        let o = parse_query(&with_id(
            "?rcsb=http://x",
            Some(&StructureId::UniProt("P69905".into())),
        ))
        .expect("ok");
        assert_eq!(o.id, Some(StructureId::UniProt("P69905".into())));
    }

    #[test]
    fn structure_names() {
        for yes in [
            "1abc.pdb",
            "X.CIF",
            "pdb1abc.ent.gz",
            "a/b/model.mmcif",
            "AF-Q-F1.pdb.gz",
        ] {
            assert!(is_structure_name(yes), "{yes}");
        }
        for no in [
            "README.md",
            ".hidden.pdb",
            "w.safetensors",
            "x.gz",
            "notes.txt",
            "pdb",
        ] {
            assert!(!is_structure_name(no), "{no}");
        }
    }

    #[test]
    fn residues_under_the_pointer() {
        assert_eq!(residue_at(0.0, 100.0, 10), Some(0));
        assert_eq!(residue_at(55.0, 100.0, 10), Some(5));
        assert_eq!(residue_at(100.0, 100.0, 10), Some(9));
        assert_eq!(residue_at(101.0, 100.0, 10), None);
        assert_eq!(residue_at(5.0, 0.0, 10), None);
        assert_eq!(residue_at(5.0, 100.0, 0), None);
    }

    #[test]
    fn hosts() {
        assert_eq!(
            url_host("https://files.rcsb.org/download/1UBQ.cif"),
            "files.rcsb.org"
        );
        assert_eq!(url_host("http://127.0.0.1:9/x"), "127.0.0.1:9");
    }

    #[test]
    fn query() {
        let o = parse_query("?weights=%2Fw%2Fmodel.safetensors&level=4&backend=cpu").expect("ok");
        assert_eq!(o.weights.as_deref(), Some("/w/model.safetensors"));
        assert_eq!(o.level, Some(4));
        assert_eq!(o.backend, BackendChoice::Cpu);
        assert_eq!(o.renderer, None);
        let o = parse_query("backend=webgpu&view=webgl").expect("ok");
        assert_eq!(o.backend, BackendChoice::WebGpu);
        assert_eq!(o.renderer, Some(Renderer::WebGl2));
        assert_eq!(
            parse_query("backend=gpu").expect("ok").backend,
            BackendChoice::WebGpu
        );
        assert_eq!(
            parse_query("view=WebGPU").expect("ok").renderer,
            Some(Renderer::WebGpu)
        );
        let e = parse_query("backend=cuda").expect_err("unknown backend");
        assert_eq!(
            e.to_string(),
            "?backend= must be one of auto, cpu, webgpu, not \"cuda\""
        );
        assert!(parse_query("view=opengl").is_err());
        assert!(parse_query("weights=https://evil.example/w").is_err());
        assert!(parse_query("weights=//evil.example/w").is_err());
        assert!(parse_query("level=x").is_err());
        assert_eq!(parse_query("").expect("ok"), PageOptions::default());
        let o = parse_query("?pdb=1ubq&rcsb=http%3A%2F%2F127.0.0.1%3A9%2F").expect("ok");
        assert_eq!(o.id, Some(StructureId::Pdb("1UBQ".into())));
        assert_eq!(o.sources.rcsb, "http://127.0.0.1:9");
        assert_eq!(o.sources.alphafold, Sources::default().alphafold);
        let o = parse_query("uniprot=P69905").expect("ok");
        assert_eq!(o.id, Some(StructureId::UniProt("P69905".into())));
        assert!(parse_query("pdb=P69905").is_err());
        assert!(parse_query("uniprot=1ubq").is_err());
        assert!(parse_query("alphafold=javascript:x").is_err());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%é%41"), "%éA");
    }

    #[test]
    fn ranges_and_pixels() {
        assert_eq!(robust_range(&[]), (0.0, 1.0));
        let (lo, hi) = robust_range(&[2.0; 10]);
        assert!(lo < 2.0 && hi > 2.0);
        let px = distance_rgba(&[0.0, 100.0], 20.0);
        assert_eq!(px.len(), 8);
        assert_ne!(px[..3], px[4..7], "near and far differ");
        let (m, lo, hi) = matrix_rgba(&[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(m.len(), 16);
        assert!(lo < hi);
    }

    #[test]
    fn stems() {
        assert_eq!(download_stem("1abc.cif.gz", "A"), "1abc_A");
        assert_eq!(download_stem("my file.pdb", "B"), "my_file_B");
        assert_eq!(download_stem("<script>.pdb", "A"), "_script__A");
    }
}
