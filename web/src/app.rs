//! The page (a yew component). This file holds what every panel shares — the device, the
//! weights, the structure and chain, the distance map and the model's jobs (embedding,
//! plausibility), the status line — and wires events to the feature modules, each owning its
//! state, messages and view:
//!
//! - [`view3d`]: the 3D view (trace, arrows, colouring, camera, spin);
//! - [`map`]: the distance map; [`residues`]: the plot along the sequence;
//! - [`refine`]: annealed Langevin refinement; [`export`]: the embeddings panel and downloads;
//! - [`search`]: search by function and similar proteins; [`fetch`]: structures by ID;
//! - [`collection`]: many proteins at once; [`inputs`]: the device and weights coming ready,
//!   dropped files and folders, the shipped examples.
//!
//! Heavy lifting is in `foldspace`, [`crate::logic`] and [`crate::scene`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use foldspace::compute::Compute;
use foldspace::score::embed::ChainEmbedding;
use foldspace::score::refine::PLAUSIBILITY_RADIUS;
use foldspace::structure::{Chain, ReadOptions, Structure, read_structure};
use web_sys::{DragEvent, Event, HtmlCanvasElement, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::browser;
use crate::error::{PageError, PageResult};
use crate::logic::{self, PLAUSIBILITY_SIGMA, PageOptions};
use crate::model::{ModelWorker, Network, Runs};
use crate::viewer::Viewer;

mod collection;
mod export;
mod fetch;
mod inputs;
mod map;
mod refine;
mod residues;
mod search;
mod view3d;

use view3d::{ViewMsg, device_ratio, legend_html};

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

/// What the status line says.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Idle(String),
    Busy(String),
    /// The model waits for the user (a long chain on the CPU, or stopped): the status line
    /// offers to run it.
    Held(String),
    Ready,
    Error(String),
}

impl Status {
    fn text(&self) -> String {
        match self {
            Status::Idle(s) | Status::Busy(s) | Status::Held(s) => s.clone(),
            Status::Ready => "ready".into(),
            Status::Error(e) => format!("error: {e}"),
        }
    }
    fn class(&self) -> &'static str {
        match self {
            Status::Idle(_) | Status::Held(_) => "status idle",
            Status::Busy(_) => "status busy",
            Status::Ready => "status ready",
            Status::Error(_) => "status error",
        }
    }
}

pub enum Msg {
    ComputeReady(Compute, Option<String>),
    WeightsProgress(u64, Option<u64>),
    WeightsLoaded(PageResult<Network>, String),
    /// The 3D view ([`view3d`]).
    View(view3d::ViewMsg),
    Files(Vec<web_sys::File>),
    /// Files and folders dropped together: the folders are walked, then all go to [`Msg::Files`].
    DroppedFolders(Vec<web_sys::File>, Vec<web_sys::FileSystemDirectoryEntry>),
    FileRead(String, PageResult<Vec<u8>>),
    Example(&'static str),
    /// Fetching a structure by its identifier ([`fetch`]).
    Fetch(fetch::FetchMsg),
    /// Many proteins at once ([`collection`]).
    Collection(collection::CollectionMsg),
    SelectChain(usize),
    Distances(u64, PageResult<Vec<f32>>),
    Embedded((u64, usize), PageResult<ChainEmbedding>, f64),
    Plausibility(u64, PageResult<Vec<f32>>),
    /// Search by function and similar proteins ([`search`]).
    Search(search::SearchMsg),
    SetLevel(usize),
    /// The noise-level slider is being dragged to this level (the model runs on release).
    DragLevel(usize),
    MapZoom(f32),
    HoverMap(Option<(usize, usize)>),
    /// A residue hovered in the plot along the sequence.
    HoverResidue(Option<usize>),
    /// Refinement ([`refine`]).
    Refine(refine::RefineMsg),
    NpyName(String),
    Export(export::Export),
    DragOver(bool),
    /// Something failed: the status line says what.
    Error(PageError),
    /// A second of a model run has passed (the status line counts them).
    ClockTick,
    /// Run the model on the chain on screen although it is long for this backend, or again
    /// after a stop.
    RunModel,
    /// Stop the model's runs for the chain on screen (where they run in the worker).
    StopModel,
    Nothing,
}

pub struct App {
    /// The "fetch by ID" box.
    fetch: fetch::FetchState,
    /// Many proteins at once.
    collection: collection::CollectionState,
    /// The distance map's zoom and canvases.
    map: map::MapState,
    /// The embeddings panel: its canvases and the array to export as `.npy`.
    exports: export::ExportState,
    /// The 3D view: the viewer, colouring, arrows, camera gestures and spin.
    view3d: view3d::ViewState,
    /// Search by function, similar proteins and the alignment model they need.
    search: search::SearchState,
    options: PageOptions,
    option_error: Option<String>,
    compute: Option<Compute>,
    backend_note: Option<String>,
    network: Option<Network>,
    /// While the model runs for the chain on screen: when it started, and the timer that
    /// redraws the status line each second (the page answers meanwhile: `crate::model`).
    model_clock: Option<(f64, gloo::timers::callback::Interval)>,
    /// Where the noise-level slider is while dragged, before [`Msg::SetLevel`].
    level_drag: Option<usize>,
    /// Where the score networks run on the CPU backend (`crate::model`).
    worker: Option<Rc<ModelWorker>>,
    weights_label: String,
    weights_progress: Option<(u64, Option<u64>)>,
    weights_error: Option<String>,
    file_name: String,
    structure: Option<Rc<Structure>>,
    warnings: Vec<String>,
    chain_index: usize,
    chain_job: u64,
    /// Counts the pairs of chain and score network: a model run's answer for an older one is
    /// stale (the key of embeddings, plausibility and similar proteins).
    model_job: u64,
    /// The model's runs under way for the chain on screen: the embedding, and the rest
    /// (plausibility, similar proteins). In the model worker they are dropped when they go
    /// stale or the user stops them, so that the next run need not wait ([`model::Runs`]).
    embed_runs: Runs,
    chain_runs: Runs,
    /// The model job for which the user asked the model to run on a chain longer than the
    /// backend runs unasked ([`logic::MAX_MODEL_RESIDUES_CPU`]).
    asked: Option<u64>,
    /// The model job whose runs the user stopped.
    stopped: Option<u64>,
    /// The length and time (ms) of the last embedding on the CPU, to say how long a longer
    /// chain would take.
    cpu_pace: Option<(usize, f64)>,
    distances: Option<Rc<Vec<f32>>>,
    distances_running: bool,
    /// Counts new distance maps and embeddings, so that heatmaps are painted once each.
    distances_gen: u64,
    embedding_gen: u64,
    painted: Cell<(u64, u64)>,
    embedding: Option<Rc<ChainEmbedding>>,
    /// The key (model job, level) of the embedding under way.
    embed_running: Option<(u64, usize)>,
    /// ‖g‖ at σ ≈ 0.56 Å averaged over 15 Å for the plausibility colouring, computed on demand
    /// (model job, values).
    plausibility: Option<(u64, Rc<Vec<f32>>)>,
    /// The model job of the plausibility scoring under way.
    plausibility_running: Option<u64>,
    embed_ms: Option<f64>,
    file_started_ms: f64,
    first_embedding_ms: Option<f64>,
    level: usize,
    status: Status,
    hover: Option<(usize, Option<usize>)>,
    display: Option<Vec<[f32; 3]>>,
    /// Refinement: its settings and the run in progress or finished.
    refine: refine::RefineState,
    dragging: bool,
    /// The plot along the sequence ([`residues`]).
    residue_plot: NodeRef,
}

/// The device the model runs on for `choice`, with a note for the page when it is not a
/// hardware GPU. A software WebGPU adapter (SwiftShader where the browser finds no usable GPU)
/// is passed over for the CPU unless WebGPU was asked for: in the page it ran the model about 11×
/// slower than the CPU backend on the same machine (BENCHMARKS.md, "The page").
async fn choose_compute(choice: logic::BackendChoice) -> (Compute, Option<String>) {
    use logic::BackendChoice;
    if choice == BackendChoice::Cpu {
        return (
            Compute::cpu(),
            Some("the CPU backend was chosen (?backend=cpu)".into()),
        );
    }
    if !browser::has_webgpu() {
        return (
            Compute::cpu(),
            Some(
                "this browser has no WebGPU: the model runs on the CPU (slower than a GPU)".into(),
            ),
        );
    }
    match Compute::wgpu_async().await {
        Ok(c) if c.is_software_gpu() && choice == BackendChoice::Auto => (
            Compute::cpu(),
            Some(
                "WebGPU runs in software here (the browser's fallback adapter: no usable GPU), far \
                 slower than the CPU: the model runs on the CPU (?backend=webgpu uses WebGPU \
                 anyway)"
                    .into(),
            ),
        ),
        Ok(c) if c.is_software_gpu() => (
            c,
            Some(
                "WebGPU runs in software here (?backend=webgpu): expect minutes per protein".into(),
            ),
        ),
        Ok(c) => (c, None),
        Err(e) => (
            Compute::cpu(),
            Some(format!(
                "WebGPU could not start ({e}): the model runs on the CPU"
            )),
        ),
    }
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
    /// Report a failure: the one place errors are shown is the status line. A run the page
    /// dropped is no failure.
    fn fail(&mut self, e: PageError) {
        if !e.is_cancelled() {
            self.status = Status::Error(e.to_string());
        }
    }

    /// Another chain or network: answers for the old pair are stale, and the runs for it that
    /// are under way in the worker are dropped.
    fn new_model_job(&mut self) {
        self.model_job += 1;
        self.drop_runs();
    }

    /// Drop the model's runs for the chain on screen. In the worker they end now, so the next
    /// run need not wait for them; on the page's thread (WebGPU) they go on unanswered, and the
    /// next waits as before.
    fn drop_runs(&mut self) {
        std::mem::take(&mut self.embed_runs).cancel();
        std::mem::take(&mut self.chain_runs).cancel();
        if self.worker.is_some() {
            self.embed_running = None;
            self.plausibility_running = None;
            self.search.similar_running = None;
        }
    }

    /// Whether the model is running for the chain on screen where it can be stopped (in the
    /// worker).
    fn stoppable(&self) -> bool {
        self.worker.is_some()
            && self.network.as_ref().is_some_and(Network::in_worker)
            && (self.embed_running.is_some()
                || self.plausibility_running.is_some()
                || self.search.similar_running.is_some())
    }

    fn chain(&self) -> Option<&Chain> {
        self.structure
            .as_ref()
            .and_then(|s| s.first_model_chains().get(self.chain_index))
    }

    /// The longest chain the model runs on for the chain on screen: [`Self::model_limit`], or
    /// [`logic::MAX_MODEL_RESIDUES`] once the user asked for it.
    fn chain_limit(&self) -> usize {
        if self.asked == Some(self.model_job) {
            logic::MAX_MODEL_RESIDUES
        } else {
            self.model_limit()
        }
    }

    /// The longest chain the model runs on unasked with the current backend (and the limit of
    /// refinement and of the many-files table).
    fn model_limit(&self) -> usize {
        match &self.compute {
            Some(c) if c.is_gpu() => logic::MAX_MODEL_RESIDUES,
            _ => logic::MAX_MODEL_RESIDUES_CPU,
        }
    }

    /// σ of noise level `l` in words ("0.123 Å"; empty before the weights load).
    fn sigma_label(&self, l: usize) -> String {
        self.network
            .as_ref()
            .and_then(|n| n.sigmas().get(l).copied())
            .map(|s| format!("{s:.3} Å"))
            .unwrap_or_default()
    }

    fn backend_name(&self) -> &'static str {
        match &self.compute {
            Some(c) if c.is_gpu() => "WebGPU",
            Some(_) if self.network.as_ref().is_some_and(Network::in_worker) => {
                "the CPU (in a worker)"
            }
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
                    .map_err(PageError::from);
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
        if self.refine.running() {
            return;
        }
        if self.stopped == Some(self.model_job) {
            self.status = Status::Held("the model was stopped".into());
            return;
        }
        let key = (self.model_job, self.level);
        if self.embed_running.is_some() {
            return;
        }
        if self.embedding.is_some() {
            self.kick_plausibility(ctx);
            self.kick_similar(ctx);
            return;
        }
        let Some(network) = self.network.clone() else {
            if self.compute.is_some() {
                self.status = Status::Busy("loading the model weights…".into());
            }
            return;
        };
        if chain.len() > logic::MAX_MODEL_RESIDUES {
            let why = format!(
                "chain {} has {} residues; the model runs on chains of up to {} residues (the map and 3D view are shown)",
                chain.id,
                chain.len(),
                logic::MAX_MODEL_RESIDUES,
            );
            self.fail(PageError::refused(why));
            return;
        }
        if chain.len() > self.chain_limit() {
            self.status = Status::Held(logic::long_chain_words(
                &chain.id,
                chain.len(),
                self.model_limit(),
                self.cpu_pace,
            ));
            return;
        }
        if chain.len() < 2 {
            self.fail(PageError::refused(format!(
                "chain {} has {} residue(s); the model needs at least 2",
                chain.id,
                chain.len()
            )));
            return;
        }
        self.embed_running = Some(key);
        let network = network.within(&self.embed_runs);
        self.status = Status::Busy(format!(
            "running the model on {} (σ = {:.3} Å)…",
            self.backend_name(),
            network
                .sigmas()
                .get(self.level)
                .copied()
                .unwrap_or(f32::NAN)
        ));
        ctx.link().send_future(async move {
            // Let the status paint first (where the network runs on this thread).
            browser::yield_now().await;
            let t0 = browser::now_ms();
            let result = network.embed(&chain, key.1).await;
            Msg::Embedded(key, result, browser::now_ms() - t0)
        });
    }

    /// After the embedding: ‖g‖ at [`PLAUSIBILITY_SIGMA`], averaged over [`PLAUSIBILITY_RADIUS`],
    /// for the plot and the colouring.
    fn kick_plausibility(&mut self, ctx: &Context<Self>) {
        // Always after the embedding: the plot along the sequence shows it, and the colouring
        // by plausibility uses it.
        if self.plausibility_running.is_some()
            || self
                .plausibility
                .as_ref()
                .is_some_and(|(job, _)| *job == self.model_job)
        {
            return;
        }
        let (Some(network), Some(chain)) = (self.network.clone(), self.chain().cloned()) else {
            return;
        };
        if chain.len() < 2 || chain.len() > self.chain_limit() {
            return;
        }
        let network = network.within(&self.chain_runs);
        let sigmas = network.sigmas();
        let Some(level) = (0..sigmas.len()).min_by(|&a, &b| {
            (sigmas[a].ln() - PLAUSIBILITY_SIGMA.ln())
                .abs()
                .total_cmp(&(sigmas[b].ln() - PLAUSIBILITY_SIGMA.ln()).abs())
        }) else {
            return;
        };
        self.plausibility_running = Some(self.model_job);
        self.status = Status::Busy(format!(
            "scoring plausibility on {} (σ = {:.2} Å)…",
            self.backend_name(),
            sigmas[level]
        ));
        let job = self.model_job;
        ctx.link().send_future(async move {
            browser::yield_now().await;
            let result = network
                .plausibility(&chain, level, Some(PLAUSIBILITY_RADIUS))
                .await;
            Msg::Plausibility(job, result)
        });
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
                self.fail(PageError::from(e).during(name));
            }
        }
    }

    fn new_chain(&mut self, ctx: &Context<Self>) {
        self.stop_refinement();
        self.chain_job += 1;
        self.new_model_job();
        self.distances = None;
        self.embedding = None;
        self.display = None;
        self.refine.run = None;
        self.hover = None;
        self.first_embedding_ms = None;
        self.refresh_scene(true);
        self.kick(ctx);
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
        // The compute device: WebGPU on a hardware adapter, else the CPU (BackendChoice).
        let choice = options.backend;
        ctx.link().send_future(async move {
            let (compute, note) = choose_compute(choice).await;
            Msg::ComputeReady(compute, note)
        });
        let level = options.level.unwrap_or(usize::MAX);
        Self {
            fetch: fetch::FetchState::default(),
            collection: collection::CollectionState::default(),
            search: search::SearchState::default(),
            view3d: view3d::ViewState::default(),
            map: map::MapState::default(),
            exports: export::ExportState::default(),
            weights_label: String::new(),
            options,
            option_error,
            compute: None,
            backend_note: None,
            network: None,
            model_clock: None,
            level_drag: None,
            worker: None,
            weights_progress: None,
            weights_error: None,
            file_name: String::new(),
            structure: None,
            warnings: Vec::new(),
            chain_index: 0,
            chain_job: 0,
            model_job: 0,
            embed_runs: Runs::default(),
            chain_runs: Runs::default(),
            asked: None,
            stopped: None,
            cpu_pace: None,
            distances: None,
            distances_running: false,
            distances_gen: 0,
            embedding_gen: 0,
            painted: Cell::new((0, 0)),
            embedding: None,
            embed_running: None,
            plausibility: None,
            plausibility_running: None,
            embed_ms: None,
            file_started_ms: 0.0,
            first_embedding_ms: None,
            level,
            status: Status::Idle("drop a PDB or mmCIF file, or pick an example".into()),
            hover: None,
            display: None,
            refine: refine::RefineState::default(),
            dragging: false,
            residue_plot: NodeRef::default(),
        }
    }

    fn rendered(&mut self, ctx: &Context<Self>, first: bool) {
        if first && let Some(canvas) = self.view3d.canvas.cast::<HtmlCanvasElement>() {
            let renderer = self.options.renderer;
            ctx.link().send_future(async move {
                match Viewer::new(canvas, renderer).await {
                    Ok(v) => Msg::View(ViewMsg::Ready(Ok(Rc::new(RefCell::new(v))))),
                    Err(e) => Msg::View(ViewMsg::Ready(Err(e.to_string()))),
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
        let redraw = self.handle(ctx, msg);
        self.sync_model_clock(ctx);
        redraw
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        self.view_page(ctx)
    }
}

impl App {
    /// Start the status line's clock when a model run for the chain begins, stop it when none
    /// is left.
    fn sync_model_clock(&mut self, ctx: &Context<Self>) {
        let running = self.embed_running.is_some() || self.plausibility_running.is_some();
        match (running, self.model_clock.is_some()) {
            (true, false) => {
                let link = ctx.link().clone();
                let tick = gloo::timers::callback::Interval::new(1000, move || {
                    link.send_message(Msg::ClockTick)
                });
                self.model_clock = Some((browser::now_ms(), tick));
            }
            (false, true) => self.model_clock = None,
            _ => {}
        }
    }

    /// Seconds the current model run has taken, for the status line ("" before the first).
    fn model_seconds(&self) -> String {
        match &self.model_clock {
            Some((start, _)) if matches!(self.status, Status::Busy(_)) => {
                let s = ((browser::now_ms() - start) / 1000.0).floor();
                if s >= 1.0 {
                    format!(" {s:.0} s")
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        }
    }

    fn handle(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Nothing => return false,
            Msg::ClockTick => return matches!(self.status, Status::Busy(_)),
            Msg::RunModel => {
                self.asked = Some(self.model_job);
                self.stopped = None;
                // What runs next says so; a run that does not (similar proteins, in its panel)
                // must not leave the held words behind.
                self.status = Status::Ready;
                self.kick(ctx);
            }
            Msg::StopModel => {
                self.drop_runs();
                self.stopped = Some(self.model_job);
                self.kick(ctx);
            }
            Msg::Error(e) => self.fail(e),
            Msg::ComputeReady(compute, note) => self.compute_ready(ctx, compute, note),
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
            Msg::WeightsLoaded(result, label) => self.weights_loaded(ctx, result, label),
            Msg::View(msg) => return self.update_view(ctx, msg),
            Msg::DroppedFolders(files, folders) => self.dropped_folders(ctx, files, folders),
            Msg::Files(files) => self.open_files(ctx, files),
            Msg::Example(file) => self.open_example(ctx, file),
            Msg::Fetch(msg) => return self.update_fetch(ctx, msg),
            Msg::Collection(msg) => return self.update_collection(ctx, msg),
            Msg::FileRead(name, bytes) => {
                self.fetch.fetching = None;
                match bytes {
                    Ok(bytes) => self.set_structure(ctx, name, &bytes),
                    Err(e) => self.fail(e),
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
                        Err(e) => self.fail(e.during("distance map")),
                    }
                }
                self.kick(ctx);
            }
            Msg::Embedded(key, result, ms) => self.embedded(ctx, key, result, ms),
            Msg::Search(msg) => return self.update_search(ctx, msg),
            Msg::Plausibility(job, result) => {
                if self.plausibility_running == Some(job) {
                    self.plausibility_running = None;
                }
                if job == self.model_job {
                    match result {
                        Ok(v) => {
                            self.plausibility = Some((job, Rc::new(v)));
                            self.status = Status::Ready;
                            self.refresh_scene(false);
                        }
                        Err(e) => self.fail(e.during("plausibility scoring failed")),
                    }
                }
                self.kick(ctx);
            }
            Msg::DragLevel(level) => self.level_drag = Some(level),
            Msg::SetLevel(level) => {
                self.level_drag = None;
                if level != self.level {
                    // The embedding at the old level is not wanted any more.
                    std::mem::take(&mut self.embed_runs).cancel();
                    if self.worker.is_some() {
                        self.embed_running = None;
                    }
                    self.stopped = None;
                    self.level = level;
                    self.embedding = None;
                    self.kick(ctx);
                    self.refresh_scene(false);
                }
            }
            Msg::MapZoom(z) => self.map.zoom = z.clamp(1.0, 8.0),
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
            Msg::Refine(msg) => return self.update_refine(ctx, msg),
            Msg::NpyName(n) => self.exports.npy_name = n,
            Msg::Export(what) => {
                if let Err(e) = self.export(what) {
                    self.fail(e.during("export failed"));
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

    fn view_page(&self, ctx: &Context<Self>) -> Html {
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
            match e.data_transfer().map(|d| browser::dropped(&d)) {
                Some(d) if !d.folders.is_empty() => Msg::DroppedFolders(d.files, d.folders),
                Some(d) => Msg::Files(d.files),
                None => Msg::Files(Vec::new()),
            }
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
                { self.view_status(ctx) }
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
    fn view_status(&self, ctx: &Context<Self>) -> Html {
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
                <span data-testid="status" class={self.status.class()}>{ self.status.text() }{ self.model_seconds() }</span>
                if matches!(self.status, Status::Held(_)) {
                    <button data-testid="run-model" onclick={ctx.link().callback(|_| Msg::RunModel)}>{ "Run the model" }</button>
                } else if self.stoppable() {
                    <button data-testid="stop-model" title="Stop the model's runs for this chain" onclick={ctx.link().callback(|_| Msg::StopModel)}>{ "Stop" }</button>
                }
                if let Some(p) = progress { { p } }
                <span class="detail" data-testid="timing">{ detail }</span>
                if let Some(note) = &self.backend_note {
                    <span class="note" data-testid="backend-note">{ note.clone() }</span>
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

    fn view_model(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let levels = self
            .network
            .as_ref()
            .map(|n| n.sigmas().len())
            .unwrap_or(61);
        // The slider's position follows each input event (`browser::input_value`: a re-render
        // mid-drag, such as the status line's clock, would otherwise put the thumb back); the
        // model runs on release.
        let ondrag =
            link.batch_callback(|e: InputEvent| browser::input_value(&e).map(Msg::DragLevel));
        let onlevel = link.batch_callback(|e: Event| browser::input_value(&e).map(Msg::SetLevel));
        let level = self
            .level_drag
            .unwrap_or(self.level)
            .min(levels.saturating_sub(1));
        html! {
            <section class="panel model">
                <h2>{ "Score model" }</h2>
                <label class="row" title="noise level of the score network (0 = largest σ)">
                    { "noise level " }
                    <input type="range" data-testid="noise-level" min="0" max={levels.saturating_sub(1).to_string()}
                        value={level.to_string()} oninput={ondrag} onchange={onlevel} />
                    <span class="value">{ format!("{level} · σ {}", self.sigma_label(level)) }</span>
                </label>
                <p class="muted small">{ "Arrows show the predicted score (gradient of the log-density) on each C-alpha: where the model would move the atom. Colour by score ‖g‖ to see which residues it finds implausible." }</p>
                { self.view_refine(ctx, levels) }
            </section>
        }
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
