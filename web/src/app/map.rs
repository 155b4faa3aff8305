//! The C-alpha distance map: painted from the GPU's distances, a crosshair for the hovered
//! residue pair, zoom, and its panel.

use wasm_bindgen::JsCast;
use web_sys::{HtmlCanvasElement, HtmlInputElement};
use yew::prelude::*;

use super::export::Export;
use super::{App, Msg, legend_html};
use crate::browser;
use crate::logic;

/// The map's zoom and canvases (the map, and the crosshair over it).
pub(super) struct MapState {
    pub(super) zoom: f32,
    pub(super) canvas: NodeRef,
    overlay: NodeRef,
}

impl Default for MapState {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            canvas: NodeRef::default(),
            overlay: NodeRef::default(),
        }
    }
}

impl App {
    pub(super) fn paint_map(&self) {
        let (Some(d), Some(canvas)) =
            (&self.distances, self.map.canvas.cast::<HtmlCanvasElement>())
        else {
            return;
        };
        let n = (d.len() as f64).sqrt() as u32;
        let max = logic::distance_scale_max(d);
        if let Err(e) = browser::paint(&canvas, &logic::distance_rgba(d, max), n, n) {
            web_sys::console::warn_1(&e.to_string().into());
        }
        self.paint_overlay();
    }

    /// Crosshair on the map for the hovered residue(s).
    pub(super) fn paint_overlay(&self) {
        let Some(canvas) = self.map.overlay.cast::<HtmlCanvasElement>() else {
            return;
        };
        let Some(chain) = self.chain() else { return };
        let n = chain.len() as u32;
        canvas.set_width(n.max(1));
        canvas.set_height(n.max(1));
        let Ok(ctx) = browser::context_2d(&canvas) else {
            return;
        };
        ctx.clear_rect(0.0, 0.0, n as f64, n as f64);
        if let Some((i, j)) = self.hover {
            ctx.set_fill_style_str("rgba(255, 61, 200, 0.45)");
            let line = (n as f64 / 300.0).max(1.0);
            let j = j.unwrap_or(i);
            ctx.fill_rect(0.0, i as f64, n as f64, line);
            ctx.fill_rect(j as f64, 0.0, line, n as f64);
            if j != i {
                ctx.fill_rect(0.0, j as f64, n as f64, line);
                ctx.fill_rect(i as f64, 0.0, line, n as f64);
            }
        }
    }

    pub(super) fn view_map(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let n = self.chain().map(|c| c.len()).unwrap_or(0);
        let onmove = link.callback(move |e: MouseEvent| {
            let Some(t) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            else {
                return Msg::Nothing;
            };
            let r = t.get_bounding_client_rect();
            let fx = (e.client_x() as f64 - r.left()) / r.width().max(1.0);
            let fy = (e.client_y() as f64 - r.top()) / r.height().max(1.0);
            if n == 0 || !(0.0..1.0).contains(&fx) || !(0.0..1.0).contains(&fy) {
                return Msg::HoverMap(None);
            }
            Msg::HoverMap(Some(((fy * n as f64) as usize, (fx * n as f64) as usize)))
        });
        let onzoom = link.callback(|e: InputEvent| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::MapZoom(s.value().parse().unwrap_or(1.0))
        });
        let legend = self
            .distances
            .as_ref()
            .map(|d| legend_html(&logic::distance_legend(logic::distance_scale_max(d))));
        let size = format!("width:{:.0}%", 100.0 * self.map.zoom);
        html! {
            <section class="panel map">
                <div class="panel-head">
                    <h2>{ "C-alpha distance map" }</h2>
                    <div class="tools">
                        <label class="check" title="zoom">{ "zoom " }
                            <input type="range" min="1" max="8" step="0.5" value={self.map.zoom.to_string()} oninput={onzoom} />
                        </label>
                        <button onclick={link.callback(|_| Msg::Export(Export::MapPng))}>{ "PNG" }</button>
                    </div>
                </div>
                <div class="map-scroll">
                    <div class="map-stack" style={size}>
                        <canvas ref={self.map.canvas.clone()} data-testid="distance-map" class="map-canvas"
                            onmousemove={onmove} onmouseleave={link.callback(|_| Msg::HoverMap(None))} />
                        <canvas ref={self.map.overlay.clone()} class="map-overlay" />
                    </div>
                </div>
                <div class="under">
                    { legend.unwrap_or_default() }
                    <span class="hover">{ if self.hover.is_some_and(|h| h.1.is_some()) { self.hover_text() } else { String::new() } }</span>
                </div>
            </section>
        }
    }
}
