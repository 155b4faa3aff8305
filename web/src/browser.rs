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
        let _ = web_sys::Url::revoke_object_url(&revoke);
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
            let _ = w.navigator().service_worker().register("sw.js");
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

/// Let the browser paint and handle input before continuing.
pub async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(promise).await;
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
            // Best effort: an address that could not be updated changes nothing on the page.
            let _ =
                history.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}{query}")));
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
