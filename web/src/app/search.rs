//! Search by function and similar proteins: the alignment model and the bank (fetched on first
//! use), the text model (fetched on the first search), their jobs, and the panel.

use std::rc::Rc;

use foldspace::align::search::{BankEntry, TRANSFER_NEIGHBOURS};
use foldspace::compute::Compute;
use foldspace::text::TextEncoder;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{App, Msg, download_progress};
use crate::browser;
use crate::error::PageResult;
use crate::loading::{
    AlignAssets, Similar, TextHits, load_align, load_text_model, search_text, similar,
};
use crate::logic::LIKELY_FUNCTION_NOTE;

/// Loading state of the alignment assets.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) enum AlignLoad {
    #[default]
    NotStarted,
    Loading,
    Failed(String),
}

/// What the search panel holds.
#[derive(Default)]
pub(super) struct SearchState {
    /// The text in the search box.
    query: String,
    text_model: Option<Rc<TextEncoder>>,
    /// What a running text job is doing.
    text_busy: Option<String>,
    text_error: Option<String>,
    text_hits: Option<Rc<TextHits>>,
    /// Bytes of the download in progress (the bank or the text model) and its size.
    progress: Option<(u64, Option<u64>)>,
    /// The alignment model and the bank, once loaded.
    pub(super) align: Option<Rc<AlignAssets>>,
    pub(super) align_load: AlignLoad,
    /// Similar proteins of a chain (its chain job).
    similar: Option<(u64, Rc<Similar>)>,
    /// The model job of the search under way.
    pub(super) similar_running: Option<u64>,
}

/// The search panel's messages (a failure goes to the status line and is repeated in the
/// panel).
pub enum SearchMsg {
    AlignLoaded(PageResult<Rc<AlignAssets>>),
    QueryInput(String),
    Search,
    /// Bytes of the search's download in progress (the bank or the text model) and its size.
    Progress(u64, Option<u64>),
    TextModelLoaded(PageResult<Rc<TextEncoder>>),
    TextHits(PageResult<Rc<TextHits>>),
    Similar(u64, PageResult<Rc<Similar>>),
}

impl App {
    pub(super) fn update_search(&mut self, ctx: &Context<Self>, msg: SearchMsg) -> bool {
        match msg {
            SearchMsg::AlignLoaded(result) => {
                match result {
                    Ok(a) => {
                        self.search.align = Some(a);
                        self.search.align_load = AlignLoad::NotStarted;
                    }
                    Err(e) => {
                        let e = e.during("the alignment model and the bank failed to load");
                        self.search.align_load = AlignLoad::Failed(e.to_string());
                        self.fail(e);
                    }
                }
                // Only the alignment load can be pending here (text jobs start after it).
                self.search.text_busy = None;
                self.search.progress = None;
                self.kick(ctx);
                self.kick_search(ctx);
                self.collection_next(ctx);
            }
            SearchMsg::QueryInput(q) => self.search.query = q,
            SearchMsg::Search => {
                self.search.text_error = None;
                self.kick_search(ctx);
            }
            SearchMsg::Progress(got, total) => self.search.progress = Some((got, total)),
            SearchMsg::TextModelLoaded(result) => {
                self.search.text_busy = None;
                self.search.progress = None;
                match result {
                    Ok(m) => {
                        self.search.text_model = Some(m);
                        self.kick_search(ctx);
                    }
                    Err(e) => {
                        let e = e.during("the text model failed to load");
                        self.search.text_error = Some(e.to_string());
                        self.fail(e);
                    }
                }
            }
            SearchMsg::TextHits(result) => {
                self.search.text_busy = None;
                match result {
                    Ok(h) => self.search.text_hits = Some(h),
                    Err(e) => {
                        let e = e.during("the search failed");
                        self.search.text_error = Some(e.to_string());
                        self.fail(e);
                    }
                }
            }
            SearchMsg::Similar(job, result) => {
                if self.search.similar_running == Some(job) {
                    self.search.similar_running = None;
                }
                if job == self.model_job {
                    match result {
                        Ok(s) => self.search.similar = Some((job, s)),
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => {
                            let e = e.during("the search failed");
                            self.search.align_load = AlignLoad::Failed(e.to_string());
                            self.fail(e);
                        }
                    }
                }
                self.kick(ctx);
            }
        }
        true
    }

    /// The alignment model and the bank once loaded; otherwise starts loading them (once; the
    /// answer comes as `SearchMsg::AlignLoaded`, progress as `SearchMsg::Progress`) and returns `None`.
    pub(super) fn ensure_align(
        &mut self,
        ctx: &Context<Self>,
        compute: Compute,
    ) -> Option<Rc<AlignAssets>> {
        if let Some(assets) = &self.search.align {
            return Some(assets.clone());
        }
        if self.search.align_load == AlignLoad::NotStarted {
            self.search.align_load = AlignLoad::Loading;
            let link = ctx.link().clone();
            let worker = self.worker.clone();
            ctx.link().send_future(async move {
                let progress = move |got, total| {
                    link.send_message(Msg::Search(SearchMsg::Progress(got, total)))
                };
                Msg::Search(SearchMsg::AlignLoaded(
                    load_align(compute, worker, progress).await.map(Rc::new),
                ))
            });
        }
        None
    }

    /// Search the bank by the text in the box (loading the alignment assets and the text model
    /// first when needed; the text encoder runs on the CPU backend, which beats software WebGPU).
    fn kick_search(&mut self, ctx: &Context<Self>) {
        let query = self.search.query.trim().to_string();
        if query.is_empty() || self.search.text_busy.is_some() || self.search.text_error.is_some() {
            return;
        }
        if self
            .search
            .text_hits
            .as_ref()
            .is_some_and(|h| h.query == query)
        {
            return;
        }
        let Some(compute) = self.compute.clone() else {
            return;
        };
        let Some(assets) = self.ensure_align(ctx, compute) else {
            match &self.search.align_load {
                AlignLoad::Failed(e) => self.search.text_error = Some(e.clone()),
                _ => {
                    self.search.text_busy =
                        Some("loading the alignment model and the search bank…".into())
                }
            }
            return;
        };
        let Some(encoder) = self.search.text_model.clone() else {
            self.search.text_busy = Some("loading the text model (all-MiniLM-L6-v2, int8)…".into());
            let link = ctx.link().clone();
            ctx.link().send_future(async move {
                let progress = move |got, total| {
                    link.send_message(Msg::Search(SearchMsg::Progress(got, total)))
                };
                Msg::Search(SearchMsg::TextModelLoaded(
                    load_text_model(progress).await.map(Rc::new),
                ))
            });
            return;
        };
        self.search.text_busy = Some("searching…".into());
        ctx.link().send_future(async move {
            browser::yield_now().await;
            Msg::Search(SearchMsg::TextHits(
                search_text(&assets, &encoder, query).await.map(Rc::new),
            ))
        });
    }

    /// Similar proteins in the bank and likely function, once per chain (after its embedding;
    /// loads the alignment model and the bank the first time).
    pub(super) fn kick_similar(&mut self, ctx: &Context<Self>) {
        if self.search.similar_running.is_some()
            || self
                .search
                .similar
                .as_ref()
                .is_some_and(|(job, _)| *job == self.model_job)
        {
            return;
        }
        let Some(compute) = self.compute.clone() else {
            return;
        };
        let Some(assets) = self.ensure_align(ctx, compute) else {
            return;
        };
        let (Some(network), Some(chain)) = (self.network.clone(), self.chain().cloned()) else {
            return;
        };
        if chain.len() < 2 || chain.len() > self.chain_limit() {
            return;
        }
        self.search.similar_running = Some(self.model_job);
        let job = self.model_job;
        let runs = self.chain_runs.clone();
        ctx.link().send_future(async move {
            browser::yield_now().await;
            let started = browser::now_ms();
            let result = similar(&assets, &network, &chain, &runs).await;
            let ms = browser::now_ms() - started;
            Msg::Search(SearchMsg::Similar(
                job,
                result.map(|mut s| {
                    s.ms = ms;
                    Rc::new(s)
                }),
            ))
        });
    }

    fn view_search(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let oninput = link.callback(|e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            Msg::Search(SearchMsg::QueryInput(input.value()))
        });
        let onsubmit = link.callback(|e: SubmitEvent| {
            e.prevent_default();
            Msg::Search(SearchMsg::Search)
        });
        html! {
            <>
                <h2>{ "Search the bank by function" }</h2>
                <form class="search row" {onsubmit}>
                    <input type="search" data-testid="search-input" value={self.search.query.clone()} {oninput}
                        placeholder="e.g. DNA-binding transcription factor activity; serine-type endopeptidase activity" />
                    <button class="primary" type="submit" data-testid="search-button"
                        disabled={self.search.query.trim().is_empty() || self.search.text_busy.is_some()}>{ "Search" }</button>
                </form>
                if let Some(b) = &self.search.text_busy {
                    <p class="muted">{ b.clone() }
                        if let Some(p) = self.search.progress { { download_progress(p, "search-progress") } }
                    </p>
                }
                if let Some(e) = &self.search.text_error { <p class="error" data-testid="search-error">{ e.clone() }</p> }
                if let Some(h) = &self.search.text_hits {
                    { hit_table(&h.hits, "search-table") }
                    <p class="muted small">{ format!("“{}”: text encoder (CPU) and head {:.0} ms, search {:.1} ms over {} proteins.", h.query, h.encode_ms, h.search_ms, self.search.align.as_ref().map(|a| a.search.bank.entries.len()).unwrap_or(0)) }</p>
                }
            </>
        }
    }

    pub(super) fn view_similar(&self, ctx: &Context<Self>) -> Html {
        let current = self
            .search
            .similar
            .as_ref()
            .filter(|(job, _)| *job == self.model_job)
            .map(|(_, s)| s.clone());
        let body = match (&self.search.align_load, current) {
            (AlignLoad::Failed(e), _) => {
                html! { <p class="error" data-testid="similar-error">{ e.clone() }</p> }
            }
            (_, Some(s)) => {
                let bank_size = self
                    .search
                    .align
                    .as_ref()
                    .map(|a| a.search.bank.entries.len())
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
                        <p class="muted small">{ format!("Bank of {bank_size} PDB chains (foldspace align, stage 1: sequence + pooled structure embedding). Into the shared space and searched in {:.0} ms on this device (the search itself {:.1} ms). Scores are cosines in the shared space; a function's score is the similarity-weighted share of the {TRANSFER_NEIGHBOURS} closest annotated proteins that carry it.", s.ms, s.search_ms) }</p>
                        <details class="muted small" data-testid="likely-function-note">
                            <summary>{ "How good is this?" }</summary>
                            <p>{ LIKELY_FUNCTION_NOTE }{ " " }
                                <a href="docs/TRAINING.txt" target="_blank" rel="noopener">{ "The tables and the commands (TRAINING.md)" }</a>{ "." }</p>
                        </details>
                    </>
                }
            }
            (AlignLoad::Loading, None) => {
                html! { <p class="muted">{ "loading the alignment model and the search bank…" }</p> }
            }
            _ if self.search.similar_running.is_some() => {
                html! { <p class="muted">{ "searching the bank…" }</p> }
            }
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
