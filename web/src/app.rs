//! The page (a yew component): loading, the distance map, the 3D view, the model, refinement,
//! embeddings and exports. Heavy lifting is in `foldspace`, [`crate::logic`] and
//! [`crate::scene`]; this file wires events to them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use foldspace::align::search::{BankEntry, TRANSFER_NEIGHBOURS};
use foldspace::compute::Compute;
use foldspace::geometry::superpose;
use foldspace::score::embed::{ARRAY_NAMES, ChainEmbedding, Embedder, Provenance, metadata};
use foldspace::score::refine::{Langevin, Schedule, Step, coordinate_score, random_cloud};
use foldspace::structure::{BFactorKind, Chain, ReadOptions, Structure, read_structure};
use foldspace::text::TextEncoder;
use wasm_bindgen::JsCast;
use web_sys::{DragEvent, Event, HtmlCanvasElement, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::browser::{self, BrowserError};
use crate::loading::{
    AlignAssets, DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_ORIGIN, Similar, TextHits, load_align,
    load_text_model, load_weights, search_text, similar, weights_label,
};
use crate::logic::{self, ColorMode, Legend, PLAUSIBILITY_SIGMA, PageOptions};
use crate::scene::{self, Camera};
use crate::viewer::{Layer, Viewer};

mod collection;
mod fetch;
mod residues;

/// Example structures shipped in `assets/examples` (file, what it is).
const EXAMPLES: [(&str, &str); 6] = [
    ("1a8o.pdb", "HIV capsid domain · 70 aa · X-ray"),
    ("4e43.pdb", "HIV-1 protease dimer · 3 chains"),
    ("4zhl.cif", "uPA + cyclic peptide · mmCIF"),
    ("1lcd_nmr.pdb", "Lac headpiece on DNA · NMR, 3 models"),
    (
        "AF-Q5VSL9-F1-model_v2.pdb.gz",
        "AlphaFold model · 837 aa · pLDDT · gzip",
    ),
    ("1orc.pdb", "Cro repressor · insertion codes"),
];

/// Loading state of the alignment assets.
#[derive(Debug, Clone, PartialEq)]
enum AlignLoad {
    NotStarted,
    Loading,
    Failed(String),
}

/// Colour slots after the residues: arrows, then highlighted residues.
const ARROW_COLOR: [u8; 3] = [0xe6, 0xf0, 0xff];
const HIGHLIGHT_COLOR: [u8; 3] = [0xff, 0x3d, 0xc8];

/// What the status line says.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Idle(String),
    Busy(String),
    Ready,
    Error(String),
}

impl Status {
    fn text(&self) -> String {
        match self {
            Status::Idle(s) | Status::Busy(s) => s.clone(),
            Status::Ready => "ready".into(),
            Status::Error(e) => format!("error: {e}"),
        }
    }
    fn class(&self) -> &'static str {
        match self {
            Status::Idle(_) => "status idle",
            Status::Busy(_) => "status busy",
            Status::Ready => "status ready",
            Status::Error(_) => "status error",
        }
    }
}

/// An export the user asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Export {
    Npz,
    Npy,
    Csv,
    Json,
    Png,
    MapPng,
}

/// Refinement in progress or finished.
struct Refinement {
    stop: Rc<Cell<bool>>,
    running: bool,
    done: usize,
    total: usize,
    sigma: f32,
    rmsd: Option<f32>,
    from_noise: bool,
}

pub enum Msg {
    ComputeReady(Compute, Option<String>),
    WeightsProgress(u64, Option<u64>),
    WeightsLoaded(Result<Rc<Embedder>, String>, String),
    ViewerReady(Result<Rc<RefCell<Viewer>>, String>),
    Files(Vec<web_sys::File>),
    FileRead(String, Result<Vec<u8>, String>),
    Example(&'static str),
    /// Fetching a structure by its identifier ([`fetch`]).
    Fetch(fetch::FetchMsg),
    /// Many proteins at once ([`collection`]).
    Collection(collection::CollectionMsg),
    SelectChain(usize),
    Distances(u64, Result<Vec<f32>, String>),
    Embedded((u64, usize), Result<ChainEmbedding, String>, f64),
    Plausibility(u64, Result<Vec<f32>, String>),
    AlignLoaded(Result<Rc<AlignAssets>, String>),
    QueryInput(String),
    Search,
    TextModelLoaded(Result<Rc<TextEncoder>, String>),
    /// Bytes of the search's download in progress (the bank or the text model) and its size.
    SearchProgress(u64, Option<u64>),
    TextHits(Result<Rc<TextHits>, String>),
    Similar(u64, Result<Rc<Similar>, String>),
    SetLevel(usize),
    SetColor(ColorMode),
    ToggleArrows,
    ArrowLength(f32),
    MapZoom(f32),
    HoverMap(Option<(usize, usize)>),
    /// A residue hovered in the plot along the sequence.
    HoverResidue(Option<usize>),
    Pointer(&'static str, web_sys::PointerEvent),
    Wheel(web_sys::WheelEvent),
    ResetView,
    ToggleSpin,
    Frame(f64),
    RefineStartLevel(usize),
    RefineSteps(usize),
    RefineFromNoise(bool),
    Refine,
    StopRefine,
    RefineStep(Vec<[f32; 3]>, Step),
    RefineDone(Result<Vec<[f32; 3]>, String>),
    ShowStructure,
    NpyName(String),
    Export(Export),
    DragOver(bool),
    Nothing,
}

pub struct App {
    query: String,
    /// The "fetch by ID" box.
    fetch: fetch::FetchState,
    /// Many proteins at once.
    collection: collection::CollectionState,
    text_model: Option<Rc<TextEncoder>>,
    text_busy: Option<String>,
    text_error: Option<String>,
    text_hits: Option<Rc<TextHits>>,
    search_progress: Option<(u64, Option<u64>)>,
    align: Option<Rc<AlignAssets>>,
    align_load: AlignLoad,
    similar: Option<(u64, Rc<Similar>)>,
    similar_running: bool,
    options: PageOptions,
    option_error: Option<String>,
    compute: Option<Compute>,
    backend_note: Option<String>,
    embedder: Option<Rc<Embedder>>,
    weights_label: String,
    weights_progress: Option<(u64, Option<u64>)>,
    weights_error: Option<String>,
    viewer: Option<Rc<RefCell<Viewer>>>,
    viewer_error: Option<String>,
    file_name: String,
    structure: Option<Rc<Structure>>,
    warnings: Vec<String>,
    chain_index: usize,
    chain_job: u64,
    distances: Option<Rc<Vec<f32>>>,
    distances_running: bool,
    /// Counts new distance maps and embeddings, so that heatmaps are painted once each.
    distances_gen: u64,
    embedding_gen: u64,
    painted: Cell<(u64, u64)>,
    embedding: Option<Rc<ChainEmbedding>>,
    embed_running: Option<(u64, usize)>,
    /// ‖g_i‖ at σ = 1 Å for the plausibility colouring, computed on demand (chain job, values).
    plausibility: Option<(u64, Rc<Vec<f32>>)>,
    plausibility_running: bool,
    embed_ms: Option<f64>,
    file_started_ms: f64,
    first_embedding_ms: Option<f64>,
    level: usize,
    status: Status,
    color: ColorMode,
    arrows: bool,
    arrow_length: f32,
    map_zoom: f32,
    hover: Option<(usize, Option<usize>)>,
    pointers: HashMap<i32, (f32, f32)>,
    drag_button: i16,
    spin: Option<gloo::render::AnimationFrame>,
    frames: (f64, u32, f64),
    fps: Option<f64>,
    display: Option<Vec<[f32; 3]>>,
    refinement: Option<Refinement>,
    refine_level: usize,
    refine_steps: usize,
    refine_from_noise: bool,
    npy_name: String,
    dragging: bool,
    map_ref: NodeRef,
    overlay_ref: NodeRef,
    canvas_ref: NodeRef,
    protein_ref: NodeRef,
    residue_ref: NodeRef,
    /// The plot along the sequence ([`residues`]).
    residue_plot: NodeRef,
}

/// Mount the page on `<div id="app">`; a document without one (a test runner's page) is left
/// alone.
pub fn mount() {
    let root = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("app"));
    if let Some(root) = root {
        yew::Renderer::<App>::with_root(root).render();
    }
}

impl App {
    fn chain(&self) -> Option<&Chain> {
        self.structure
            .as_ref()
            .and_then(|s| s.first_model_chains().get(self.chain_index))
    }

    /// The longest chain the model runs on with the current backend.
    fn model_limit(&self) -> usize {
        match &self.compute {
            Some(c) if c.is_gpu() => logic::MAX_MODEL_RESIDUES_GPU,
            _ => logic::MAX_MODEL_RESIDUES_CPU,
        }
    }

    fn backend_name(&self) -> &'static str {
        match &self.compute {
            Some(c) if c.is_gpu() => "WebGPU",
            Some(_) => "the CPU",
            None => "—",
        }
    }

    /// The coordinates on screen: the chain's, or a refinement's.
    fn coords(&self) -> &[[f32; 3]] {
        match (&self.display, self.chain()) {
            (Some(d), _) => d,
            (None, Some(c)) => &c.ca,
            _ => &[],
        }
    }

    /// Start whatever is missing and possible: the distance map, then the model.
    fn kick(&mut self, ctx: &Context<Self>) {
        let Some(chain) = self.chain().cloned() else {
            return;
        };
        if let Some(compute) = self.compute.clone()
            && self.distances.is_none()
            && !self.distances_running
        {
            self.distances_running = true;
            let job = self.chain_job;
            let ca = chain.ca.clone();
            self.status = Status::Busy("computing the distance map…".into());
            ctx.link().send_future(async move {
                let result = compute
                    .distance_map(&ca, &ca)
                    .await
                    .map_err(|e| e.to_string());
                Msg::Distances(job, result)
            });
        }
        // Weights that failed to load: once the distance map is done, the status says why the
        // model cannot run (the map's "computing…" must not stay as the last word).
        if let Some(e) = self.weights_error.clone() {
            if !self.distances_running {
                self.status = Status::Error(e);
            }
            return;
        }
        if self.refinement.as_ref().is_some_and(|r| r.running) {
            return;
        }
        let key = (self.chain_job, self.level);
        if self.embed_running.is_some() {
            return;
        }
        if self.embedding.is_some() {
            self.kick_plausibility(ctx);
            self.kick_similar(ctx);
            return;
        }
        let Some(embedder) = self.embedder.clone() else {
            if self.compute.is_some() {
                self.status = Status::Busy("loading the model weights…".into());
            }
            return;
        };
        let limit = self.model_limit();
        if chain.len() > limit {
            self.status = Status::Error(format!(
                "chain {} has {} residues; the model runs on chains of up to {limit} residues on {} (the map and 3D view are shown)",
                chain.id,
                chain.len(),
                self.backend_name()
            ));
            return;
        }
        if chain.len() < 2 {
            self.status = Status::Error(format!(
                "chain {} has {} residue(s); the model needs at least 2",
                chain.id,
                chain.len()
            ));
            return;
        }
        self.embed_running = Some(key);
        self.status = Status::Busy(format!(
            "running the model on {} (σ = {:.3} Å)…",
            self.backend_name(),
            embedder
                .sigmas()
                .get(self.level)
                .copied()
                .unwrap_or(f32::NAN)
        ));
        ctx.link().send_future(async move {
            // Let the status paint before a CPU run blocks the page.
            browser::yield_now().await;
            let t0 = browser::now_ms();
            let result = embedder
                .embed(&chain, key.1)
                .await
                .map_err(|e| e.to_string());
            Msg::Embedded(key, result, browser::now_ms() - t0)
        });
    }

    /// After the embedding: ‖g_i‖ at σ ≈ 1 Å when the plausibility colouring is shown.
    fn kick_plausibility(&mut self, ctx: &Context<Self>) {
        // Always after the embedding: the plot along the sequence shows it, and the colouring
        // by plausibility uses it.
        if self.plausibility_running
            || self
                .plausibility
                .as_ref()
                .is_some_and(|(job, _)| *job == self.chain_job)
        {
            return;
        }
        let (Some(embedder), Some(chain)) = (self.embedder.clone(), self.chain().cloned()) else {
            return;
        };
        if chain.len() < 2 || chain.len() > self.model_limit() {
            return;
        }
        let sigmas = embedder.sigmas();
        let Some(level) = (0..sigmas.len()).min_by(|&a, &b| {
            (sigmas[a].ln() - PLAUSIBILITY_SIGMA.ln())
                .abs()
                .total_cmp(&(sigmas[b].ln() - PLAUSIBILITY_SIGMA.ln()).abs())
        }) else {
            return;
        };
        self.plausibility_running = true;
        self.status = Status::Busy(format!(
            "scoring plausibility on {} (σ = {:.2} Å)…",
            self.backend_name(),
            sigmas[level]
        ));
        let job = self.chain_job;
        ctx.link().send_future(async move {
            browser::yield_now().await;
            let result = coordinate_score(&embedder, &chain.ca, &chain.sequence, level)
                .await
                .map(|g| {
                    g.chunks_exact(3)
                        .map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt())
                        .collect()
                })
                .map_err(|e| e.to_string());
            Msg::Plausibility(job, result)
        });
    }

    /// The alignment model and the bank once loaded; otherwise starts loading them (once; the
    /// answer comes as `Msg::AlignLoaded`, progress as `Msg::SearchProgress`) and returns `None`.
    fn ensure_align(&mut self, ctx: &Context<Self>, compute: Compute) -> Option<Rc<AlignAssets>> {
        if let Some(assets) = &self.align {
            return Some(assets.clone());
        }
        if self.align_load == AlignLoad::NotStarted {
            self.align_load = AlignLoad::Loading;
            let link = ctx.link().clone();
            ctx.link().send_future(async move {
                let progress = move |got, total| link.send_message(Msg::SearchProgress(got, total));
                Msg::AlignLoaded(load_align(compute, progress).await.map(Rc::new))
            });
        }
        None
    }

    /// Search the bank by the text in the box (loading the alignment assets and the text model
    /// first when needed; the text encoder runs on the CPU backend, which beats software WebGPU).
    fn kick_search(&mut self, ctx: &Context<Self>) {
        let query = self.query.trim().to_string();
        if query.is_empty() || self.text_busy.is_some() || self.text_error.is_some() {
            return;
        }
        if self.text_hits.as_ref().is_some_and(|h| h.query == query) {
            return;
        }
        let Some(compute) = self.compute.clone() else {
            return;
        };
        let Some(assets) = self.ensure_align(ctx, compute) else {
            match &self.align_load {
                AlignLoad::Failed(e) => self.text_error = Some(e.clone()),
                _ => {
                    self.text_busy = Some("loading the alignment model and the search bank…".into())
                }
            }
            return;
        };
        let Some(encoder) = self.text_model.clone() else {
            self.text_busy = Some("loading the text model (all-MiniLM-L6-v2, int8)…".into());
            let link = ctx.link().clone();
            ctx.link().send_future(async move {
                let progress = move |got, total| link.send_message(Msg::SearchProgress(got, total));
                Msg::TextModelLoaded(load_text_model(progress).await.map(Rc::new))
            });
            return;
        };
        self.text_busy = Some("searching…".into());
        ctx.link().send_future(async move {
            browser::yield_now().await;
            Msg::TextHits(search_text(&assets, &encoder, query).await.map(Rc::new))
        });
    }

    /// Similar proteins in the bank and likely function, once per chain (after its embedding;
    /// loads the alignment model and the bank the first time).
    fn kick_similar(&mut self, ctx: &Context<Self>) {
        if self.similar_running
            || self
                .similar
                .as_ref()
                .is_some_and(|(job, _)| *job == self.chain_job)
        {
            return;
        }
        let Some(compute) = self.compute.clone() else {
            return;
        };
        let Some(assets) = self.ensure_align(ctx, compute) else {
            return;
        };
        let (Some(embedder), Some(chain)) = (self.embedder.clone(), self.chain().cloned()) else {
            return;
        };
        if chain.len() < 2 || chain.len() > self.model_limit() {
            return;
        }
        self.similar_running = true;
        let job = self.chain_job;
        ctx.link().send_future(async move {
            browser::yield_now().await;
            let started = browser::now_ms();
            let result = similar(&assets, &embedder, &chain).await;
            let ms = browser::now_ms() - started;
            Msg::Similar(
                job,
                result.map(|mut s| {
                    s.ms = ms;
                    Rc::new(s)
                }),
            )
        });
    }

    /// Rebuild the 3D meshes and colours from the current state.
    fn refresh_scene(&self, refit: bool) {
        let Some(viewer) = &self.viewer else { return };
        let Some(chain) = self.chain() else { return };
        let mut v = viewer.borrow_mut();
        let coords = self.coords();
        let max_gap = if self.display.is_some() {
            f32::INFINITY
        } else {
            4.5
        };
        v.set_mesh(Layer::Trace, &scene::tube(coords, 0.42, 6, 10, max_gap));
        let l = chain.len();
        let (mut colors, _) = self.residue_colors(chain);
        colors.push(ARROW_COLOR);
        colors.push(HIGHLIGHT_COLOR);
        v.set_colors(&colors);
        let arrows = match (&self.embedding, self.arrows && self.display.is_none()) {
            (Some(e), true) if e.length == l => {
                let norms = e.gradient_norms();
                let (_, hi) = logic::robust_range(&norms);
                let scale = self.arrow_length / hi.max(1e-12);
                scene::field_arrows(
                    coords,
                    &e.gradient,
                    scale,
                    self.arrow_length * 1.5,
                    l as u32,
                )
            }
            _ => scene::Mesh::default(),
        };
        v.set_mesh(Layer::Arrows, &arrows);
        v.set_mesh(Layer::Markers, &self.markers());
        if refit {
            v.camera = Camera::fit(coords);
            v.radius = scene::bounds(coords).1;
        }
        v.render();
    }

    /// Spheres on the hovered residue(s), in the highlight colour slot.
    fn markers(&self) -> scene::Mesh {
        let coords = self.coords();
        let slot = self.chain().map_or(0, |c| c.len()) as u32 + 1;
        let mut markers = scene::Mesh::default();
        if let Some((i, j)) = self.hover {
            for k in std::iter::once(i).chain(j) {
                if let Some(p) = coords.get(k) {
                    markers.extend(&scene::sphere(*p, 1.1, slot, 2));
                }
            }
        }
        markers
    }

    /// After a hover change: only the markers and the map's crosshair change.
    fn refresh_hover(&self) {
        if let Some(viewer) = &self.viewer {
            let mut v = viewer.borrow_mut();
            v.set_mesh(Layer::Markers, &self.markers());
            v.render();
        }
        self.paint_overlay();
    }

    fn residue_colors(&self, chain: &Chain) -> (Vec<[u8; 3]>, Legend) {
        let norms = match self.color {
            ColorMode::Plausibility => self
                .plausibility
                .as_ref()
                .filter(|(job, _)| *job == self.chain_job)
                .map(|(_, v)| v.to_vec()),
            _ => self.embedding.as_ref().map(|e| e.gradient_norms()),
        };
        let kind = self
            .structure
            .as_ref()
            .map(|s| s.b_factor_kind)
            .unwrap_or(BFactorKind::Temperature);
        logic::residue_colors(self.color, chain, self.chain_index, kind, norms.as_deref())
    }

    fn paint_map(&self) {
        let (Some(d), Some(canvas)) = (&self.distances, self.map_ref.cast::<HtmlCanvasElement>())
        else {
            return;
        };
        let n = (d.len() as f64).sqrt() as u32;
        let max = logic::distance_scale_max(d);
        if let Err(e) = browser::paint(&canvas, &logic::distance_rgba(d, max), n, n) {
            web_sys::console::warn_1(&e.to_string().into());
        }
        self.paint_overlay();
    }

    /// Crosshair on the map for the hovered residue(s).
    fn paint_overlay(&self) {
        let Some(canvas) = self.overlay_ref.cast::<HtmlCanvasElement>() else {
            return;
        };
        let Some(chain) = self.chain() else { return };
        let n = chain.len() as u32;
        canvas.set_width(n.max(1));
        canvas.set_height(n.max(1));
        let Ok(ctx) = browser::context_2d(&canvas) else {
            return;
        };
        ctx.clear_rect(0.0, 0.0, n as f64, n as f64);
        if let Some((i, j)) = self.hover {
            ctx.set_fill_style_str("rgba(255, 61, 200, 0.45)");
            let line = (n as f64 / 300.0).max(1.0);
            let j = j.unwrap_or(i);
            ctx.fill_rect(0.0, i as f64, n as f64, line);
            ctx.fill_rect(j as f64, 0.0, line, n as f64);
            if j != i {
                ctx.fill_rect(0.0, j as f64, n as f64, line);
                ctx.fill_rect(i as f64, 0.0, line, n as f64);
            }
        }
    }

    fn paint_embeddings(&self) {
        let Some(e) = &self.embedding else { return };
        if let Some(canvas) = self.protein_ref.cast::<HtmlCanvasElement>() {
            let (rgba, _, _) = logic::matrix_rgba(&e.protein);
            if let Err(e) = browser::paint(&canvas, &rgba, e.channels as u32, 1) {
                web_sys::console::warn_1(&format!("protein embedding: {e}").into());
            }
        }
        if let Some(canvas) = self.residue_ref.cast::<HtmlCanvasElement>() {
            // Channels down, residues across.
            let (l, c) = (e.length, e.channels);
            let mut t = vec![0.0f32; l * c];
            for i in 0..l {
                for k in 0..c {
                    t[k * l + i] = e.residue[i * c + k];
                }
            }
            let (rgba, _, _) = logic::matrix_rgba(&t);
            if let Err(e) = browser::paint(&canvas, &rgba, l as u32, c as u32) {
                web_sys::console::warn_1(&format!("residue embeddings: {e}").into());
            }
        }
    }

    fn set_structure(&mut self, ctx: &Context<Self>, name: String, bytes: &[u8]) {
        let options = ReadOptions {
            max_bytes: logic::MAX_FILE_BYTES,
            ..ReadOptions::default()
        };
        self.stop_refinement();
        self.file_started_ms = browser::now_ms();
        match read_structure(bytes, Some(&name), &options) {
            Ok(parsed) => {
                let structure = parsed.structure;
                self.warnings = parsed.warnings.iter().map(|w| w.to_string()).collect();
                if structure.models.len() > 1 {
                    self.warnings.insert(
                        0,
                        format!(
                            "an ensemble of {} models (NMR): the first model is shown and embedded",
                            structure.models.len()
                        ),
                    );
                }
                self.chain_index = logic::default_chain(&structure).unwrap_or(0);
                self.structure = Some(Rc::new(structure));
                self.file_name = name;
                self.new_chain(ctx);
            }
            Err(e) => {
                self.status = Status::Error(format!("{name}: {e}"));
            }
        }
    }

    fn new_chain(&mut self, ctx: &Context<Self>) {
        self.chain_job += 1;
        self.distances = None;
        self.embedding = None;
        self.display = None;
        self.refinement = None;
        self.hover = None;
        self.first_embedding_ms = None;
        self.refresh_scene(true);
        self.kick(ctx);
    }

    fn stop_refinement(&mut self) {
        if let Some(r) = &self.refinement {
            r.stop.set(true);
        }
    }

    fn export(&self, what: Export) -> Result<(), BrowserError> {
        let chain_id = self.chain().map(|c| c.id.clone()).unwrap_or_default();
        let stem = logic::download_stem(&self.file_name, &chain_id);
        let need = || {
            self.embedding
                .clone()
                .ok_or_else(|| BrowserError("no embeddings yet".into()))
        };
        match what {
            Export::Npz => {
                let bytes = need()?.npz().map_err(|e| BrowserError(e.to_string()))?;
                browser::download(&format!("{stem}_embeddings.npz"), &bytes, "application/zip")
            }
            Export::Npy => {
                let e = need()?;
                let bytes = e
                    .npy(&self.npy_name)
                    .ok_or_else(|| BrowserError(format!("no array {}", self.npy_name)))?
                    .map_err(|e| BrowserError(e.to_string()))?;
                browser::download(
                    &format!("{stem}_{}.npy", self.npy_name),
                    &bytes,
                    "application/octet-stream",
                )
            }
            Export::Csv => {
                let e = need()?;
                let chain = self
                    .chain()
                    .ok_or_else(|| BrowserError("no chain".into()))?;
                browser::download(
                    &format!("{stem}_residues.csv"),
                    e.residue_csv(chain).as_bytes(),
                    "text/csv",
                )
            }
            Export::Json => {
                let e = need()?;
                let (Some(structure), Some(chain), Some(embedder)) =
                    (&self.structure, self.chain(), &self.embedder)
                else {
                    return Err(BrowserError("no embeddings yet".into()));
                };
                let backend = embedder.compute.describe();
                let provenance = Provenance {
                    file: &self.file_name,
                    weights_sha256: &embedder.weights_sha256,
                    backend: &backend,
                };
                let json = metadata(&provenance, structure, chain, &e);
                let text =
                    serde_json::to_string_pretty(&json).map_err(|e| BrowserError(e.to_string()))?;
                browser::download(
                    &format!("{stem}_metadata.json"),
                    text.as_bytes(),
                    "application/json",
                )
            }
            Export::Png => {
                let viewer = self
                    .viewer
                    .as_ref()
                    .ok_or_else(|| BrowserError("the 3D view is not available".into()))?;
                let url = viewer
                    .borrow_mut()
                    .screenshot()
                    .ok_or_else(|| BrowserError("the 3D view could not be captured".into()))?;
                browser::download_url(&format!("{stem}_3d.png"), &url)
            }
            Export::MapPng => {
                let canvas = self
                    .map_ref
                    .cast::<HtmlCanvasElement>()
                    .ok_or_else(|| BrowserError("no distance map".into()))?;
                let url = canvas
                    .to_data_url_with_type("image/png")
                    .map_err(|_| BrowserError("the map could not be captured".into()))?;
                browser::download_url(&format!("{stem}_distance_map.png"), &url)
            }
        }
    }

    fn start_refinement(&mut self, ctx: &Context<Self>) {
        let (Some(embedder), Some(chain)) = (self.embedder.clone(), self.chain().cloned()) else {
            return;
        };
        if chain.len() > self.model_limit() || chain.len() < 2 {
            return;
        }
        let levels = embedder.sigmas().len();
        if levels == 0 {
            return;
        }
        let start_level = if self.refine_from_noise {
            0
        } else {
            self.refine_level.min(levels.saturating_sub(1))
        };
        let schedule = Schedule {
            start_level,
            iterations: self.refine_steps.max(1),
            ..Schedule::reference(start_level)
        };
        let start = if self.refine_from_noise {
            random_cloud(chain.len(), js_sys::Date::now() as u64)
        } else {
            chain.ca.clone()
        };
        let stop = Rc::new(Cell::new(false));
        self.refinement = Some(Refinement {
            stop: stop.clone(),
            running: true,
            done: 0,
            total: schedule.total_steps(levels),
            sigma: embedder.sigmas()[start_level],
            rmsd: None,
            from_noise: self.refine_from_noise,
        });
        self.display = Some(align_to(&start, &chain.ca));
        self.hover = None;
        let link = ctx.link().clone();
        ctx.link().send_future(async move {
            let mut run = match Langevin::new(&embedder, &chain.sequence, start, schedule, 7) {
                Ok(r) => r,
                Err(e) => return Msg::RefineDone(Err(e.to_string())),
            };
            let mut last = 0.0;
            loop {
                if stop.get() {
                    break;
                }
                match run.step().await {
                    Ok(Some(step)) => {
                        let now = browser::now_ms();
                        if now - last > 60.0 || step.done == step.total {
                            last = now;
                            link.send_message(Msg::RefineStep(run.coords().to_vec(), step));
                        }
                        browser::yield_now().await;
                    }
                    Ok(None) => break,
                    Err(e) => return Msg::RefineDone(Err(e.to_string())),
                }
            }
            Msg::RefineDone(Ok(run.coords().to_vec()))
        });
    }
}

/// `coords` superposed onto `reference` (unchanged if they cannot be).
fn align_to(coords: &[[f32; 3]], reference: &[[f32; 3]]) -> Vec<[f32; 3]> {
    match superpose(coords, reference) {
        Some(s) => coords.iter().map(|p| s.apply(*p)).collect(),
        None => coords.to_vec(),
    }
}

fn legend_html(legend: &Legend) -> Html {
    match legend {
        Legend::Swatches(title, items) => html! {
            <div class="legend">
                <span class="legend-title">{ title.clone() }</span>
                { for items.iter().map(|(label, c)| html! {
                    <span class="swatch"><i style={format!("background:{}", logic::hex(*c))}></i>{ label.clone() }</span>
                }) }
            </div>
        },
        Legend::Gradient(title, lo, hi, ramp) => html! {
            <div class="legend">
                <span class="legend-title">{ title.clone() }</span>
                <span class="ramp-label">{ lo.clone() }</span>
                <span class="ramp" style={format!("background:{}", logic::css_gradient(ramp))}></span>
                <span class="ramp-label">{ hi.clone() }</span>
            </div>
        },
    }
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let (options, option_error) = match logic::parse_query(&browser::query()) {
            Ok(o) => (o, None),
            Err(e) => (PageOptions::default(), Some(e.to_string())),
        };
        browser::register_service_worker();
        // The compute device: WebGPU when the browser has it, else the CPU.
        let force_cpu = options.force_cpu;
        ctx.link().send_future(async move {
            if force_cpu {
                return Msg::ComputeReady(Compute::cpu(), Some("the CPU backend was chosen (?backend=cpu)".into()));
            }
            if !browser::has_webgpu() {
                return Msg::ComputeReady(
                    Compute::cpu(),
                    Some("this browser has no WebGPU: the model runs on the CPU (slower; the page may pause while it runs)".into()),
                );
            }
            match Compute::wgpu_async().await {
                Ok(c) => Msg::ComputeReady(c, None),
                Err(e) => Msg::ComputeReady(
                    Compute::cpu(),
                    Some(format!("WebGPU could not start ({e}): the model runs on the CPU")),
                ),
            }
        });
        let level = options.level.unwrap_or(usize::MAX);
        Self {
            query: String::new(),
            fetch: fetch::FetchState::default(),
            collection: collection::CollectionState::default(),
            text_model: None,
            text_busy: None,
            search_progress: None,
            text_error: None,
            text_hits: None,
            align: None,
            align_load: AlignLoad::NotStarted,
            similar: None,
            similar_running: false,
            weights_label: String::new(),
            options,
            option_error,
            compute: None,
            backend_note: None,
            embedder: None,
            weights_progress: None,
            weights_error: None,
            viewer: None,
            viewer_error: None,
            file_name: String::new(),
            structure: None,
            warnings: Vec::new(),
            chain_index: 0,
            chain_job: 0,
            distances: None,
            distances_running: false,
            distances_gen: 0,
            embedding_gen: 0,
            painted: Cell::new((0, 0)),
            embedding: None,
            embed_running: None,
            plausibility: None,
            plausibility_running: false,
            embed_ms: None,
            file_started_ms: 0.0,
            first_embedding_ms: None,
            level,
            status: Status::Idle("drop a PDB or mmCIF file, or pick an example".into()),
            color: ColorMode::Chain,
            arrows: true,
            arrow_length: 3.0,
            map_zoom: 1.0,
            hover: None,
            pointers: HashMap::new(),
            drag_button: 0,
            spin: None,
            frames: (0.0, 0, 0.0),
            fps: None,
            display: None,
            refinement: None,
            refine_level: 40,
            refine_steps: 3,
            refine_from_noise: false,
            npy_name: "residue".into(),
            dragging: false,
            map_ref: NodeRef::default(),
            overlay_ref: NodeRef::default(),
            canvas_ref: NodeRef::default(),
            protein_ref: NodeRef::default(),
            residue_ref: NodeRef::default(),
            residue_plot: NodeRef::default(),
        }
    }

    fn rendered(&mut self, ctx: &Context<Self>, first: bool) {
        if first && let Some(canvas) = self.canvas_ref.cast::<HtmlCanvasElement>() {
            ctx.link().send_future(async move {
                match Viewer::new(canvas).await {
                    Ok(v) => Msg::ViewerReady(Ok(Rc::new(RefCell::new(v)))),
                    Err(e) => Msg::ViewerReady(Err(e.to_string())),
                }
            });
        }
        // Repaint the heatmaps only when their data changed (not on every re-render).
        let (map, embedding) = self.painted.get();
        if map != self.distances_gen {
            self.paint_map();
        }
        if embedding != self.embedding_gen {
            self.paint_embeddings();
        }
        self.painted.set((self.distances_gen, self.embedding_gen));
        // Cheap (one line per series): follows hovers from the 3D view and the map.
        self.paint_residue_plot();
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Nothing => return false,
            Msg::ComputeReady(compute, note) => {
                self.compute = Some(compute.clone());
                self.backend_note = note;
                let (url, label) = match &self.options.weights {
                    Some(w) => (w.clone(), format!("{w} (from ?weights=)")),
                    None => (
                        DEFAULT_WEIGHTS.to_string(),
                        DEFAULT_WEIGHTS_ORIGIN.to_string(),
                    ),
                };
                let link = ctx.link().clone();
                ctx.link().send_future(async move {
                    let result = load_weights(&url, compute, move |got, total| {
                        link.send_message(Msg::WeightsProgress(got, total))
                    })
                    .await;
                    Msg::WeightsLoaded(result, label)
                });
                if let Some(example) = self.options.example.clone()
                    && let Some((file, _)) = EXAMPLES
                        .iter()
                        .find(|(f, _)| f.starts_with(example.as_str()))
                {
                    ctx.link().send_message(Msg::Example(file));
                }
                if let Some(id) = self.options.id.clone() {
                    ctx.link()
                        .send_message(Msg::Fetch(fetch::FetchMsg::Start(Some(id))));
                }
                self.kick(ctx);
            }
            Msg::WeightsProgress(got, total) => {
                self.weights_progress = Some((got, total));
                if self.structure.is_some() && self.embedding.is_none() {
                    self.status = Status::Busy(format!(
                        "loading the model weights… {}{}",
                        logic::bytes_label(got as usize),
                        total
                            .map(|t| format!(" of {}", logic::bytes_label(t as usize)))
                            .unwrap_or_default()
                    ));
                }
            }
            Msg::WeightsLoaded(result, label) => {
                self.weights_progress = None;
                match result {
                    Ok(embedder) => {
                        let levels = embedder.sigmas().len();
                        if self.level >= levels {
                            self.level = self
                                .options
                                .level
                                .unwrap_or(levels.saturating_sub(1))
                                .min(levels.saturating_sub(1));
                        }
                        self.weights_label = weights_label(&label, &embedder);
                        self.weights_error = None;
                        self.embedder = Some(embedder);
                        self.embedding = None;
                        self.kick(ctx);
                        self.collection_next(ctx);
                    }
                    Err(e) => {
                        let message = format!("the model weights failed to load: {e}");
                        self.weights_error = Some(message.clone());
                        self.status = Status::Error(message);
                    }
                }
            }
            Msg::ViewerReady(result) => match result {
                Ok(v) => {
                    self.viewer = Some(v);
                    self.refresh_scene(true);
                }
                Err(e) => self.viewer_error = Some(e),
            },
            Msg::Files(files) => {
                self.dragging = false;
                let (weights, structures): (Vec<_>, Vec<_>) = files
                    .into_iter()
                    .partition(|f| f.name().to_ascii_lowercase().ends_with(".safetensors"));
                // Several structures (or a folder): the table and the map, not one view.
                let files = if structures.len() > 1 {
                    self.start_collection(ctx, structures);
                    weights
                } else {
                    weights.into_iter().chain(structures).collect()
                };
                for file in files {
                    let name = file.name();
                    let lower = name.to_ascii_lowercase();
                    if lower.ends_with(".safetensors") {
                        let Some(compute) = self.compute.clone() else {
                            continue;
                        };
                        self.status = Status::Busy(format!("loading weights from {name}…"));
                        ctx.link().send_future(async move {
                            let result = match browser::read_file(&file).await {
                                Ok(bytes) => Embedder::from_bytes(&bytes, compute)
                                    .map(Rc::new)
                                    .map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            };
                            Msg::WeightsLoaded(result, format!("{name} (dropped on the page)"))
                        });
                        continue;
                    }
                    browser::set_query(&logic::with_id(&browser::query(), None));
                    if file.size() > logic::MAX_FILE_BYTES as f64 {
                        self.status = Status::Error(format!(
                            "{name} is {}, above the page's limit of {}",
                            logic::bytes_label(file.size() as usize),
                            logic::bytes_label(logic::MAX_FILE_BYTES)
                        ));
                        continue;
                    }
                    self.status = Status::Busy(format!("reading {name}…"));
                    ctx.link().send_future(async move {
                        let bytes = browser::read_file(&file).await.map_err(|e| e.to_string());
                        Msg::FileRead(name, bytes)
                    });
                }
            }
            Msg::Example(file) => {
                browser::set_query(&logic::with_id(&browser::query(), None));
                self.status = Status::Busy(format!("fetching the example {file}…"));
                ctx.link().send_future(async move {
                    let url = format!("assets/examples/{file}");
                    let bytes = match browser::fetch_bytes(&url, |_, _| {}).await {
                        Ok(Some(b)) => Ok(b),
                        Ok(None) => Err(format!("{url} was not found on this site")),
                        Err(e) => Err(e.to_string()),
                    };
                    Msg::FileRead(file.to_string(), bytes)
                });
            }
            Msg::Fetch(msg) => return self.update_fetch(ctx, msg),
            Msg::Collection(msg) => return self.update_collection(ctx, msg),
            Msg::FileRead(name, bytes) => {
                self.fetch.fetching = None;
                match bytes {
                    Ok(bytes) => self.set_structure(ctx, name, &bytes),
                    Err(e) => self.status = Status::Error(e),
                }
            }
            Msg::SelectChain(i) => {
                if i != self.chain_index {
                    self.stop_refinement();
                    self.chain_index = i;
                    self.new_chain(ctx);
                }
            }
            Msg::Distances(job, result) => {
                self.distances_running = false;
                if job == self.chain_job {
                    match result {
                        Ok(d) => {
                            self.distances = Some(Rc::new(d));
                            self.distances_gen += 1;
                        }
                        Err(e) => self.status = Status::Error(format!("distance map: {e}")),
                    }
                }
                self.kick(ctx);
            }
            Msg::Embedded(key, result, ms) => {
                self.embed_running = None;
                if key == (self.chain_job, self.level) {
                    match result {
                        Ok(e) => {
                            self.embedding = Some(Rc::new(e));
                            self.embedding_gen += 1;
                            self.embed_ms = Some(ms);
                            if self.first_embedding_ms.is_none() {
                                self.first_embedding_ms =
                                    Some(browser::now_ms() - self.file_started_ms);
                            }
                            self.status = Status::Ready;
                            self.refresh_scene(false);
                        }
                        Err(e) => self.status = Status::Error(format!("the model failed: {e}")),
                    }
                }
                self.kick(ctx);
            }
            Msg::AlignLoaded(result) => {
                match result {
                    Ok(a) => {
                        self.align = Some(a);
                        self.align_load = AlignLoad::NotStarted;
                    }
                    Err(e) => self.align_load = AlignLoad::Failed(e),
                }
                // Only the alignment load can be pending here (text jobs start after it).
                self.text_busy = None;
                self.search_progress = None;
                self.kick(ctx);
                self.kick_search(ctx);
                self.collection_next(ctx);
            }
            Msg::QueryInput(q) => self.query = q,
            Msg::Search => {
                self.text_error = None;
                self.kick_search(ctx);
            }
            Msg::SearchProgress(got, total) => self.search_progress = Some((got, total)),
            Msg::TextModelLoaded(result) => {
                self.text_busy = None;
                self.search_progress = None;
                match result {
                    Ok(m) => {
                        self.text_model = Some(m);
                        self.kick_search(ctx);
                    }
                    Err(e) => self.text_error = Some(e),
                }
            }
            Msg::TextHits(result) => {
                self.text_busy = None;
                match result {
                    Ok(h) => self.text_hits = Some(h),
                    Err(e) => self.text_error = Some(e),
                }
            }
            Msg::Similar(job, result) => {
                self.similar_running = false;
                if job == self.chain_job {
                    match result {
                        Ok(s) => self.similar = Some((job, s)),
                        Err(e) => {
                            self.align_load = AlignLoad::Failed(format!("the search failed: {e}"))
                        }
                    }
                }
                self.kick(ctx);
            }
            Msg::Plausibility(job, result) => {
                self.plausibility_running = false;
                if job == self.chain_job {
                    match result {
                        Ok(v) => {
                            self.plausibility = Some((job, Rc::new(v)));
                            self.status = Status::Ready;
                            self.refresh_scene(false);
                        }
                        Err(e) => {
                            self.status = Status::Error(format!("plausibility scoring failed: {e}"))
                        }
                    }
                }
                self.kick(ctx);
            }
            Msg::SetLevel(level) => {
                if level != self.level {
                    self.level = level;
                    self.embedding = None;
                    self.kick(ctx);
                    self.refresh_scene(false);
                }
            }
            Msg::SetColor(mode) => {
                self.color = mode;
                self.refresh_scene(false);
                self.kick(ctx);
            }
            Msg::ToggleArrows => {
                self.arrows = !self.arrows;
                self.refresh_scene(false);
            }
            Msg::ArrowLength(v) => {
                self.arrow_length = v;
                self.refresh_scene(false);
            }
            Msg::MapZoom(z) => self.map_zoom = z.clamp(1.0, 8.0),
            Msg::HoverResidue(i) => {
                let hover = i.map(|i| (i, None));
                if hover == self.hover {
                    return false;
                }
                self.hover = hover;
                self.refresh_hover();
            }
            Msg::HoverMap(cell) => {
                let hover = cell.map(|(i, j)| (i, Some(j)));
                if hover == self.hover {
                    return false;
                }
                self.hover = hover;
                self.refresh_hover();
            }
            Msg::Pointer(kind, e) => return self.pointer(kind, e),
            Msg::Wheel(e) => {
                e.prevent_default();
                if let Some(v) = &self.viewer {
                    let mut v = v.borrow_mut();
                    v.camera.zoom((e.delta_y() as f32 * 0.0015).exp());
                    v.render();
                }
                return false;
            }
            Msg::ResetView => {
                self.refresh_scene(true);
                return false;
            }
            Msg::ToggleSpin => {
                if self.spin.take().is_none() {
                    self.frames = (browser::now_ms(), 0, 0.0);
                    let link = ctx.link().clone();
                    self.spin = Some(gloo::render::request_animation_frame(move |t| {
                        link.send_message(Msg::Frame(t))
                    }));
                } else {
                    self.fps = None;
                }
            }
            Msg::Frame(t) => {
                if self.spin.is_none() {
                    return false;
                }
                if let Some(v) = &self.viewer {
                    let mut v = v.borrow_mut();
                    let dt = if self.frames.2 > 0.0 {
                        t - self.frames.2
                    } else {
                        16.0
                    };
                    v.camera.orbit((dt as f32 * 0.04).min(4.0), 0.0);
                    v.render();
                }
                self.frames.2 = t;
                self.frames.1 += 1;
                let elapsed = browser::now_ms() - self.frames.0;
                let link = ctx.link().clone();
                self.spin = Some(gloo::render::request_animation_frame(move |t| {
                    link.send_message(Msg::Frame(t))
                }));
                if elapsed > 1000.0 {
                    self.fps = Some(self.frames.1 as f64 * 1000.0 / elapsed);
                    self.frames = (browser::now_ms(), 0, t);
                    return true;
                }
                return false;
            }
            Msg::RefineStartLevel(l) => self.refine_level = l,
            Msg::RefineSteps(s) => self.refine_steps = s.clamp(1, 50),
            Msg::RefineFromNoise(b) => self.refine_from_noise = b,
            Msg::Refine => self.start_refinement(ctx),
            Msg::StopRefine => self.stop_refinement(),
            Msg::RefineStep(coords, step) => {
                let reference = self.chain().map(|c| c.ca.clone()).unwrap_or_default();
                let rmsd = superpose(&coords, &reference).map(|s| s.rmsd);
                self.display = Some(align_to(&coords, &reference));
                if let Some(r) = &mut self.refinement {
                    r.done = step.done;
                    r.total = step.total;
                    r.sigma = step.sigma;
                    r.rmsd = rmsd;
                }
                self.refresh_scene(false);
            }
            Msg::RefineDone(result) => {
                let reference = self.chain().map(|c| c.ca.clone()).unwrap_or_default();
                match result {
                    Ok(coords) => {
                        let rmsd = superpose(&coords, &reference).map(|s| s.rmsd);
                        self.display = Some(align_to(&coords, &reference));
                        if let Some(r) = &mut self.refinement {
                            r.running = false;
                            r.rmsd = rmsd;
                        }
                    }
                    Err(e) => {
                        self.refinement = None;
                        self.display = None;
                        self.status = Status::Error(format!("refinement failed: {e}"));
                    }
                }
                self.refresh_scene(false);
                self.kick(ctx);
            }
            Msg::ShowStructure => {
                self.stop_refinement();
                self.refinement = None;
                self.display = None;
                self.refresh_scene(false);
            }
            Msg::NpyName(n) => self.npy_name = n,
            Msg::Export(what) => {
                if let Err(e) = self.export(what) {
                    self.status = Status::Error(format!("export failed: {e}"));
                }
            }
            Msg::DragOver(on) => {
                if on == self.dragging {
                    return false;
                }
                self.dragging = on;
            }
        }
        true
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let ondragover = link.callback(|e: DragEvent| {
            e.prevent_default();
            Msg::DragOver(true)
        });
        let ondragleave = link.callback(|e: DragEvent| {
            // Only when leaving the window.
            if e.related_target().is_none() {
                Msg::DragOver(false)
            } else {
                Msg::Nothing
            }
        });
        let ondrop = link.callback(|e: DragEvent| {
            e.prevent_default();
            let files = e
                .data_transfer()
                .and_then(|d| d.files())
                .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
                .unwrap_or_default();
            Msg::Files(files)
        });
        let onfile = link.callback(|e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let files = input
                .files()
                .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
                .unwrap_or_default();
            input.set_value("");
            Msg::Files(files)
        });
        html! {
            <div class={classes!("page", self.dragging.then_some("dragging"))}
                 {ondragover} {ondragleave} {ondrop}>
                <header>
                    <div class="brand">
                        <h1>{ "foldspace" }</h1>
                        <span class="tagline">{ "protein structure embeddings, computed in your browser — nothing leaves your machine" }</span>
                    </div>
                    <div class="load">
                        <label class="button primary">
                            { "Open structure…" }
                            <input type="file" data-testid="file-input" multiple=true
                                   accept=".pdb,.ent,.cif,.mmcif,.gz,.safetensors" onchange={onfile.clone()} />
                        </label>
                        <label class="button" title="every structure file in a folder: a table and a map">
                            { "Folder…" }
                            <input type="file" data-testid="folder-input" webkitdirectory=true onchange={onfile} />
                        </label>
                        <span class="hint">{ "or drop a PDB / mmCIF file (gzip too) anywhere, or" }</span>
                        { self.view_fetch(ctx) }
                    </div>
                </header>
                { self.view_status() }
                { self.view_examples(ctx) }
                <main class="grid">
                    { self.view_collection(ctx) }
                    { self.view_structure_panel(ctx) }
                    { self.view_residue_plot(ctx) }
                    { self.view_3d(ctx) }
                    { self.view_map(ctx) }
                    { self.view_model(ctx) }
                    { self.view_embeddings(ctx) }
                    { self.view_similar(ctx) }
                </main>
                <footer>
                    { "Score model: Guo et al., AAAI 2022 (denoising score matching on C-alpha distance maps). " }
                    { "Weights: " }<span data-testid="weights">{ self.weights_label.clone() }</span>
                    { ". Example structures: wwPDB (CC0) and AlphaFold DB (CC-BY 4.0, DeepMind / EMBL-EBI)." }
                </footer>
                if self.dragging {
                    <div class="drop-veil">{ "Drop a structure (PDB, mmCIF, gzip) or a weights file (.safetensors)" }</div>
                }
            </div>
        }
    }
}

impl App {
    fn pointer(&mut self, kind: &'static str, e: web_sys::PointerEvent) -> bool {
        let Some(viewer) = self.viewer.clone() else {
            return false;
        };
        let (x, y) = (e.offset_x() as f32, e.offset_y() as f32);
        let id = e.pointer_id();
        match kind {
            "down" => {
                if let Some(t) = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                {
                    // Without the capture a drag that leaves the canvas ends there: harmless.
                    if t.set_pointer_capture(id).is_err() {
                        web_sys::console::warn_1(&"pointer capture refused".into());
                    }
                }
                self.drag_button = if e.button() == 2 || e.shift_key() {
                    2
                } else {
                    0
                };
                self.pointers.insert(id, (x, y));
                false
            }
            "up" | "cancel" => {
                self.pointers.remove(&id);
                false
            }
            "move" => {
                let mut v = viewer.borrow_mut();
                let Some(&(px, py)) = self.pointers.get(&id) else {
                    // Hover: pick the residue under the pointer.
                    let (Some(canvas), true) = (
                        self.canvas_ref.cast::<HtmlCanvasElement>(),
                        self.display.is_none(),
                    ) else {
                        return false;
                    };
                    let (w, h) = (canvas.client_width() as f32, canvas.client_height() as f32);
                    let coords = self.coords();
                    let picked = scene::pick(coords, &v.camera, w, h, x, y, 10.0);
                    let hover = picked.map(|i| (i, None));
                    if hover == self.hover {
                        return false;
                    }
                    drop(v);
                    self.hover = hover;
                    self.refresh_hover();
                    return true;
                };
                let (dx, dy) = (x - px, y - py);
                if self.pointers.len() >= 2 {
                    // Pinch: zoom by the change of distance to the other pointer, pan by half the move.
                    let other = self
                        .pointers
                        .iter()
                        .find(|(k, _)| **k != id)
                        .map(|(_, p)| *p)
                        .unwrap_or((x, y));
                    let before = ((px - other.0).powi(2) + (py - other.1).powi(2)).sqrt();
                    let after = ((x - other.0).powi(2) + (y - other.1).powi(2)).sqrt();
                    if before > 1.0 && after > 1.0 {
                        v.camera.zoom(before / after);
                    }
                    let h = v.size().1 as f32;
                    v.camera.pan(dx * 0.5, dy * 0.5, h / device_ratio());
                } else if self.drag_button == 2 {
                    let h = v.size().1 as f32;
                    v.camera.pan(dx, dy, h / device_ratio());
                } else {
                    v.camera.orbit(dx, dy);
                }
                self.pointers.insert(id, (x, y));
                v.render();
                false
            }
            "leave" => {
                if self.hover.is_some() && self.pointers.is_empty() {
                    self.hover = None;
                    self.refresh_hover();
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    fn view_status(&self) -> Html {
        let detail = match (&self.status, self.embed_ms, self.first_embedding_ms) {
            (Status::Ready, Some(ms), first) => format!(
                "model {:.0} ms on {}{}",
                ms,
                self.backend_name(),
                first
                    .map(|f| format!(" · file to embeddings {:.2} s", f / 1000.0))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        let progress = self
            .weights_progress
            .map(|p| download_progress(p, "weights-progress"));
        html! {
            <section class="statusbar">
                <span data-testid="status" class={self.status.class()}>{ self.status.text() }</span>
                if let Some(p) = progress { { p } }
                <span class="detail" data-testid="timing">{ detail }</span>
                if let Some(note) = &self.backend_note {
                    <span class="note">{ note.clone() }</span>
                }
                if let Some(e) = &self.option_error {
                    <span class="note warn">{ e.clone() }</span>
                }
            </section>
        }
    }

    fn view_examples(&self, ctx: &Context<Self>) -> Html {
        html! {
            <nav class="examples">
                <span class="label">{ "Examples:" }</span>
                { for EXAMPLES.iter().map(|(file, what)| {
                    let file: &'static str = file;
                    html! {
                        <button class="example" title={*what} onclick={ctx.link().callback(move |_| Msg::Example(file))}>
                            <b>{ file.split('.').next().unwrap_or(file) }</b>
                            <span>{ *what }</span>
                        </button>
                    }
                }) }
            </nav>
        }
    }

    fn view_structure_panel(&self, ctx: &Context<Self>) -> Html {
        let Some(structure) = &self.structure else {
            return html! {
                <section class="panel info">
                    <h2>{ "Structure" }</h2>
                    <p class="muted">{ "No structure yet. Open a PDB or mmCIF file (plain or .gz), drop one on the page, or pick an example above." }</p>
                </section>
            };
        };
        let chains = structure.first_model_chains();
        let onchain = ctx.link().callback(|e: Event| {
            let s: HtmlSelectElement = e.target_unchecked_into();
            Msg::SelectChain(s.value().parse().unwrap_or(0))
        });
        let title = structure.description.title.clone().unwrap_or_default();
        html! {
            <section class="panel info">
                <h2>{ "Structure" }</h2>
                <div class="file">{ self.file_name.clone() }<span class="muted">{ format!(" · {}", structure.format) }</span></div>
                if !title.is_empty() { <div class="title">{ title }</div> }
                <label class="row">{ "Chain " }
                    <select data-testid="chain-select" onchange={onchain}>
                        { for chains.iter().enumerate().map(|(i, c)| html! {
                            <option value={i.to_string()} selected={i == self.chain_index}>{ logic::chain_label(c) }</option>
                        }) }
                    </select>
                </label>
                if let Some(chain) = self.chain() {
                    <div class="sequence" title="sequence (one-letter codes)">{ chain.sequence.clone() }</div>
                }
                if !self.warnings.is_empty() {
                    <ul class="warnings">
                        { for self.warnings.iter().map(|w| html! { <li>{ w.clone() }</li> }) }
                    </ul>
                }
            </section>
        }
    }

    fn view_3d(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let legend = self.chain().map(|c| legend_html(&self.residue_colors(c).1));
        let oncolor = link.callback(|e: Event| {
            let s: HtmlSelectElement = e.target_unchecked_into();
            Msg::SetColor(ColorMode::parse(&s.value()))
        });
        let onarrowlen = link.callback(|e: Event| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::ArrowLength(s.value().parse().unwrap_or(3.0))
        });
        let hover_text = self.hover_text();
        let fps = self.fps.map(|f| format!("{f:.0}")).unwrap_or_default();
        html! {
            <section class="panel view3d">
                <div class="panel-head">
                    <h2>{ "3D view" }</h2>
                    <div class="tools">
                        <select onchange={oncolor} title="colour the trace by">
                            <option value="chain" selected={self.color == ColorMode::Chain}>{ "colour: chain" }</option>
                            <option value="bfactor" selected={self.color == ColorMode::BFactor}>{ "colour: B-factor / pLDDT" }</option>
                            <option value="score" selected={self.color == ColorMode::Score}>{ "colour: score ‖g‖" }</option>
                            <option value="plausibility" selected={self.color == ColorMode::Plausibility}>{ "colour: plausibility (σ = 1 Å)" }</option>
                        </select>
                        <label class="check"><input type="checkbox" checked={self.arrows} onchange={link.callback(|_| Msg::ToggleArrows)} />{ " arrows" }</label>
                        <label class="check" title="length of the longest arrows (Å)">
                            <input type="range" min="0.5" max="10" step="0.5" value={self.arrow_length.to_string()} onchange={onarrowlen} />
                        </label>
                        <button onclick={link.callback(|_| Msg::ResetView)}>{ "Reset view" }</button>
                        <button onclick={link.callback(|_| Msg::ToggleSpin)}>{ if self.spin.is_some() { "Stop spin" } else { "Spin" } }</button>
                        <button onclick={link.callback(|_| Msg::Export(Export::Png))}>{ "PNG" }</button>
                    </div>
                </div>
                <div class="canvas-wrap">
                    <canvas ref={self.canvas_ref.clone()} data-testid="viewer-3d" data-fps={fps.clone()}
                        onpointerdown={link.callback(|e| Msg::Pointer("down", e))}
                        onpointermove={link.callback(|e| Msg::Pointer("move", e))}
                        onpointerup={link.callback(|e| Msg::Pointer("up", e))}
                        onpointercancel={link.callback(|e| Msg::Pointer("cancel", e))}
                        onpointerleave={link.callback(|e| Msg::Pointer("leave", e))}
                        oncontextmenu={Callback::from(|e: MouseEvent| e.prevent_default())}
                        onwheel={link.callback(Msg::Wheel)} />
                    if let Some(e) = &self.viewer_error {
                        <div class="overlay-note">{ format!("The 3D view needs WebGPU: {e}") }</div>
                    } else if self.structure.is_none() {
                        <div class="overlay-note muted">{ "drag to rotate · right-drag or shift-drag to pan · wheel or pinch to zoom" }</div>
                    }
                    if !fps.is_empty() { <div class="fps">{ format!("{fps} fps") }</div> }
                </div>
                <div class="under">
                    { legend.unwrap_or_default() }
                    <span class="hover">{ hover_text }</span>
                </div>
            </section>
        }
    }

    fn hover_text(&self) -> String {
        let (Some(chain), Some((i, j))) = (self.chain(), self.hover) else {
            return String::new();
        };
        let name = |k: usize| {
            format!(
                "{} {}",
                chain
                    .residue_names
                    .get(k)
                    .map(String::as_str)
                    .unwrap_or("?"),
                chain
                    .residue_numbers
                    .get(k)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )
        };
        let norm = |k: usize| {
            self.embedding
                .as_ref()
                .filter(|e| e.length == chain.len())
                .and_then(|e| e.gradient.get(3 * k..3 * k + 3))
                .map(|g| {
                    format!(
                        " · ‖g‖ {:.3}",
                        (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt()
                    )
                })
                .unwrap_or_default()
        };
        match j {
            Some(j) => {
                let d = self
                    .distances
                    .as_ref()
                    .and_then(|d| d.get(i * chain.len() + j).copied())
                    .map(|d| format!(" · {d:.2} Å"))
                    .unwrap_or_default();
                format!("i {i} ({}) · j {j} ({}){d}", name(i), name(j))
            }
            None => format!("residue {i} ({}){}", name(i), norm(i)),
        }
    }

    fn view_map(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let n = self.chain().map(|c| c.len()).unwrap_or(0);
        let onmove = link.callback(move |e: MouseEvent| {
            let Some(t) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            else {
                return Msg::Nothing;
            };
            let r = t.get_bounding_client_rect();
            let fx = (e.client_x() as f64 - r.left()) / r.width().max(1.0);
            let fy = (e.client_y() as f64 - r.top()) / r.height().max(1.0);
            if n == 0 || !(0.0..1.0).contains(&fx) || !(0.0..1.0).contains(&fy) {
                return Msg::HoverMap(None);
            }
            Msg::HoverMap(Some(((fy * n as f64) as usize, (fx * n as f64) as usize)))
        });
        let onzoom = link.callback(|e: InputEvent| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::MapZoom(s.value().parse().unwrap_or(1.0))
        });
        let legend = self
            .distances
            .as_ref()
            .map(|d| legend_html(&logic::distance_legend(logic::distance_scale_max(d))));
        let size = format!("width:{:.0}%", 100.0 * self.map_zoom);
        html! {
            <section class="panel map">
                <div class="panel-head">
                    <h2>{ "C-alpha distance map" }</h2>
                    <div class="tools">
                        <label class="check" title="zoom">{ "zoom " }
                            <input type="range" min="1" max="8" step="0.5" value={self.map_zoom.to_string()} oninput={onzoom} />
                        </label>
                        <button onclick={link.callback(|_| Msg::Export(Export::MapPng))}>{ "PNG" }</button>
                    </div>
                </div>
                <div class="map-scroll">
                    <div class="map-stack" style={size}>
                        <canvas ref={self.map_ref.clone()} data-testid="distance-map" class="map-canvas"
                            onmousemove={onmove} onmouseleave={link.callback(|_| Msg::HoverMap(None))} />
                        <canvas ref={self.overlay_ref.clone()} class="map-overlay" />
                    </div>
                </div>
                <div class="under">
                    { legend.unwrap_or_default() }
                    <span class="hover">{ if self.hover.is_some_and(|h| h.1.is_some()) { self.hover_text() } else { String::new() } }</span>
                </div>
            </section>
        }
    }

    fn view_model(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let levels = self
            .embedder
            .as_ref()
            .map(|e| e.sigmas().len())
            .unwrap_or(61);
        let sigma = |l: usize| {
            self.embedder
                .as_ref()
                .and_then(|e| e.sigmas().get(l).copied())
                .map(|s| format!("{s:.3} Å"))
                .unwrap_or_default()
        };
        let onlevel = link.callback(|e: Event| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::SetLevel(s.value().parse().unwrap_or(0))
        });
        let onrefine_level = link.callback(|e: Event| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::RefineStartLevel(s.value().parse().unwrap_or(40))
        });
        let onsteps = link.callback(|e: Event| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::RefineSteps(s.value().parse().unwrap_or(3))
        });
        let onnoise = link.callback(|e: Event| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::RefineFromNoise(s.checked())
        });
        let level = self.level.min(levels.saturating_sub(1));
        let running = self.refinement.as_ref().is_some_and(|r| r.running);
        let can_refine = self.embedder.is_some()
            && self
                .chain()
                .is_some_and(|c| c.len() >= 2 && c.len() <= self.model_limit())
            && self.embed_running.is_none();
        let refine_text = self.refinement.as_ref().map(|r| {
            format!(
                "{}{} / {} steps · σ {:.3} Å{}",
                if r.from_noise { "from noise · " } else { "" },
                r.done,
                r.total,
                r.sigma,
                r.rmsd
                    .map(|x| format!(" · RMSD to the structure {x:.2} Å"))
                    .unwrap_or_default()
            )
        });
        html! {
            <section class="panel model">
                <h2>{ "Score model" }</h2>
                <label class="row" title="noise level of the score network (0 = largest σ)">
                    { "noise level " }
                    <input type="range" data-testid="noise-level" min="0" max={levels.saturating_sub(1).to_string()}
                        value={level.to_string()} onchange={onlevel} />
                    <span class="value">{ format!("{level} · σ {}", sigma(level)) }</span>
                </label>
                <p class="muted small">{ "Arrows show the predicted score (gradient of the log-density) on each C-alpha: where the model would move the atom. Colour by score ‖g‖ to see which residues it finds implausible." }</p>
                <h3>{ "Refinement (annealed Langevin dynamics)" }</h3>
                <label class="row">{ "start level " }
                    <input type="range" min="0" max={levels.saturating_sub(1).to_string()} value={self.refine_level.to_string()}
                        disabled={self.refine_from_noise} onchange={onrefine_level} />
                    <span class="value">{ format!("{} · σ {}", self.refine_level, sigma(self.refine_level)) }</span>
                </label>
                <label class="row">{ "steps per level " }
                    <input type="number" min="1" max="50" value={self.refine_steps.to_string()} onchange={onsteps} />
                </label>
                <label class="row check"><input type="checkbox" checked={self.refine_from_noise} onchange={onnoise} />{ " from noise (a random cloud, all levels)" }</label>
                <div class="row">
                    if running {
                        <button class="danger" onclick={link.callback(|_| Msg::StopRefine)}>{ "Stop" }</button>
                    } else {
                        <button data-testid="refine" class="primary" disabled={!can_refine} onclick={link.callback(|_| Msg::Refine)}>{ "Refine" }</button>
                    }
                    if self.display.is_some() && !running {
                        <button onclick={link.callback(|_| Msg::ShowStructure)}>{ "Back to the structure" }</button>
                    }
                </div>
                if let Some(t) = refine_text { <div class="refine-status" data-testid="refine-status">{ t }</div> }
            </section>
        }
    }

    fn view_search(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let oninput = link.callback(|e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            Msg::QueryInput(input.value())
        });
        let onsubmit = link.callback(|e: SubmitEvent| {
            e.prevent_default();
            Msg::Search
        });
        html! {
            <>
                <h2>{ "Search the bank by function" }</h2>
                <form class="search row" {onsubmit}>
                    <input type="search" data-testid="search-input" value={self.query.clone()} {oninput}
                        placeholder="e.g. DNA-binding transcription factor activity; serine-type endopeptidase activity" />
                    <button class="primary" type="submit" data-testid="search-button"
                        disabled={self.query.trim().is_empty() || self.text_busy.is_some()}>{ "Search" }</button>
                </form>
                if let Some(b) = &self.text_busy {
                    <p class="muted">{ b.clone() }
                        if let Some(p) = self.search_progress { { download_progress(p, "search-progress") } }
                    </p>
                }
                if let Some(e) = &self.text_error { <p class="error" data-testid="search-error">{ e.clone() }</p> }
                if let Some(h) = &self.text_hits {
                    { hit_table(&h.hits, "search-table") }
                    <p class="muted small">{ format!("“{}”: text encoder (CPU) and head {:.0} ms, search {:.1} ms over {} proteins.", h.query, h.encode_ms, h.search_ms, self.align.as_ref().map(|a| a.bank.entries.len()).unwrap_or(0)) }</p>
                }
            </>
        }
    }

    fn view_similar(&self, ctx: &Context<Self>) -> Html {
        let current = self
            .similar
            .as_ref()
            .filter(|(job, _)| *job == self.chain_job)
            .map(|(_, s)| s.clone());
        let body = match (&self.align_load, current) {
            (AlignLoad::Failed(e), _) => {
                html! { <p class="error" data-testid="similar-error">{ e.clone() }</p> }
            }
            (_, Some(s)) => {
                let bank_size = self
                    .align
                    .as_ref()
                    .map(|a| a.bank.entries.len())
                    .unwrap_or(0);
                html! {
                    <>
                        { hit_table(&s.hits, "similar-table") }
                        <h3>{ format!("Likely function (GO molecular function, from the {TRANSFER_NEIGHBOURS} closest annotated proteins)") }</h3>
                        <ol class="terms" data-testid="likely-function">
                            { for s.terms.iter().map(|(name, share)| html! {
                                <li>{ format!("{name} ") }<span class="muted small">{ format!("{share:.2}") }</span></li>
                            }) }
                        </ol>
                        <p class="muted small">{ format!("Bank of {bank_size} PDB chains (foldspace align, stage 1: sequence + pooled structure embedding). Into the shared space and searched in {:.0} ms on this device (the search itself {:.1} ms). Scores are cosines in the shared space; a function's score is the similarity-weighted share of the {TRANSFER_NEIGHBOURS} closest annotated proteins that carry it. TRAINING.md says how well both rank.", s.ms, s.search_ms) }</p>
                    </>
                }
            }
            (AlignLoad::Loading, None) => {
                html! { <p class="muted">{ "loading the alignment model and the search bank…" }</p> }
            }
            _ if self.similar_running => html! { <p class="muted">{ "searching the bank…" }</p> },
            _ => {
                html! { <p class="muted">{ "Proteins of the bank closest to this chain, and the functions its embedding points to, appear here after the embeddings." }</p> }
            }
        };
        html! {
            <section class="panel similar" data-testid="similar">
                { self.view_search(ctx) }
                <h2>{ "Similar proteins in the bank" }</h2>
                { body }
            </section>
        }
    }

    fn view_embeddings(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let ready = self.embedding.is_some();
        let onnpy = link.callback(|e: Event| {
            let s: HtmlSelectElement = e.target_unchecked_into();
            Msg::NpyName(s.value())
        });
        let shape = |name: &str| {
            self.embedding
                .as_ref()
                .and_then(|e| e.array(name).map(|(s, _)| format!("{s:?}")))
                .unwrap_or_default()
        };
        html! {
            <section class="panel embeddings">
                <h2>{ "Embeddings" }</h2>
                if let Some(e) = &self.embedding {
                    <div class="emb-label">{ format!("protein · {} channels", e.channels) }</div>
                    <canvas ref={self.protein_ref.clone()} class="strip" data-testid="protein-embedding" />
                    <div class="emb-label">{ format!("per residue · {} residues × {} channels", e.length, e.channels) }</div>
                    <canvas ref={self.residue_ref.clone()} class="matrix" data-testid="residue-embedding" />
                } else {
                    <p class="muted">{ "The protein, per-residue and residue-pair embeddings appear here once the model has run." }</p>
                }
                <div class="exports">
                    <button data-testid="export-npz" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Npz))}>{ "All arrays (.npz)" }</button>
                    <button data-testid="export-csv" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Csv))}>{ "Per residue (.csv)" }</button>
                    <button data-testid="export-json" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Json))}>{ "Metadata (.json)" }</button>
                    <span class="npy">
                        <select onchange={onnpy}>
                            { for ARRAY_NAMES.iter().map(|n| html! {
                                <option value={*n} selected={*n == self.npy_name}>{ format!("{n} {}", shape(n)) }</option>
                            }) }
                        </select>
                        <button data-testid="export-npy" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Npy))}>{ ".npy" }</button>
                    </span>
                </div>
            </section>
        }
    }
}

fn device_ratio() -> f32 {
    web_sys::window()
        .map(|w| w.device_pixel_ratio() as f32)
        .unwrap_or(1.0)
        .min(2.0)
}

/// A ranked list of bank proteins: cosine, chain (linked to its RCSB entry), length, GO names.
fn hit_table(hits: &[(BankEntry, f32)], testid: &'static str) -> Html {
    html! {
        <table class="hits" data-testid={testid}>
            <thead><tr><th>{ "#" }</th><th>{ "cosine" }</th><th>{ "chain" }</th><th>{ "length" }</th><th>{ "GO molecular function" }</th></tr></thead>
            <tbody>
                { for hits.iter().enumerate().map(|(i, (e, score))| html! {
                    <tr>
                        <td>{ i + 1 }</td>
                        <td>{ format!("{score:.3}") }</td>
                        <td><a href={format!("https://www.rcsb.org/structure/{}", e.pdb_id)} target="_blank" rel="noopener"
                               title={format!("{} chain {} on RCSB PDB", e.pdb_id, e.chain)}>{ e.name.clone() }</a></td>
                        <td>{ e.length }</td>
                        <td class="go">{ if e.go.is_empty() { "—".to_string() } else { e.go.join("; ") } }</td>
                    </tr>
                }) }
            </tbody>
        </table>
    }
}

/// A download's progress bar with its size in words (`got` of `total` bytes, total unknown:
/// an indeterminate bar).
fn download_progress((got, total): (u64, Option<u64>), testid: &'static str) -> Html {
    let label = match total {
        Some(t) => format!(
            " {} of {}",
            logic::bytes_label(got as usize),
            logic::bytes_label(t as usize)
        ),
        None => format!(" {}", logic::bytes_label(got as usize)),
    };
    match total {
        Some(t) if t > 0 => html! {
            <span class="download"><progress data-testid={testid} max={t.to_string()} value={got.to_string()}></progress>{ label }</span>
        },
        _ => {
            html! { <span class="download"><progress data-testid={testid}></progress>{ label }</span> }
        }
    }
}
