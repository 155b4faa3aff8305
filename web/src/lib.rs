//! The foldspace page (yew, compiled to wasm32): drop a structure, see its distance map and
//! the model's score field in 3D, export its embeddings. The science lives in the `foldspace`
//! crate; this crate draws and wires. [`logic`] and [`scene`] need no browser and are tested
//! natively; the components, the WebGPU viewer and the browser glue are wasm-only.

pub mod logic;
pub mod scene;

#[cfg(target_family = "wasm")]
mod app;
#[cfg(target_family = "wasm")]
mod browser;
#[cfg(target_family = "wasm")]
mod error;
#[cfg(target_family = "wasm")]
mod loading;
#[cfg(target_family = "wasm")]
mod viewer;

/// Start the page: mount the app on `<div id="app">`.
#[cfg(target_family = "wasm")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    app::mount();
}
