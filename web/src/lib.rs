//! The foldspace page (yew, compiled to wasm32): drop a structure, see its distance map and
//! the model's score field in 3D, export its embeddings. The science lives in the `foldspace`
//! crate; this crate draws and wires. [`logic`] and [`scene`] need no browser and are tested
//! natively; the components, the 3D viewer (WebGPU or WebGL 2) and the browser glue are wasm-only.

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
pub mod model;
#[cfg(target_family = "wasm")]
pub mod viewer;

/// Start the page: mount the app on `<div id="app">`. A panic (a bug: errors are values) stops
/// the wasm instance, so the hook says so on the page instead of leaving it frozen.
#[cfg(target_family = "wasm")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| show_crash(&info.to_string())));
    app::mount();
}

/// Put a banner at the top of the page (`data-testid="crash"`) saying that the page stopped on
/// an internal error, with its message, and log the message to the console.
#[cfg(target_family = "wasm")]
pub fn show_crash(message: &str) {
    web_sys::console::error_1(&format!("foldspace stopped: {message}").into());
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let (Ok(banner), Some(body)) = (document.create_element("div"), document.body()) else {
        return;
    };
    banner.set_class_name("crash");
    let _ = banner.set_attribute("role", "alert");
    let _ = banner.set_attribute("data-testid", "crash");
    banner.set_text_content(Some(&format!(
        "The page stopped on an internal error and no longer responds: {message}. Reload the \
         page to go on (nothing was sent anywhere); please report this message."
    )));
    let _ = body.prepend_with_node_1(&banner);
}
