//! What the page is given: the device, the model weights (shipped, from the address or
//! dropped), dropped files and folders, and the shipped examples.

use std::rc::Rc;

use foldspace::compute::Compute;
use foldspace::score::embed::ChainEmbedding;
use yew::prelude::*;

use super::{App, EXAMPLES, Msg, Status, fetch};
use crate::browser;
use crate::error::{PageError, PageResult};
use crate::loading::{DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_ORIGIN, load_weights, weights_label};
use crate::logic;
use crate::model::{ModelWorker, Network};

impl App {
    /// The device is ready: load the weights, and open what the page's address asks for.
    pub(super) fn compute_ready(
        &mut self,
        ctx: &Context<Self>,
        compute: Compute,
        note: Option<String>,
    ) {
        self.compute = Some(compute.clone());
        self.backend_note = note;
        // On the CPU backend the score networks run in a worker, so that the page answers while
        // they run; where no worker can start, on the page's thread, said so.
        if !compute.is_gpu() && self.worker.is_none() {
            match ModelWorker::spawn() {
                Ok(worker) => self.worker = Some(worker),
                Err(e) => self.note_thread_fallback(&e.to_string()),
            }
        }
        let (url, label) = match &self.options.weights {
            Some(w) => (w.clone(), format!("{w} (from ?weights=)")),
            None => (
                DEFAULT_WEIGHTS.to_string(),
                DEFAULT_WEIGHTS_ORIGIN.to_string(),
            ),
        };
        let link = ctx.link().clone();
        let worker = self.worker.clone();
        ctx.link().send_future(async move {
            let result = load_weights(&url, compute, worker, move |got, total| {
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

    /// Say (beside the backend) that the model runs on the page's thread, and why.
    fn note_thread_fallback(&mut self, why: &str) {
        let note =
            format!("the model runs on the page's own thread, which pauses while it runs ({why})");
        self.backend_note = Some(match self.backend_note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note,
        });
    }

    /// Weights arrived (the shipped ones, `?weights=`, or a dropped file), or failed to.
    pub(super) fn weights_loaded(
        &mut self,
        ctx: &Context<Self>,
        result: PageResult<Network>,
        label: String,
    ) {
        self.weights_progress = None;
        match result {
            Ok(network) => {
                if let Some(why) = network.fallback() {
                    // The worker could not start: the networks run here from now on.
                    self.worker = None;
                    self.note_thread_fallback(why);
                }
                let levels = network.sigmas().len();
                if self.level >= levels {
                    self.level = self
                        .options
                        .level
                        .unwrap_or(levels.saturating_sub(1))
                        .min(levels.saturating_sub(1));
                }
                self.weights_label = weights_label(&label, &network);
                self.weights_error = None;
                // A refinement runs on the old network: it ends with it.
                self.stop_refinement();
                self.refine.run = None;
                self.display = None;
                self.network = Some(network);
                self.embedding = None;
                self.new_model_job();
                self.kick(ctx);
                self.collection_next(ctx);
            }
            Err(e) => {
                let e = e.during("the model weights failed to load");
                // Kept: the status line says it again after the distance map.
                self.weights_error = Some(e.to_string());
                self.fail(e);
            }
        }
    }

    /// Files and folders dropped together: walk the folders, then open everything.
    pub(super) fn dropped_folders(
        &mut self,
        ctx: &Context<Self>,
        files: Vec<web_sys::File>,
        folders: Vec<web_sys::FileSystemDirectoryEntry>,
    ) {
        self.dragging = false;
        self.status = Status::Busy("reading the dropped folder…".into());
        ctx.link().send_future(async move {
            match browser::walk_folders(folders).await {
                Ok(found) if found.is_empty() && files.is_empty() => {
                    Msg::Error(PageError::refused("the dropped folder holds no files"))
                }
                Ok(found) => Msg::Files(files.into_iter().chain(found).collect()),
                Err(e) => Msg::Error(e.into()),
            }
        });
    }

    /// Dropped or chosen files: weights load, several structures open as a collection, one
    /// structure is read (within the page's size limit).
    pub(super) fn open_files(&mut self, ctx: &Context<Self>, files: Vec<web_sys::File>) {
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
                let worker = self.worker.clone();
                ctx.link().send_future(async move {
                    let result = match browser::read_file(&file).await {
                        Ok(bytes) => Network::load(bytes, &compute, worker.as_ref()).await,
                        Err(e) => Err(e.into()),
                    };
                    Msg::WeightsLoaded(result, format!("{name} (dropped on the page)"))
                });
                continue;
            }
            browser::set_query(&logic::with_id(&browser::query(), None));
            if file.size() > logic::MAX_FILE_BYTES as f64 {
                self.fail(PageError::refused(format!(
                    "{name} is {}, above the page's limit of {}",
                    logic::bytes_label(file.size() as usize),
                    logic::bytes_label(logic::MAX_FILE_BYTES)
                )));
                continue;
            }
            self.status = Status::Busy(format!("reading {name}…"));
            ctx.link().send_future(async move {
                let bytes = browser::read_file(&file).await.map_err(PageError::from);
                Msg::FileRead(name, bytes)
            });
        }
    }

    /// Fetch one of the shipped examples.
    pub(super) fn open_example(&mut self, ctx: &Context<Self>, file: &'static str) {
        browser::set_query(&logic::with_id(&browser::query(), None));
        self.status = Status::Busy(format!("fetching the example {file}…"));
        ctx.link().send_future(async move {
            let url = format!("assets/examples/{file}");
            let bytes = match browser::fetch_bytes(&url, |_, _| {}).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => Err(PageError::Missing(url)),
                Err(e) => Err(e.into()),
            };
            Msg::FileRead(file.to_string(), bytes)
        });
    }

    /// An embedding job finished (kept only if it is still the current chain and level).
    pub(super) fn embedded(
        &mut self,
        ctx: &Context<Self>,
        key: (u64, usize),
        result: PageResult<ChainEmbedding>,
        ms: f64,
    ) {
        if self.embed_running == Some(key) {
            self.embed_running = None;
        }
        if key == (self.model_job, self.level) {
            match result {
                Ok(e) => {
                    if self.compute.as_ref().is_some_and(|c| !c.is_gpu()) {
                        self.cpu_pace = Some((e.length, ms));
                    }
                    self.embedding = Some(Rc::new(e));
                    self.embedding_gen += 1;
                    self.embed_ms = Some(ms);
                    if self.first_embedding_ms.is_none() {
                        self.first_embedding_ms = Some(browser::now_ms() - self.file_started_ms);
                    }
                    self.status = Status::Ready;
                    self.refresh_scene(false);
                }
                Err(e) => self.fail(e.during("the model failed")),
            }
        }
        self.kick(ctx);
    }
}
