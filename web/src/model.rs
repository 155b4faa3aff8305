//! Where the page's score networks run. On WebGPU, on the page's own thread: the GPU does the
//! work and the page goes on drawing between its awaits. On the CPU backend, in a Web Worker
//! (`worker.js`, the same wasm): a chain of 126 residues takes 3 s there and one of 295 16 s
//! (BENCHMARKS.md, "The page"), during which the page's thread would otherwise answer nothing,
//! neither a click nor a redraw.
//!
//! Both places run the same [`execute`] on the same [`Job`]s; a [`Network`] says where its
//! network lives, and the page asks it the same way in both cases.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::rc::Rc;

use foldspace::align::structure::{StructureWindows, structure_features};
use foldspace::compute::Compute;
use foldspace::score::embed::{ChainEmbedding, EmbedError, Embedder};
use foldspace::score::refine::{Langevin, Schedule, Step, residue_plausibility};
use foldspace::structure::Chain;
use futures_channel::oneshot;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::error::{PageError, PageResult};

/// The script of the model worker, beside `index.html`.
const WORKER_SCRIPT: &str = "worker.js";

/// What a score network is asked to do: the `foldspace` pipelines the page runs on one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Job {
    /// A chain's score map, gradient and embeddings at one level ([`Embedder::embed`]).
    Embed { chain: Chain, level: usize },
    /// Per-residue ‖g‖ at one level, averaged over a radius ([`residue_plausibility`]).
    Plausibility {
        ca: Vec<[f32; 3]>,
        sequence: String,
        level: usize,
        radius: Option<f32>,
    },
    /// The alignment model's structure-tower input ([`structure_features`]).
    StructureFeatures {
        chain: Chain,
        level: usize,
        windows: StructureWindows,
    },
    /// Annealed Langevin refinement ([`Langevin`]); each step is reported as
    /// [`Answer::Step`] (at most every 60 ms) before the final [`Answer::Refined`].
    Refine {
        sequence: String,
        start: Vec<[f32; 3]>,
        schedule: Schedule,
        seed: u64,
    },
}

/// What a network says back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    /// To [`Job::Embed`].
    Embedding(ChainEmbedding),
    /// To [`Job::Plausibility`] and [`Job::StructureFeatures`].
    Values(Vec<f32>),
    /// A refinement's coordinates after a step (not the last answer).
    Step(Vec<[f32; 3]>, Step),
    /// A refinement's last coordinates (finished or stopped).
    Refined(Vec<[f32; 3]>),
    /// To a load: network number `.1` is ready.
    Loaded(NetworkInfo, u32),
    /// The job failed, in words.
    Failed(String),
}

/// What the page needs to know of a loaded network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// σ of each noise level (Å), decreasing.
    pub sigmas: Vec<f32>,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
    /// The description `foldspace export` wrote into the file.
    pub description: Option<String>,
    /// The device, as [`Compute::describe`] says it (provenance of exports).
    pub backend: String,
}

impl NetworkInfo {
    fn of(embedder: &Embedder, place: &str) -> Self {
        Self {
            sigmas: embedder.sigmas().to_vec(),
            weights_sha256: embedder.weights_sha256.clone(),
            description: embedder.description.clone(),
            backend: format!("{}{place}", embedder.compute.describe()),
        }
    }
}

/// Run a job on a network: the one implementation, on the page's thread or in the worker.
/// `report` gets each refinement step; `stop` ends a refinement after its current step.
pub async fn execute(
    network: &Embedder,
    job: Job,
    stop: &Cell<bool>,
    report: &dyn Fn(Answer),
) -> Answer {
    match run(network, job, stop, report).await {
        Ok(answer) => answer,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

async fn run(
    network: &Embedder,
    job: Job,
    stop: &Cell<bool>,
    report: &dyn Fn(Answer),
) -> Result<Answer, EmbedError> {
    Ok(match job {
        Job::Embed { chain, level } => Answer::Embedding(network.embed(&chain, level).await?),
        Job::Plausibility {
            ca,
            sequence,
            level,
            radius,
        } => Answer::Values(residue_plausibility(network, &ca, &sequence, level, radius).await?),
        Job::StructureFeatures {
            chain,
            level,
            windows,
        } => Answer::Values(structure_features(network, &chain, level, windows).await?),
        Job::Refine {
            sequence,
            start,
            schedule,
            seed,
        } => {
            let mut refinement = Langevin::new(network, &sequence, start, schedule, seed)?;
            let mut last_report = f64::NEG_INFINITY;
            while !stop.get() {
                let Some(step) = refinement.step().await? else {
                    break;
                };
                let now = js_sys::Date::now();
                if now - last_report > 60.0 || step.done == step.total {
                    last_report = now;
                    report(Answer::Step(refinement.coords().to_vec(), step));
                }
                // Let a stop (and, on the page's thread, input and drawing) in.
                yield_to_events().await;
            }
            Answer::Refined(refinement.coords().to_vec())
        }
    })
}

#[wasm_bindgen]
extern "C" {
    /// The global `setTimeout`: on a window and in a worker alike.
    #[wasm_bindgen(catch, js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> Result<JsValue, JsValue>;
}

/// Let the event loop run (a timer of 0 ms) before going on; at once where no timer can be set.
pub async fn yield_to_events() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if set_timeout(&resolve, 0).is_err() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// From the page to the worker.
#[derive(Serialize, Deserialize)]
enum ToWorker {
    /// Load a network from a safetensors file's bytes as number `network` (the page numbers
    /// them); answered [`Answer::Loaded`].
    Load {
        id: u32,
        network: u32,
        bytes: Vec<u8>,
    },
    /// Run a job on network `network`.
    Run { id: u32, network: u32, job: Job },
    /// Stop job `id` (a refinement) after its current step.
    Stop { id: u32 },
    /// The page no longer uses network `network` (other weights were loaded): free its memory.
    Free { network: u32 },
}

/// From the worker to the page.
#[derive(Serialize, Deserialize)]
enum FromWorker {
    /// The worker listens.
    Ready,
    /// An answer to request `id`; `last`: no more will come for it.
    Answer { id: u32, answer: Answer, last: bool },
    /// The worker panicked (a bug) and answers nothing more.
    Crashed(String),
}

fn encode_bytes<T: Serialize>(message: &T) -> Result<Rc<[u8]>, String> {
    bincode::serialize(message)
        .map(Rc::from)
        .map_err(|e| format!("could not encode a message to or from the model worker: {e}"))
}

fn encode<T: Serialize>(message: &T) -> Result<js_sys::Uint8Array, String> {
    encode_bytes(message).map(|bytes| js_sys::Uint8Array::from(&bytes[..]))
}

fn decode<T: for<'de> Deserialize<'de>>(data: &JsValue) -> Result<T, String> {
    let bytes = data
        .dyn_ref::<js_sys::Uint8Array>()
        .ok_or("a message from the model worker is not bytes")?
        .to_vec();
    bincode::deserialize(&bytes)
        .map_err(|e| format!("unreadable message to or from the model worker: {e}"))
}

/// Post bytes, handing their buffer over rather than copying it.
fn post(
    target: &impl Fn(&JsValue, &JsValue) -> Result<(), JsValue>,
    bytes: &js_sys::Uint8Array,
) -> Result<(), String> {
    target(bytes, &js_sys::Array::of1(&bytes.buffer())).map_err(|e| {
        format!(
            "could not post a message to or from the model worker: {}",
            e.as_string().unwrap_or_else(|| format!("{e:?}"))
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The worker's side.

/// The worker's state: its networks (by the page's numbers) and the stop flags of running jobs.
struct WorkerHost {
    scope: web_sys::DedicatedWorkerGlobalScope,
    /// Removed once the page lets go of a network ([`ToWorker::Free`]).
    networks: RefCell<HashMap<u32, Rc<Embedder>>>,
    stops: RefCell<HashMap<u32, Rc<Cell<bool>>>>,
}

impl WorkerHost {
    fn try_send(&self, message: &FromWorker) -> Result<(), String> {
        encode(message)
            .and_then(|bytes| post(&|m, t| self.scope.post_message_with_transfer(m, t), &bytes))
    }

    fn send(&self, message: &FromWorker) {
        if let Err(e) = self.try_send(message) {
            web_sys::console::error_1(&e.into());
        }
    }

    /// Send an answer; a last answer that cannot be sent (too large to copy, say) is replaced
    /// by its failure, so that the page never waits for it.
    fn answer(&self, id: u32, answer: Answer, last: bool) {
        if let Err(e) = self.try_send(&FromWorker::Answer { id, answer, last }) {
            web_sys::console::error_1(&e.clone().into());
            if last {
                self.send(&FromWorker::Answer {
                    id,
                    answer: Answer::Failed(e),
                    last,
                });
            }
        }
    }

    fn receive(self: &Rc<Self>, event: web_sys::MessageEvent) {
        let message = match decode::<ToWorker>(&event.data()) {
            Ok(m) => m,
            Err(e) => {
                web_sys::console::error_1(&e.into());
                return;
            }
        };
        match message {
            ToWorker::Load { id, network, bytes } => {
                let answer = match Embedder::from_bytes(&bytes, Compute::cpu()) {
                    Ok(loaded) => {
                        let info = NetworkInfo::of(&loaded, " in a web worker");
                        self.networks.borrow_mut().insert(network, Rc::new(loaded));
                        Answer::Loaded(info, network)
                    }
                    Err(e) => Answer::Failed(e.to_string()),
                };
                self.answer(id, answer, true);
            }
            ToWorker::Run { id, network, job } => {
                let Some(network) = self.networks.borrow().get(&network).cloned() else {
                    self.answer(
                        id,
                        Answer::Failed(format!("no network {network} in the model worker")),
                        true,
                    );
                    return;
                };
                let stop = Rc::new(Cell::new(false));
                self.stops.borrow_mut().insert(id, stop.clone());
                let host = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let report = |answer| host.answer(id, answer, false);
                    let answer = execute(&network, job, &stop, &report).await;
                    host.stops.borrow_mut().remove(&id);
                    host.answer(id, answer, true);
                });
            }
            ToWorker::Stop { id } => {
                if let Some(stop) = self.stops.borrow().get(&id) {
                    stop.set(true);
                }
            }
            // Jobs still running on it keep their own reference until they end.
            ToWorker::Free { network } => {
                self.networks.borrow_mut().remove(&network);
            }
        }
    }
}

/// The model worker's entry point (`worker.js` calls it once the wasm is loaded): answer the
/// page's requests until the page goes. A panic is reported to the page before the instance
/// stops.
#[wasm_bindgen]
pub fn model_worker() -> Result<(), JsValue> {
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().dyn_into()?;
    let host = Rc::new(WorkerHost {
        scope,
        networks: RefCell::new(HashMap::new()),
        stops: RefCell::new(HashMap::new()),
    });
    let on_panic = host.scope.clone();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.to_string();
        web_sys::console::error_1(&format!("the foldspace model worker stopped: {message}").into());
        if let Ok(bytes) = encode(&FromWorker::Crashed(message)) {
            let _ = on_panic.post_message(&bytes);
        }
    }));
    let receiver = host.clone();
    let onmessage =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event| receiver.receive(event));
    host.scope
        .set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    // The worker lives as long as the page: so does its handler.
    onmessage.forget();
    host.send(&FromWorker::Ready);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The page's side.

type Report = Rc<dyn Fn(Answer)>;

/// A request in flight: where its steps and its last answer go.
struct Pending {
    report: Option<Report>,
    done: oneshot::Sender<Answer>,
}

/// The page's side of the model worker. Runs go to the worker one at a time, so that a run not
/// begun can be dropped ([`ModelWorker::cancel`]); one begun is dropped by restarting the
/// worker, which gets every network back from the load messages kept here.
#[derive(Default)]
struct Client {
    /// The worker now (a new one after each restart); `None` once the page lets go of it.
    worker: Option<web_sys::Worker>,
    ready: bool,
    /// Messages other than runs (loads, stops, frees), posted once the worker is ready.
    queue: Vec<Rc<[u8]>>,
    /// Runs not yet posted, in order.
    runs: VecDeque<(u32, Rc<[u8]>)>,
    /// The run the worker is on.
    running: Option<u32>,
    /// Queued runs (refinements) to stop as soon as they are posted.
    stop_when_sent: HashSet<u32>,
    /// The load message of each network the page holds, by number.
    loads: BTreeMap<u32, Rc<[u8]>>,
    next_network: u32,
    /// Why the worker answers no more (it failed to start or crashed).
    broken: Option<String>,
    next_id: u32,
    pending: HashMap<u32, Pending>,
}

impl Client {
    /// The worker answers no more: every request in flight, and every later one, fails with the
    /// first reason given (a panic's message comes before the error event that follows it).
    fn fail_all(&mut self, why: &str) {
        let why = self.broken.get_or_insert_with(|| why.to_string()).clone();
        self.runs.clear();
        self.stop_when_sent.clear();
        self.running = None;
        for (_, pending) in self.pending.drain() {
            let _ = pending.done.send(Answer::Failed(why.clone()));
        }
    }

    /// Post a message now, or once the worker is ready.
    fn post(&mut self, bytes: Rc<[u8]>) -> Result<(), String> {
        match &self.worker {
            Some(worker) if self.ready => post_bytes(worker, &bytes),
            _ => {
                self.queue.push(bytes);
                Ok(())
            }
        }
    }

    /// Give the worker the next run, if it is ready and on none.
    fn pump(&mut self) {
        while self.ready && self.running.is_none() {
            let Some(worker) = &self.worker else {
                return;
            };
            let Some((id, bytes)) = self.runs.pop_front() else {
                return;
            };
            match post_bytes(worker, &bytes) {
                Ok(()) => {
                    self.running = Some(id);
                    // A stop asked while it waited: right behind it, so the worker has its
                    // flag when the stop comes.
                    if self.stop_when_sent.remove(&id) {
                        let stop = encode_bytes(&ToWorker::Stop { id })
                            .and_then(|stop| post_bytes(worker, &stop));
                        if let Err(e) = stop {
                            web_sys::console::warn_1(&e.into());
                        }
                    }
                }
                Err(e) => {
                    if let Some(p) = self.pending.remove(&id) {
                        let _ = p.done.send(Answer::Failed(e));
                    }
                }
            }
        }
    }
}

/// Post a message's bytes, in a buffer of their own handed over rather than copied again.
fn post_bytes(worker: &web_sys::Worker, bytes: &[u8]) -> Result<(), String> {
    post(
        &|m, t| worker.post_message_with_transfer(m, t),
        &js_sys::Uint8Array::from(bytes),
    )
}

type OnMessage = Closure<dyn Fn(web_sys::MessageEvent)>;
type OnError = Closure<dyn Fn(web_sys::Event)>;

/// The model worker, seen from the page: requests go in, answers come back by id.
pub struct ModelWorker {
    client: Rc<RefCell<Client>>,
    onmessage: OnMessage,
    onerror: OnError,
}

/// Whether an event came from the worker the client has now (not one it restarted away from).
fn from_current(client: &RefCell<Client>, event: &web_sys::Event) -> bool {
    let target = event.target().map(JsValue::from);
    match (&client.borrow().worker, target) {
        (Some(worker), Some(target)) => js_sys::Object::is(worker, &target),
        _ => false,
    }
}

impl ModelWorker {
    /// Start the worker (a module worker running [`WORKER_SCRIPT`] on the page's own compiled
    /// module). Requests made before it is ready wait for it.
    pub fn spawn() -> PageResult<Rc<Self>> {
        let client = Rc::new(RefCell::new(Client::default()));
        let onmessage = {
            let client = client.clone();
            OnMessage::new(move |event: web_sys::MessageEvent| {
                if from_current(&client, &event) {
                    receive(&client, &event.data())
                }
            })
        };
        let onerror = {
            let client = client.clone();
            OnError::new(move |event: web_sys::Event| {
                event.prevent_default();
                if !from_current(&client, &event) {
                    return;
                }
                let why = format!("the model worker failed: {}", error_words(&event));
                web_sys::console::error_1(&why.clone().into());
                client.borrow_mut().fail_all(&why);
            })
        };
        let worker = start_worker(&onmessage, &onerror).map_err(PageError::refused)?;
        client.borrow_mut().worker = Some(worker);
        Ok(Rc::new(Self {
            client,
            onmessage,
            onerror,
        }))
    }

    /// Send a request; its last answer comes through the receiver, steps before it to `report`.
    fn request(
        &self,
        make: impl FnOnce(u32) -> ToWorker,
        report: Option<Report>,
    ) -> (u32, oneshot::Receiver<Answer>) {
        let (done, answer) = oneshot::channel();
        let mut client = self.client.borrow_mut();
        let id = client.next_id;
        client.next_id = client.next_id.wrapping_add(1);
        if let Some(why) = &client.broken {
            let _ = done.send(Answer::Failed(why.clone()));
            return (id, answer);
        }
        let message = make(id);
        let sent = encode_bytes(&message).and_then(|bytes| {
            client.pending.insert(id, Pending { report, done });
            match message {
                ToWorker::Run { .. } => {
                    client.runs.push_back((id, bytes));
                    client.pump();
                    Ok(())
                }
                ToWorker::Load { network, .. } => {
                    client.loads.insert(network, bytes.clone());
                    client.post(bytes)
                }
                _ => client.post(bytes),
            }
        });
        if let Err(e) = sent
            && let Some(p) = client.pending.remove(&id)
        {
            let _ = p.done.send(Answer::Failed(e));
        }
        (id, answer)
    }

    /// Post a message that gets no answer.
    fn tell(&self, message: &ToWorker) {
        let posted = encode_bytes(message).and_then(|b| self.client.borrow_mut().post(b));
        if let Err(e) = posted {
            web_sys::console::warn_1(&e.into());
        }
    }

    fn stop(&self, id: u32) {
        {
            let mut client = self.client.borrow_mut();
            if client.runs.iter().any(|(r, _)| *r == id) {
                client.stop_when_sent.insert(id);
                return;
            }
        }
        self.tell(&ToWorker::Stop { id });
    }

    /// Drop request `id`: its answer never comes (its receiver is cancelled). A run not begun
    /// is taken off the queue; the run the worker is on ends with the worker, which is replaced
    /// by a new one with the same networks.
    fn cancel(&self, id: u32) {
        let running = {
            let mut client = self.client.borrow_mut();
            if client.pending.remove(&id).is_none() {
                return;
            }
            client.runs.retain(|(r, _)| *r != id);
            client.stop_when_sent.remove(&id);
            client.running == Some(id)
        };
        if running {
            self.restart();
        }
    }

    /// End the worker and start another, which gets the networks loaded again and then the runs
    /// that are waiting.
    fn restart(&self) {
        let mut client = self.client.borrow_mut();
        if let Some(old) = client.worker.take() {
            old.terminate();
        }
        client.ready = false;
        client.running = None;
        client.queue = client.loads.values().cloned().collect();
        match start_worker(&self.onmessage, &self.onerror) {
            Ok(worker) => client.worker = Some(worker),
            Err(e) => client.fail_all(&e),
        }
    }
}

/// A new worker on the page's compiled module, answering through `onmessage` and `onerror`.
fn start_worker(onmessage: &OnMessage, onerror: &OnError) -> Result<web_sys::Worker, String> {
    let words = |e: JsValue| e.as_string().unwrap_or_else(|| format!("{e:?}"));
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name("foldspace model");
    let worker = web_sys::Worker::new_with_options(WORKER_SCRIPT, &options)
        .map_err(|e| format!("could not start the model worker: {}", words(e)))?;
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    // The page's compiled module, which the worker instantiates (`worker.js`): the wasm is
    // neither downloaded nor compiled a second time.
    worker.post_message(&wasm_bindgen::module()).map_err(|e| {
        worker.terminate();
        format!(
            "could not hand the page's code to the model worker: {}",
            words(e)
        )
    })?;
    Ok(worker)
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        if let Some(worker) = self.client.borrow_mut().worker.take() {
            worker.terminate();
        }
    }
}

/// An error event's message. A script that could not be loaded fires a plain `Event`, with no
/// message at all.
fn error_words(event: &web_sys::Event) -> String {
    let message = event
        .dyn_ref::<web_sys::ErrorEvent>()
        .map(|e| e.message())
        .unwrap_or_default();
    if message.is_empty() {
        format!(
            "{WORKER_SCRIPT} could not be loaded or run (no message; a browser without module workers, or a site missing {WORKER_SCRIPT})"
        )
    } else {
        message
    }
}

fn receive(client: &RefCell<Client>, data: &JsValue) {
    let message = match decode::<FromWorker>(data) {
        Ok(m) => m,
        Err(e) => {
            web_sys::console::error_1(&e.into());
            return;
        }
    };
    match message {
        FromWorker::Ready => {
            let mut c = client.borrow_mut();
            c.ready = true;
            for bytes in std::mem::take(&mut c.queue) {
                if let Err(e) = c.post(bytes) {
                    c.fail_all(&e);
                    return;
                }
            }
            c.pump();
        }
        FromWorker::Answer { id, answer, last } => {
            if last {
                let pending = {
                    let mut c = client.borrow_mut();
                    if c.running == Some(id) {
                        c.running = None;
                        c.pump();
                    }
                    c.pending.remove(&id)
                };
                if let Some(p) = pending {
                    let _ = p.done.send(answer);
                }
            } else {
                let report = client
                    .borrow()
                    .pending
                    .get(&id)
                    .and_then(|p| p.report.clone());
                if let Some(report) = report {
                    report(answer);
                }
            }
        }
        FromWorker::Crashed(message) => client.borrow_mut().fail_all(&format!(
            "the model worker stopped on an internal error: {message}"
        )),
    }
}

/// Where a network lives.
#[derive(Clone)]
enum Place {
    Here(Rc<Embedder>),
    Worker(Rc<InWorker>),
}

/// A network in the model worker: its number there, freed there when the page lets go of it.
struct InWorker {
    worker: Rc<ModelWorker>,
    index: u32,
}

impl Drop for InWorker {
    fn drop(&mut self) {
        self.worker.client.borrow_mut().loads.remove(&self.index);
        self.worker.tell(&ToWorker::Free {
            network: self.index,
        });
    }
}

/// A loaded score network, on the page's thread or in the model worker.
#[derive(Clone)]
pub struct Network {
    info: Rc<NetworkInfo>,
    place: Place,
    /// Why it runs on the page's thread although a worker was given (the worker failed).
    fallback: Option<Rc<str>>,
    /// Where its runs in the worker are noted, to be dropped together ([`Network::within`]).
    runs: Option<Runs>,
}

/// Model runs that are dropped together: those for the chain on screen, say, when another is
/// chosen. In the model worker a run not begun is dropped and one begun ends with the worker
/// (`ModelWorker::cancel`): what comes next need not wait for it. Runs on the page's thread
/// (WebGPU) are not dropped: they go on to their end, unanswered.
#[derive(Clone, Default)]
pub struct Runs(Rc<RunsInner>);

#[derive(Default)]
struct RunsInner {
    /// Once cancelled, a run started within these ends at once, unsent (a future that began
    /// before the cancel may start its run after it).
    cancelled: Cell<bool>,
    runs: RefCell<Vec<RunRef>>,
}

/// A run in the model worker: the worker, and the run's request id.
type RunRef = (Rc<ModelWorker>, u32);

impl Runs {
    /// Drop every run noted here that has not answered yet, and any started within these
    /// later; their futures end with [`PageError::Cancelled`].
    pub fn cancel(&self) {
        self.0.cancelled.set(true);
        let runs = std::mem::take(&mut *self.0.runs.borrow_mut());
        // The queued ones first, so that a restart does not hand them to the new worker.
        let (running, queued): (Vec<_>, Vec<_>) = runs
            .into_iter()
            .partition(|(worker, id)| worker.client.borrow().running == Some(*id));
        for (worker, id) in queued.into_iter().chain(running) {
            worker.cancel(id);
        }
    }
}

/// Ends a refinement after its current step.
#[derive(Clone)]
pub struct Stopper {
    flag: Rc<Cell<bool>>,
    worker: Option<(Rc<ModelWorker>, u32)>,
}

impl Stopper {
    pub fn stop(&self) {
        self.flag.set(true);
        if let Some((worker, id)) = &self.worker {
            worker.stop(*id);
        }
    }
}

impl Network {
    /// Load a network from a safetensors file's bytes: in `worker` when given, else on this
    /// thread on `compute`.
    pub async fn load(
        bytes: Vec<u8>,
        compute: &Compute,
        worker: Option<&Rc<ModelWorker>>,
    ) -> PageResult<Self> {
        let Some(worker) = worker else {
            return Self::load_here(&bytes, compute, None);
        };
        let network = {
            let mut client = worker.client.borrow_mut();
            client.next_network += 1;
            client.next_network - 1
        };
        // Kept for the page's thread, should the worker turn out not to work.
        let (_, answer) = worker.request(
            |id| ToWorker::Load {
                id,
                network,
                bytes: bytes.clone(),
            },
            None,
        );
        match answer.await {
            Ok(Answer::Loaded(info, index)) => Ok(Self {
                info: Rc::new(info),
                place: Place::Worker(Rc::new(InWorker {
                    worker: worker.clone(),
                    index,
                })),
                fallback: None,
                runs: None,
            }),
            other => {
                let broken = {
                    let mut client = worker.client.borrow_mut();
                    client.loads.remove(&network);
                    client.broken.clone()
                };
                match broken {
                    Some(why) => Self::load_here(&bytes, compute, Some(why.into())),
                    None => Err(unexpected(other)),
                }
            }
        }
    }

    fn load_here(bytes: &[u8], compute: &Compute, fallback: Option<Rc<str>>) -> PageResult<Self> {
        let network = Embedder::from_bytes(bytes, compute.clone())?;
        Ok(Self {
            info: Rc::new(NetworkInfo::of(&network, "")),
            place: Place::Here(Rc::new(network)),
            fallback,
            runs: None,
        })
    }

    /// The same network, its runs in the worker noted in `runs` (to be dropped together).
    pub fn within(&self, runs: &Runs) -> Self {
        Self {
            runs: Some(runs.clone()),
            ..self.clone()
        }
    }

    /// Why this network runs on the page's thread although the worker was asked (it could not
    /// start or stopped), if so.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    pub fn sigmas(&self) -> &[f32] {
        &self.info.sigmas
    }

    /// The level used by default for embeddings: the smallest σ.
    pub fn default_level(&self) -> usize {
        self.info.sigmas.len().saturating_sub(1)
    }

    pub fn weights_sha256(&self) -> &str {
        &self.info.weights_sha256
    }

    pub fn description(&self) -> Option<&str> {
        self.info.description.as_deref()
    }

    /// Whether the network runs in the model worker.
    pub fn in_worker(&self) -> bool {
        matches!(self.place, Place::Worker(..))
    }

    /// The device and place, for exports' provenance ("cpu (…) in a web worker").
    pub fn backend(&self) -> &str {
        &self.info.backend
    }

    /// Run a job where the network lives; steps go to `report`.
    fn start(
        &self,
        job: Job,
        report: Option<Report>,
    ) -> (Stopper, impl Future<Output = PageResult<Answer>> + 'static) {
        let flag = Rc::new(Cell::new(false));
        let (worker, answer): (
            _,
            std::pin::Pin<Box<dyn Future<Output = PageResult<Answer>>>>,
        ) = match &self.place {
            Place::Here(network) => {
                let network = network.clone();
                let flag = flag.clone();
                (
                    None,
                    Box::pin(async move {
                        let report = report.unwrap_or_else(|| Rc::new(|_| {}));
                        Ok(execute(&network, job, &flag, &*report).await)
                    }),
                )
            }
            Place::Worker(_) if self.runs.as_ref().is_some_and(|r| r.0.cancelled.get()) => {
                (None, Box::pin(async { Err(PageError::Cancelled) }))
            }
            Place::Worker(network) => {
                let (id, answer) = network.worker.request(
                    |id| ToWorker::Run {
                        id,
                        network: network.index,
                        job,
                    },
                    report,
                );
                if let Some(runs) = &self.runs {
                    runs.0.runs.borrow_mut().push((network.worker.clone(), id));
                }
                // The network stays loaded in the worker until its run answers (a run may wait
                // in the queue while the page moves on to other weights).
                let keep = network.clone();
                (
                    Some((network.worker.clone(), id)),
                    Box::pin(async move {
                        let answer = answer.await;
                        drop(keep);
                        answer.map_err(|e| unexpected(Err(e)))
                    }),
                )
            }
        };
        (Stopper { flag, worker }, answer)
    }

    async fn ask(&self, job: Job) -> PageResult<Answer> {
        self.start(job, None).1.await
    }

    /// A job answered with [`Answer::Values`].
    async fn values(&self, job: Job) -> PageResult<Vec<f32>> {
        match self.ask(job).await? {
            Answer::Values(v) => Ok(v),
            other => Err(unexpected(Ok(other))),
        }
    }

    /// [`Job::Embed`].
    pub async fn embed(&self, chain: &Chain, level: usize) -> PageResult<ChainEmbedding> {
        let job = Job::Embed {
            chain: chain.clone(),
            level,
        };
        match self.ask(job).await? {
            Answer::Embedding(e) => Ok(e),
            other => Err(unexpected(Ok(other))),
        }
    }

    /// [`Job::Plausibility`].
    pub async fn plausibility(
        &self,
        chain: &Chain,
        level: usize,
        radius: Option<f32>,
    ) -> PageResult<Vec<f32>> {
        self.values(Job::Plausibility {
            ca: chain.ca.clone(),
            sequence: chain.sequence.clone(),
            level,
            radius,
        })
        .await
    }

    /// [`Job::StructureFeatures`].
    pub async fn structure_features(
        &self,
        chain: &Chain,
        level: usize,
        windows: StructureWindows,
    ) -> PageResult<Vec<f32>> {
        self.values(Job::StructureFeatures {
            chain: chain.clone(),
            level,
            windows,
        })
        .await
    }

    /// [`Job::Refine`]: the stopper, and the run, whose steps go to `on_step` and which ends
    /// with the last coordinates.
    pub fn refine(
        &self,
        sequence: String,
        start: Vec<[f32; 3]>,
        schedule: Schedule,
        seed: u64,
        on_step: impl Fn(Vec<[f32; 3]>, Step) + 'static,
    ) -> (
        Stopper,
        impl Future<Output = PageResult<Vec<[f32; 3]>>> + 'static,
    ) {
        let report: Report = Rc::new(move |answer| {
            if let Answer::Step(coords, step) = answer {
                on_step(coords, step);
            }
        });
        let job = Job::Refine {
            sequence,
            start,
            schedule,
            seed,
        };
        let (stopper, answer) = self.start(job, Some(report));
        (stopper, async move {
            match answer.await? {
                Answer::Refined(coords) => Ok(coords),
                other => Err(unexpected(Ok(other))),
            }
        })
    }
}

/// A failure or an answer of the wrong kind, as the page's error.
fn unexpected(answer: Result<Answer, oneshot::Canceled>) -> PageError {
    match answer {
        Ok(Answer::Failed(why)) => PageError::Network(why),
        Ok(other) => PageError::Network(format!(
            "the score network answered {} to a request for something else",
            match other {
                Answer::Embedding(_) => "an embedding",
                Answer::Values(_) => "values",
                Answer::Step(..) => "a step",
                Answer::Refined(_) => "coordinates",
                Answer::Loaded(..) => "a load",
                Answer::Failed(_) => "a failure",
            }
        )),
        Err(_) => PageError::Cancelled,
    }
}
