//! Many proteins at once: several files dropped (or chosen, or a folder) give a table — file,
//! chain, length, nearest bank protein, likely function — with a progress bar over the files,
//! a 2-D map of their shared-space vectors together with the bank (principal components,
//! computed here; hover names a point, a click opens that protein), and exports of the table
//! (CSV) and of every embedding (one `.npz`). The pipeline is `foldspace::align::collection`.

use std::rc::Rc;

use foldspace::align::collection::{self, CollectionMap, ProteinRow};
use foldspace::structure::{ReadOptions, read_structure};
use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use super::search::AlignLoad;
use super::{App, Msg, Status};
use crate::browser;
use crate::error::{PageError, PageResult};
use crate::loading::{AlignAssets, protein_vector};
use crate::logic;
use crate::model::{Network, Runs};

/// Side of the map's canvas, in CSS pixels.
const MAP_PX: f64 = 420.0;

/// One summarised file: its row and its bytes (to open it in the main view).
struct Done {
    row: ProteinRow,
    bytes: Rc<Vec<u8>>,
}

/// The collection's state.
#[derive(Default)]
pub(crate) struct CollectionState {
    /// Counts collections, so that answers for an older one are dropped.
    job: u64,
    /// Files still to summarise, in order.
    queue: Vec<web_sys::File>,
    total: usize,
    /// Files that are not structure files (a folder's other files), left out.
    skipped: usize,
    running: bool,
    rows: Vec<Done>,
    failed: Vec<(String, String)>,
    /// The map, once every file is done (needs the alignment model and the bank).
    map: Option<Rc<CollectionMap>>,
    map_note: Option<String>,
    /// The point under the pointer: a row, or a bank protein.
    hover: Option<Point>,
    pub(crate) canvas: NodeRef,
}

/// A point of the map.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    Row(usize),
    Bank(usize),
}

/// The collection's messages.
pub enum CollectionMsg {
    /// One file summarised (job, file name, result).
    Row(u64, String, PageResult<(ProteinRow, Rc<Vec<u8>>)>),
    /// The map of a finished collection.
    Map(u64, Option<Rc<CollectionMap>>),
    /// Pointer over the map (CSS pixels in the canvas), or off it.
    Hover(Option<(f64, f64)>),
    /// Click on the map.
    Click(f64, f64),
    /// Open row `i` in the main view.
    Open(usize),
    /// Download the table or the archive.
    ExportCsv,
    ExportNpz,
}

/// Read one file and summarise its default chain: the score model's protein embedding at
/// `level` and, with the alignment model, the nearest bank protein and likely functions.
async fn summarise(
    file: web_sys::File,
    network: Network,
    assets: Option<Rc<AlignAssets>>,
    level: usize,
    limit: usize,
) -> PageResult<(ProteinRow, Rc<Vec<u8>>)> {
    let name = file.name();
    if file.size() > logic::MAX_FILE_BYTES as f64 {
        return Err(PageError::refused(format!(
            "{} — above the page's limit of {}",
            logic::bytes_label(file.size() as usize),
            logic::bytes_label(logic::MAX_FILE_BYTES)
        )));
    }
    let bytes = browser::read_file(&file).await?;
    let options = ReadOptions {
        max_bytes: logic::MAX_FILE_BYTES,
        ..ReadOptions::default()
    };
    let structure = read_structure(&bytes, Some(&name), &options)?.structure;
    let chains = structure.first_model_chains();
    let chain = logic::default_chain(&structure)
        .and_then(|i| chains.get(i))
        .ok_or_else(|| PageError::refused("no protein chain with C-alpha atoms"))?;
    if chain.len() > limit {
        let alone = if chain.len() <= logic::MAX_MODEL_RESIDUES {
            " for the table (opened alone, the model runs on it when asked)"
        } else {
            ""
        };
        return Err(PageError::refused(format!(
            "chain {} has {} residues, above this device's limit of {limit}{alone}",
            chain.id,
            chain.len()
        )));
    }
    browser::yield_now().await;
    let embedding = network.embed(chain, level).await?;
    let (mut nearest, mut functions, mut shared) = (None, Vec::new(), None);
    if let Some(assets) = assets {
        let v = protein_vector(&assets, &network, chain, &Runs::default()).await?;
        nearest = assets
            .search
            .search(&v, 1)?
            .first()
            .map(|(e, c)| ((*e).clone(), *c));
        functions = assets.search.likely_functions(&v, 3)?;
        shared = Some(v);
    }
    Ok((
        ProteinRow {
            file: name,
            chain: chain.id.clone(),
            length: chain.len(),
            noise_level: embedding.noise_level,
            sigma: embedding.sigma,
            weights_sha256: network.weights_sha256().to_string(),
            nearest,
            functions,
            protein: embedding.protein,
            shared,
        },
        Rc::new(bytes),
    ))
}

impl App {
    /// Start a collection over `files` (replacing any earlier one).
    pub(super) fn start_collection(&mut self, ctx: &Context<Self>, files: Vec<web_sys::File>) {
        let (files, other): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| logic::is_structure_name(&f.name()));
        let c = &mut self.collection;
        c.job += 1;
        c.skipped = other.len();
        c.total = files.len();
        c.queue = files;
        c.queue.reverse();
        c.running = false;
        c.rows.clear();
        c.failed.clear();
        c.map = None;
        c.map_note = None;
        c.hover = None;
        if c.total == 0 {
            let why = format!(
                "none of the {} files is a structure file (.pdb, .ent, .cif, .mmcif, plain or .gz)",
                c.skipped
            );
            self.fail(PageError::refused(why));
            return;
        }
        self.status = Status::Busy(format!("summarising {} files…", c.total));
        self.collection_next(ctx);
    }

    /// Summarise the next file when the model (and the alignment model, unless it failed to
    /// load) is ready; called again when they arrive.
    pub(super) fn collection_next(&mut self, ctx: &Context<Self>) {
        if self.collection.running || self.collection.total == 0 {
            return;
        }
        let (Some(compute), Some(network)) = (self.compute.clone(), self.network.clone()) else {
            return;
        };
        let assets = self.ensure_align(ctx, compute);
        if assets.is_none() && matches!(self.search.align_load, AlignLoad::Loading) {
            return;
        }
        let job = self.collection.job;
        let Some(file) = self.collection.queue.pop() else {
            if self.collection.map.is_none() && self.collection.map_note.is_none() {
                self.finish_collection(ctx, assets);
            }
            return;
        };
        self.collection.running = true;
        let (level, limit) = (self.level, self.model_limit());
        let name = file.name();
        ctx.link().send_future(async move {
            let result = summarise(file, network, assets, level, limit).await;
            Msg::Collection(CollectionMsg::Row(job, name, result))
        });
    }

    /// Every file is done: the map with the bank.
    fn finish_collection(&mut self, ctx: &Context<Self>, assets: Option<Rc<AlignAssets>>) {
        let c = &mut self.collection;
        self.status = Status::Idle(format!(
            "{} of {} files summarised{}",
            c.rows.len(),
            c.total,
            if c.failed.is_empty() {
                String::new()
            } else {
                format!("; {} could not be read (see the table)", c.failed.len())
            }
        ));
        let Some(assets) = assets else {
            c.map_note = Some(match &self.search.align_load {
                AlignLoad::Failed(e) => format!("no map: {e}"),
                _ => "no map: the alignment model is not loaded".into(),
            });
            return;
        };
        let vectors: Vec<Vec<f32>> = c.rows.iter().filter_map(|d| d.row.shared.clone()).collect();
        if vectors.is_empty() {
            c.map_note = Some("no map: no file could be summarised".into());
            return;
        }
        c.map_note = Some("placing the proteins on the map…".into());
        let job = c.job;
        ctx.link().send_future(async move {
            browser::yield_now().await;
            let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
            Msg::Collection(CollectionMsg::Map(
                job,
                collection::map(&assets.search.bank, &refs).map(Rc::new),
            ))
        });
    }

    pub(super) fn update_collection(&mut self, ctx: &Context<Self>, msg: CollectionMsg) -> bool {
        match msg {
            CollectionMsg::Row(job, name, result) => {
                if job != self.collection.job {
                    return false;
                }
                self.collection.running = false;
                match result {
                    Ok((row, bytes)) => self.collection.rows.push(Done { row, bytes }),
                    Err(e) => self.collection.failed.push((name, e.to_string())),
                }
                let c = &self.collection;
                self.status = Status::Busy(format!(
                    "summarising files… {} of {}",
                    c.rows.len() + c.failed.len(),
                    c.total
                ));
                self.collection_next(ctx);
            }
            CollectionMsg::Map(job, map) => {
                if job != self.collection.job {
                    return false;
                }
                self.collection.map_note = match &map {
                    Some(m) => Some(format!(
                        "Principal components of the shared space (fitted on up to {} bank proteins and these files): {:.0} % and {:.0} % of the variance. Grey: the bank's {} proteins.",
                        collection::MAP_FIT_ROWS,
                        100.0 * m.explained[0],
                        100.0 * m.explained[1],
                        m.bank.len()
                    )),
                    None => Some("no map: the vectors could not be placed".into()),
                };
                self.collection.map = map;
                self.paint_collection_map();
            }
            CollectionMsg::Hover(at) => {
                let hover = at.and_then(|(x, y)| self.collection_point(x, y));
                if hover == self.collection.hover {
                    return false;
                }
                self.collection.hover = hover;
                self.paint_collection_map();
            }
            CollectionMsg::Click(x, y) => {
                if let Some(Point::Row(i)) = self.collection_point(x, y) {
                    return self.update_collection(ctx, CollectionMsg::Open(i));
                }
                return false;
            }
            CollectionMsg::Open(i) => {
                if let Some(d) = self.collection.rows.get(i) {
                    let (name, bytes) = (d.row.file.clone(), d.bytes.clone());
                    self.set_structure(ctx, name, &bytes);
                }
            }
            CollectionMsg::ExportCsv => {
                let rows: Vec<ProteinRow> =
                    self.collection.rows.iter().map(|d| d.row.clone()).collect();
                let text = collection::csv(&rows, &self.collection.failed);
                if let Err(e) = browser::download("proteins.csv", text.as_bytes(), "text/csv") {
                    self.fail(e.into());
                }
            }
            CollectionMsg::ExportNpz => {
                let rows: Vec<ProteinRow> =
                    self.collection.rows.iter().map(|d| d.row.clone()).collect();
                let map = self
                    .collection
                    .map
                    .as_ref()
                    .filter(|m| m.proteins.len() == rows.len())
                    .map(|m| m.proteins.as_slice());
                let backend = self
                    .network
                    .as_ref()
                    .map(|n| n.backend().to_string())
                    .unwrap_or_default();
                let result = collection::npz(&rows, map, &backend)
                    .map_err(PageError::from)
                    .and_then(|bytes| {
                        browser::download("proteins.npz", &bytes, "application/zip")
                            .map_err(PageError::from)
                    });
                if let Err(e) = result {
                    self.fail(e);
                }
            }
        }
        true
    }

    /// The map's transform: (scale, offset x, offset y) from map units to canvas pixels,
    /// fitting every point with a margin.
    fn collection_frame(map: &CollectionMap) -> (f64, f64, f64) {
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for p in map.bank.iter().chain(&map.proteins) {
            for k in 0..2 {
                lo[k] = lo[k].min(f64::from(p[k]));
                hi[k] = hi[k].max(f64::from(p[k]));
            }
        }
        let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-9);
        let margin = 14.0;
        let scale = (MAP_PX - 2.0 * margin) / span;
        (
            scale,
            margin - lo[0] * scale + (MAP_PX - 2.0 * margin - (hi[0] - lo[0]) * scale) / 2.0,
            margin - lo[1] * scale + (MAP_PX - 2.0 * margin - (hi[1] - lo[1]) * scale) / 2.0,
        )
    }

    /// The point nearest to (x, y) in canvas pixels: a file's point within 10 px first, else a
    /// bank protein within 4 px.
    fn collection_point(&self, x: f64, y: f64) -> Option<Point> {
        let map = self.collection.map.as_ref()?;
        let (s, ox, oy) = Self::collection_frame(map);
        let d2 = |p: &[f32; 2]| {
            let (px, py) = (f64::from(p[0]) * s + ox, f64::from(p[1]) * s + oy);
            (px - x).powi(2) + (py - y).powi(2)
        };
        let nearest = |points: &[[f32; 2]]| {
            points
                .iter()
                .enumerate()
                .map(|(i, p)| (i, d2(p)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
        };
        if let Some((i, d)) = nearest(&map.proteins)
            && d <= 100.0
        {
            return Some(Point::Row(i));
        }
        match nearest(&map.bank) {
            Some((i, d)) if d <= 16.0 => Some(Point::Bank(i)),
            _ => None,
        }
    }

    /// Draw the map: the bank in grey, the files as numbered dots, the hovered point ringed.
    pub(super) fn paint_collection_map(&self) {
        let Some(canvas) = self.collection.canvas.cast::<HtmlCanvasElement>() else {
            return;
        };
        let Some(map) = &self.collection.map else {
            return;
        };
        let ratio = super::device_ratio() as f64;
        canvas.set_width((MAP_PX * ratio) as u32);
        canvas.set_height((MAP_PX * ratio) as u32);
        let Ok(g) = browser::context_2d(&canvas) else {
            return;
        };
        // Drawing on a fresh 2D context cannot fail in a way the page could act on.
        browser::warn_on_err("map scale", g.scale(ratio, ratio));
        g.set_fill_style_str("#11151c");
        g.fill_rect(0.0, 0.0, MAP_PX, MAP_PX);
        let (s, ox, oy) = Self::collection_frame(map);
        let at = |p: &[f32; 2]| (f64::from(p[0]) * s + ox, f64::from(p[1]) * s + oy);
        g.set_fill_style_str("rgba(160, 170, 185, 0.35)");
        for p in &map.bank {
            let (x, y) = at(p);
            g.fill_rect(x - 0.75, y - 0.75, 1.5, 1.5);
        }
        g.set_font("11px sans-serif");
        for (i, p) in map.proteins.iter().enumerate() {
            let (x, y) = at(p);
            g.begin_path();
            browser::warn_on_err("map point", g.arc(x, y, 4.5, 0.0, std::f64::consts::TAU));
            g.set_fill_style_str("#ffb020");
            g.fill();
            g.set_fill_style_str("#ffffff");
            browser::warn_on_err(
                "map label",
                g.fill_text(&(i + 1).to_string(), x + 6.0, y - 5.0),
            );
        }
        let ring = match self.collection.hover {
            Some(Point::Row(i)) => map.proteins.get(i),
            Some(Point::Bank(i)) => map.bank.get(i),
            None => None,
        };
        if let Some(p) = ring {
            let (x, y) = at(p);
            g.begin_path();
            browser::warn_on_err("map ring", g.arc(x, y, 8.0, 0.0, std::f64::consts::TAU));
            g.set_stroke_style_str("#ff3dc8");
            g.set_line_width(2.0);
            g.stroke();
        }
    }

    /// What the hovered point is.
    fn collection_hover_text(&self) -> String {
        match self.collection.hover {
            Some(Point::Row(i)) => self
                .collection
                .rows
                .get(i)
                .map(|d| {
                    format!(
                        "{}. {} · chain {} · {} aa (click to open)",
                        i + 1,
                        d.row.file,
                        d.row.chain,
                        d.row.length
                    )
                })
                .unwrap_or_default(),
            Some(Point::Bank(i)) => self
                .search
                .align
                .as_ref()
                .and_then(|a| a.search.bank.entries.get(i))
                .map(|e| {
                    let go = e.go.first().map(|g| format!(" · {g}")).unwrap_or_default();
                    format!("bank: {} · {} aa{go}", e.name, e.length)
                })
                .unwrap_or_default(),
            None => "hover a point: the files are numbered as in the table".into(),
        }
    }

    pub(super) fn view_collection(&self, ctx: &Context<Self>) -> Html {
        let c = &self.collection;
        if c.total == 0 && c.skipped == 0 {
            return html! {};
        }
        let link = ctx.link();
        let done = c.rows.len() + c.failed.len();
        let offset = |e: &web_sys::PointerEvent| (f64::from(e.offset_x()), f64::from(e.offset_y()));
        let onmove = link.callback(move |e: web_sys::PointerEvent| {
            Msg::Collection(CollectionMsg::Hover(Some(offset(&e))))
        });
        let onleave = link.callback(|_| Msg::Collection(CollectionMsg::Hover(None)));
        let onclick = link.callback(move |e: web_sys::PointerEvent| {
            let (x, y) = offset(&e);
            Msg::Collection(CollectionMsg::Click(x, y))
        });
        let hovered_row = match c.hover {
            Some(Point::Row(i)) => Some(i),
            _ => None,
        };
        html! {
            <section class="panel collection" data-testid="collection">
                <h2>{ format!("{} proteins", c.total) }</h2>
                <div class="row">
                    <progress data-testid="collection-progress" max={c.total.to_string()} value={done.to_string()}></progress>
                    <span class="muted small">{ format!(" {done} of {} files", c.total) }</span>
                    if c.skipped > 0 {
                        <span class="muted small">{ format!(
                            " · {} other {} left out (not .pdb / .ent / .cif / .mmcif, plain or .gz)",
                            c.skipped,
                            if c.skipped == 1 { "file" } else { "files" }
                        ) }</span>
                    }
                </div>
                <table class="hits collection-table" data-testid="collection-table">
                    <thead><tr>
                        <th>{ "#" }</th><th>{ "file" }</th><th>{ "chain" }</th><th>{ "length" }</th>
                        <th>{ "nearest bank protein (cosine)" }</th><th>{ "likely function" }</th>
                    </tr></thead>
                    <tbody>
                        { for c.rows.iter().enumerate().map(|(i, d)| {
                            let r = &d.row;
                            let nearest = r.nearest.as_ref()
                                .map(|(e, s)| format!("{} ({s:.3})", e.name))
                                .unwrap_or_else(|| "—".into());
                            let function = r.functions.first()
                                .map(|(f, s)| format!("{f} ({s:.2})"))
                                .unwrap_or_else(|| "—".into());
                            let open = link.callback(move |_| Msg::Collection(CollectionMsg::Open(i)));
                            html! {
                                <tr class={classes!("clickable", (hovered_row == Some(i)).then_some("hovered"))}
                                    onclick={open} title="open this protein">
                                    <td>{ i + 1 }</td><td>{ r.file.clone() }</td><td>{ r.chain.clone() }</td>
                                    <td>{ r.length }</td><td>{ nearest }</td><td>{ function }</td>
                                </tr>
                            }
                        }) }
                    </tbody>
                </table>
                if !c.failed.is_empty() {
                    <ul class="error small" data-testid="collection-failed">
                        { for c.failed.iter().map(|(f, e)| html! { <li>{ format!("{f}: {e}") }</li> }) }
                    </ul>
                }
                <div class="row">
                    <button class="button" data-testid="collection-csv" disabled={c.rows.is_empty() && c.failed.is_empty()}
                            onclick={link.callback(|_| Msg::Collection(CollectionMsg::ExportCsv))}>{ "Table (.csv)" }</button>
                    <button class="button" data-testid="collection-npz" disabled={c.rows.is_empty()}
                            onclick={link.callback(|_| Msg::Collection(CollectionMsg::ExportNpz))}>{ "All embeddings (.npz)" }</button>
                </div>
                <canvas ref={c.canvas.clone()} class="collection-map" data-testid="collection-map"
                        style={format!("width:{MAP_PX}px;height:{MAP_PX}px")}
                        onpointermove={onmove} onpointerleave={onleave} onpointerup={onclick}></canvas>
                <div class="muted small" data-testid="collection-hover">{ self.collection_hover_text() }</div>
                if let Some(note) = &c.map_note { <p class="muted small" data-testid="collection-map-note">{ note.clone() }</p> }
            </section>
        }
    }
}
