//! Fetching a structure by its identifier: a PDB ID from RCSB or a UniProt accession's model
//! from the AlphaFold database (the archives are [`Sources`]: `?rcsb=` / `?alphafold=` name a
//! mirror). The box, its messages, the download with progress, and the shareable address
//! (`?pdb=1ubq`, `?uniprot=P69905`). Only the identifier leaves the machine: the file is read
//! and scored here.

use foldspace::structure::remote::{Request, Sources, StructureId, alphafold_file};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{App, Msg, Status};
use crate::error::{PageError, PageResult};
use crate::{browser, logic};

/// The box's state.
#[derive(Debug, Default)]
pub(crate) struct FetchState {
    /// What is typed.
    input: String,
    /// The identifier being fetched.
    pub(crate) fetching: Option<StructureId>,
}

/// The box's messages.
pub enum FetchMsg {
    /// What is typed.
    Input(String),
    /// Fetch this identifier, or what the box holds.
    Start(Option<StructureId>),
    /// Bytes received so far and the size when known.
    Progress(u64, Option<u64>),
}

impl App {
    pub(super) fn update_fetch(&mut self, ctx: &Context<Self>, msg: FetchMsg) -> bool {
        match msg {
            FetchMsg::Input(text) => {
                self.fetch.input = text;
                return false;
            }
            FetchMsg::Start(id) => {
                let id = match id {
                    Some(id) => {
                        self.fetch.input = match &id {
                            StructureId::Pdb(s) => s.to_ascii_lowercase(),
                            StructureId::UniProt(s) => s.clone(),
                        };
                        id
                    }
                    None => match StructureId::parse(&self.fetch.input) {
                        Ok(id) => id,
                        Err(e) => {
                            self.fail(e.into());
                            return true;
                        }
                    },
                };
                self.status = Status::Busy(format!("fetching {}…", id.describe()));
                self.fetch.fetching = Some(id.clone());
                let sources = self.options.sources.clone();
                let link = ctx.link().clone();
                ctx.link().send_future(async move {
                    let result = fetch_structure(&id, &sources, move |got, total| {
                        link.send_message(Msg::Fetch(FetchMsg::Progress(got, total)))
                    })
                    .await;
                    match result {
                        Ok((name, bytes)) => {
                            browser::set_query(&logic::with_id(&browser::query(), Some(&id)));
                            Msg::FileRead(name, Ok(bytes))
                        }
                        Err(e) => Msg::FileRead(id.as_str().to_string(), Err(e)),
                    }
                });
            }
            FetchMsg::Progress(got, total) => {
                if let Some(id) = &self.fetch.fetching {
                    self.status = Status::Busy(format!(
                        "fetching {}… {}{}",
                        id.describe(),
                        logic::bytes_label(got as usize),
                        total
                            .map(|t| format!(" of {}", logic::bytes_label(t as usize)))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        true
    }

    /// The "fetch by ID" box: a PDB ID from RCSB or a UniProt accession from the AlphaFold
    /// database (only the identifier is sent; the file is read here).
    pub(super) fn view_fetch(&self, ctx: &Context<Self>) -> Html {
        let oninput = ctx.link().callback(|e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            Msg::Fetch(FetchMsg::Input(input.value()))
        });
        let onsubmit = ctx.link().callback(|e: SubmitEvent| {
            e.prevent_default();
            Msg::Fetch(FetchMsg::Start(None))
        });
        let sources = &self.options.sources;
        let title = format!(
            "A PDB ID (from {}) or a UniProt accession (the AlphaFold model, from {}). Only the identifier is sent; the structure is read and scored on this machine.",
            logic::url_host(&sources.rcsb),
            logic::url_host(&sources.alphafold)
        );
        html! {
            <form class="fetch" {onsubmit} title={title}>
                <input type="text" data-testid="id-input" placeholder="PDB ID or UniProt (1ubq, P69905)"
                       spellcheck="false" autocomplete="off" size="24"
                       value={self.fetch.input.clone()} {oninput} />
                <button type="submit" class="button" data-testid="id-fetch"
                        disabled={self.fetch.fetching.is_some()}>{ "Fetch" }</button>
            </form>
        }
    }
}

/// Fetch `url`; a 404 becomes `not_found`, a network failure names the host.
async fn get(
    url: &str,
    not_found: impl FnOnce() -> String,
    progress: impl FnMut(u64, Option<u64>),
) -> PageResult<Vec<u8>> {
    match browser::fetch_bytes(url, progress).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(PageError::refused(not_found())),
        Err(e) => Err(PageError::from(e).during(format!(
            "could not reach {} (no network, or the server refused)",
            logic::url_host(url)
        ))),
    }
}

/// The structure file for `id`: its name (which tells the reader the format) and bytes.
async fn fetch_structure(
    id: &StructureId,
    sources: &Sources,
    mut progress: impl FnMut(u64, Option<u64>),
) -> PageResult<(String, Vec<u8>)> {
    let what = id.describe();
    let file = match sources.request(id) {
        Request::AlphaFoldApi { url } => {
            let answer = get(
                &url,
                || format!("{what}: the AlphaFold database has no model for this accession ({url} answered 404)"),
                |_, _| {},
            )
            .await?;
            alphafold_file(id.as_str(), &String::from_utf8_lossy(&answer))?
        }
        file => file,
    };
    let Request::File { url, name } = file else {
        return Err(PageError::refused(format!(
            "{what}: no structure file to fetch"
        )));
    };
    let bytes = get(
        &url,
        || format!("{what} was not found ({url} answered 404)"),
        &mut progress,
    )
    .await?;
    if bytes.len() > logic::MAX_FILE_BYTES {
        return Err(PageError::refused(format!(
            "{what}: the file is {} — larger than the page reads ({})",
            logic::bytes_label(bytes.len()),
            logic::bytes_label(logic::MAX_FILE_BYTES)
        )));
    }
    Ok((name, bytes))
}
