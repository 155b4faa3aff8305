//! Browser glue: fetching with progress, reading dropped files, downloads, feature checks.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A browser call that failed, in words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BrowserError(pub String);

impl BrowserError {
    fn js(what: &str, e: JsValue) -> Self {
        let detail = e
            .dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .or_else(|| e.as_string())
            .unwrap_or_else(|| format!("{e:?}"));
        Self(format!("{what}: {detail}"))
    }
}

/// A browser call whose failure changes nothing the user can act on (releasing memory, drawing
/// on a 2D canvas, the offline cache): said in the console, once, where it happens.
pub fn warn_on_err(what: &str, result: Result<(), JsValue>) {
    if let Err(e) = result {
        web_sys::console::warn_1(&BrowserError::js(what, e).to_string().into());
    }
}

fn window() -> Result<web_sys::Window, BrowserError> {
    web_sys::window().ok_or_else(|| BrowserError("no window".into()))
}

/// Fetch `url` (same origin) as bytes, reporting `(received, total if known)` as chunks arrive.
/// `Ok(None)` for a 404.
pub async fn fetch_bytes(
    url: &str,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Option<Vec<u8>>, BrowserError> {
    let response: web_sys::Response = JsFuture::from(window()?.fetch_with_str(url))
        .await
        .map_err(|e| BrowserError::js(&format!("could not fetch {url}"), e))?
        .unchecked_into();
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(BrowserError(format!(
            "could not fetch {url}: HTTP {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let Some(body) = response.body() else {
        return Ok(Some(Vec::new()));
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut out = Vec::with_capacity(total.unwrap_or(0) as usize);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| BrowserError::js(&format!("download of {url} failed"), e))?;
        let done = Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        if let Ok(value) = Reflect::get(&chunk, &"value".into()) {
            out.extend_from_slice(&Uint8Array::new(&value).to_vec());
        }
        progress(out.len() as u64, total);
    }
    Ok(Some(out))
}

/// Fetch a small text file; `Ok(None)` for a 404.
pub async fn fetch_text(url: &str) -> Result<Option<String>, BrowserError> {
    Ok(fetch_bytes(url, |_, _| {})
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The bytes of a file the user chose or dropped.
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, BrowserError> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| BrowserError::js(&format!("could not read {}", file.name()), e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Offer bytes as a download named `name`.
pub fn download(name: &str, bytes: &[u8], mime: &str) -> Result<(), BrowserError> {
    let array = Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|e| BrowserError::js("could not make the download", e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|e| BrowserError::js("could not make the download", e))?;
    let result = download_url(name, &url);
    // Revoke after the click has been handled.
    let revoke = url.clone();
    gloo::timers::callback::Timeout::new(10_000, move || {
        warn_on_err(
            "could not release a download's memory",
            web_sys::Url::revoke_object_url(&revoke),
        );
    })
    .forget();
    result
}

/// Offer a URL (an object or data URL) as a download named `name`.
pub fn download_url(name: &str, url: &str) -> Result<(), BrowserError> {
    let document = window()?
        .document()
        .ok_or_else(|| BrowserError("no document".into()))?;
    let a: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| BrowserError::js("could not make the download", e))?
        .unchecked_into();
    a.set_href(url);
    a.set_download(name);
    a.set_attribute("style", "display:none").ok();
    if let Some(body) = document.body() {
        body.append_child(&a).ok();
        a.click();
        body.remove_child(&a).ok();
    }
    Ok(())
}

/// Whether the browser exposes WebGPU (`navigator.gpu`).
pub fn has_webgpu() -> bool {
    window()
        .ok()
        .and_then(|w| Reflect::get(&w.navigator(), &"gpu".into()).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// Register the service worker that keeps the page usable offline.
pub fn register_service_worker() {
    if let Ok(w) = window() {
        let has = Reflect::has(&w.navigator(), &"serviceWorker".into()).unwrap_or(false);
        if has {
            let registration = JsFuture::from(w.navigator().service_worker().register("sw.js"));
            wasm_bindgen_futures::spawn_local(async move {
                warn_on_err(
                    "the service worker (offline use) could not be registered",
                    registration.await.map(|_| ()),
                );
            });
        }
    }
}

/// Milliseconds since the page started.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

/// The value of the `<input>` an event came from, parsed (`None` when it does not parse: an
/// empty or half-typed number). Controls read their value so on each `input` event: yew puts the
/// state's value back into a field on any re-render, so waiting for `change` loses what was typed
/// or dragged in between.
pub fn input_value<T: std::str::FromStr>(event: &web_sys::Event) -> Option<T> {
    event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|input| input.value().parse().ok())
}

/// Let the browser paint and handle input before continuing.
pub async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let scheduled = web_sys::window()
            .map(|w| w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0));
        // No window or no timer: go on at once rather than wait forever.
        if !matches!(scheduled, Some(Ok(_)))
            && let Err(e) = resolve.call0(&JsValue::NULL)
        {
            wasm_bindgen::throw_val(e);
        }
    });
    warn_on_err(
        "yielding to the browser failed",
        JsFuture::from(promise).await.map(|_| ()),
    );
}

/// The page's query string (`?…`).
pub fn query() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// Replace the page's query string in the address bar (no reload, no new history entry), so
/// that the address can be shared; `""` removes it.
pub fn set_query(query: &str) {
    if let Ok(w) = window() {
        let path = w.location().pathname().unwrap_or_default();
        if let Ok(history) = w.history() {
            // An address that could not be updated changes nothing on the page: said in the
            // console only.
            warn_on_err(
                "the address bar could not be updated",
                history.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}{query}"))),
            );
        }
    }
}

/// Paint RGBA pixels (`width × height`) onto a canvas, resizing its buffer to match.
pub fn paint(
    canvas: &web_sys::HtmlCanvasElement,
    rgba: &[u8],
    width: u32,
    height: u32,
) -> Result<(), BrowserError> {
    canvas.set_width(width);
    canvas.set_height(height);
    let ctx = context_2d(canvas)?;
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
        wasm_bindgen::Clamped(rgba),
        width,
        height,
    )
    .map_err(|e| BrowserError::js("could not draw", e))?;
    ctx.put_image_data(&data, 0.0, 0.0)
        .map_err(|e| BrowserError::js("could not draw", e))
}

/// The 2D context of a canvas.
pub fn context_2d(
    canvas: &web_sys::HtmlCanvasElement,
) -> Result<web_sys::CanvasRenderingContext2d, BrowserError> {
    canvas
        .get_context("2d")
        .map_err(|e| BrowserError::js("no 2D canvas", e))?
        .ok_or_else(|| BrowserError("no 2D canvas".into()))
        .map(|c| c.unchecked_into())
}

/// What was dropped on the page: the files, and the folders to walk (`webkitGetAsEntry`, read
/// while the drop event lasts: the browser empties the data afterwards).
pub struct Dropped {
    /// Files dropped as files.
    pub files: Vec<web_sys::File>,
    /// Folders dropped, walked by [`walk_folders`].
    pub folders: Vec<web_sys::FileSystemDirectoryEntry>,
}

/// Split a drop into files and folders.
pub fn dropped(data: &web_sys::DataTransfer) -> Dropped {
    let items = data.items();
    let mut folders: Vec<web_sys::FileSystemDirectoryEntry> = Vec::new();
    for i in 0..items.length() {
        let entry = items
            .get(i)
            .and_then(|item| item.webkit_get_as_entry().ok().flatten());
        if let Some(entry) = entry.filter(web_sys::FileSystemEntry::is_directory) {
            folders.push(entry.unchecked_into());
        }
    }
    // A folder also appears among the files (as an unreadable entry named like it).
    let names: Vec<String> = folders.iter().map(|f| f.name()).collect();
    let files: Vec<web_sys::File> = data
        .files()
        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default();
    let files = if folders.is_empty() {
        files
    } else {
        files
            .into_iter()
            .filter(|f: &web_sys::File| !names.contains(&f.name()))
            .collect()
    };
    Dropped { files, folders }
}

/// Entries a folder walk visits at most (files and folders together).
pub const MAX_WALK_ENTRIES: usize = 20_000;

/// Every file under `folders`, sub-folders included (depth first, in the browser's order), up to
/// [`MAX_WALK_ENTRIES`] entries.
pub async fn walk_folders(
    folders: Vec<web_sys::FileSystemDirectoryEntry>,
) -> Result<Vec<web_sys::File>, BrowserError> {
    let mut files = Vec::new();
    let mut stack = folders;
    let mut seen = 0usize;
    while let Some(folder) = stack.pop() {
        let reader = folder.create_reader();
        // `readEntries` answers in batches until an empty one.
        loop {
            let batch = read_entries(&reader, &folder.full_path()).await?;
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                seen += 1;
                if seen > MAX_WALK_ENTRIES {
                    return Err(BrowserError(format!(
                        "the dropped folder holds more than {MAX_WALK_ENTRIES} entries: drop a smaller one"
                    )));
                }
                if entry.is_directory() {
                    stack.push(entry.unchecked_into());
                } else if entry.is_file() {
                    files.push(entry_file(entry.unchecked_ref()).await?);
                }
            }
        }
    }
    Ok(files)
}

/// One batch of a folder's entries.
async fn read_entries(
    reader: &web_sys::FileSystemDirectoryReader,
    path: &str,
) -> Result<Vec<web_sys::FileSystemEntry>, BrowserError> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        if let Err(e) = reader.read_entries_with_callback_and_callback(&resolve, &reject) {
            // Thrown inside the executor: the promise rejects with it.
            wasm_bindgen::throw_val(e);
        }
    });
    let entries = JsFuture::from(promise)
        .await
        .map_err(|e| BrowserError::js(&format!("could not list the folder {path}"), e))?;
    // Unchecked: Chrome's entries are not `instanceof FileSystemEntry` (its classes are named
    // otherwise), and `readEntries` gives nothing else.
    Ok(js_sys::Array::from(&entries)
        .iter()
        .map(JsCast::unchecked_into)
        .collect())
}

/// The file behind a file entry.
async fn entry_file(entry: &web_sys::FileSystemFileEntry) -> Result<web_sys::File, BrowserError> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        entry.file_with_callback_and_callback(&resolve, &reject);
    });
    let file = JsFuture::from(promise)
        .await
        .map_err(|e| BrowserError::js(&format!("could not open {}", entry.full_path()), e))?;
    file.dyn_into()
        .map_err(|_| BrowserError(format!("{} is not a file", entry.full_path())))
}
