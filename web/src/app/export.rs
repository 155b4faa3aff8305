//! The embeddings panel and every export: the protein and per-residue heatmaps, the `.npz` of
//! all arrays, one `.npy`, the per-residue CSV (with the residue embeddings), the metadata JSON
//! (with the protein and residue embeddings), and PNGs of the 3D view and the map.

use foldspace::score::embed::{ARRAY_NAMES, Provenance, metadata};
use web_sys::{HtmlCanvasElement, HtmlSelectElement};
use yew::prelude::*;

use super::{App, Msg};
use crate::browser;
use crate::error::{PageError, PageResult};
use crate::logic;

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

/// The embeddings panel's canvases and the array to export as `.npy`.
pub(super) struct ExportState {
    pub(super) npy_name: String,
    protein: NodeRef,
    residue: NodeRef,
}

impl Default for ExportState {
    fn default() -> Self {
        Self {
            npy_name: "residue".into(),
            protein: NodeRef::default(),
            residue: NodeRef::default(),
        }
    }
}

impl App {
    pub(super) fn paint_embeddings(&self) {
        let Some(e) = &self.embedding else { return };
        if let Some(canvas) = self.exports.protein.cast::<HtmlCanvasElement>() {
            let (rgba, _, _) = logic::matrix_rgba(&e.protein);
            if let Err(e) = browser::paint(&canvas, &rgba, e.channels as u32, 1) {
                web_sys::console::warn_1(&format!("protein embedding: {e}").into());
            }
        }
        if let Some(canvas) = self.exports.residue.cast::<HtmlCanvasElement>() {
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

    pub(super) fn export(&self, what: Export) -> PageResult<()> {
        let chain_id = self.chain().map(|c| c.id.clone()).unwrap_or_default();
        let stem = logic::download_stem(&self.file_name, &chain_id);
        let need = || {
            self.embedding
                .clone()
                .ok_or_else(|| PageError::refused("no embeddings yet"))
        };
        // Every arm ends in the browser's download (its error converts once, here).
        let downloaded = match what {
            Export::Npz => {
                let bytes = need()?.npz().map_err(PageError::from)?;
                browser::download(&format!("{stem}_embeddings.npz"), &bytes, "application/zip")
            }
            Export::Npy => {
                let e = need()?;
                let bytes = e
                    .npy(&self.exports.npy_name)
                    .ok_or_else(|| {
                        PageError::refused(format!("no array {}", self.exports.npy_name))
                    })?
                    .map_err(PageError::from)?;
                browser::download(
                    &format!("{stem}_{}.npy", self.exports.npy_name),
                    &bytes,
                    "application/octet-stream",
                )
            }
            Export::Csv => {
                let e = need()?;
                let chain = self.chain().ok_or_else(|| PageError::refused("no chain"))?;
                browser::download(
                    &format!("{stem}_residues.csv"),
                    e.residue_csv(chain).as_bytes(),
                    "text/csv",
                )
            }
            Export::Json => {
                let e = need()?;
                let (Some(structure), Some(chain), Some(network)) =
                    (&self.structure, self.chain(), &self.network)
                else {
                    return Err(PageError::refused("no embeddings yet"));
                };
                let provenance = Provenance {
                    file: &self.file_name,
                    weights_sha256: network.weights_sha256(),
                    backend: network.backend(),
                };
                let json = metadata(&provenance, structure, chain, &e);
                let text = serde_json::to_string_pretty(&json).map_err(|e| {
                    PageError::refused(format!("the metadata could not be written: {e}"))
                })?;
                browser::download(
                    &format!("{stem}_metadata.json"),
                    text.as_bytes(),
                    "application/json",
                )
            }
            Export::Png => {
                let viewer = self
                    .view3d
                    .viewer
                    .as_ref()
                    .ok_or_else(|| PageError::refused("the 3D view is not available"))?;
                let url = viewer
                    .borrow_mut()
                    .screenshot()
                    .ok_or_else(|| PageError::refused("the 3D view could not be captured"))?;
                browser::download_url(&format!("{stem}_3d.png"), &url)
            }
            Export::MapPng => {
                let canvas = self
                    .map
                    .canvas
                    .cast::<HtmlCanvasElement>()
                    .ok_or_else(|| PageError::refused("no distance map"))?;
                let url = canvas
                    .to_data_url_with_type("image/png")
                    .map_err(|_| PageError::refused("the map could not be captured"))?;
                browser::download_url(&format!("{stem}_distance_map.png"), &url)
            }
        };
        Ok(downloaded?)
    }

    pub(super) fn view_embeddings(&self, ctx: &Context<Self>) -> Html {
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
                    <canvas ref={self.exports.protein.clone()} class="strip" data-testid="protein-embedding" />
                    <div class="emb-label">{ format!("per residue · {} residues × {} channels", e.length, e.channels) }</div>
                    <canvas ref={self.exports.residue.clone()} class="matrix" data-testid="residue-embedding" />
                } else {
                    <p class="muted">{ "The protein and per-residue embeddings appear here once the model has run; the residue-pair embedding (L × L × channels) is in the .npz." }</p>
                }
                <div class="exports">
                    <button data-testid="export-npz" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Npz))}>{ "All arrays (.npz)" }</button>
                    <button data-testid="export-csv" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Csv))}>{ "Per residue (.csv)" }</button>
                    <button data-testid="export-json" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Json))}>{ "Metadata + embeddings (.json)" }</button>
                    <span class="npy">
                        <select onchange={onnpy}>
                            { for ARRAY_NAMES.iter().map(|n| html! {
                                <option value={*n} selected={*n == self.exports.npy_name}>{ format!("{n} {}", shape(n)) }</option>
                            }) }
                        </select>
                        <button data-testid="export-npy" disabled={!ready} onclick={link.callback(|_| Msg::Export(Export::Npy))}>{ ".npy" }</button>
                    </span>
                </div>
            </section>
        }
    }
}
