//! Shared helper of the browser tests: fetching files the test runner serves.
#![allow(dead_code)]

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Fetch a file the test runner's web server serves from the crate directory; fails with how
/// to make it when it is missing.
pub async fn fetch(path: &str) -> Vec<u8> {
    let window = web_sys::window().expect("a window");
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(path))
        .await
        .expect("fetch")
        .dyn_into()
        .expect("a Response");
    assert!(
        response.ok(),
        "{path}: HTTP {} — run `foldspace export-text --precision f32 f16 int8 --out \
         crate/tests/served` first (tests/run does)",
        response.status()
    );
    let buffer = JsFuture::from(response.array_buffer().expect("body"))
        .await
        .expect("body");
    js_sys::Uint8Array::new(&buffer).to_vec()
}
