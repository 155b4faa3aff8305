//! The 3D view: the C-alpha trace (and the model's other chains around it), the score arrows
//! and hover markers (`crate::viewer` on WebGPU or WebGL 2), the colouring and its legend, camera gestures
//! (orbit, pan, pinch, wheel) and spin.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use foldspace::structure::{BFactorKind, Chain};
use wasm_bindgen::JsCast;
use web_sys::{HtmlCanvasElement, HtmlSelectElement};
use yew::prelude::*;

use super::export::Export;
use super::{App, Msg};
use crate::browser;
use crate::logic::{self, ColorMode, Legend, PLAUSIBILITY_NOTE, PLAUSIBILITY_SIGMA};
use crate::scene::{self, Camera};
use crate::viewer::{Layer, Viewer};

/// Colour slots after the residues: arrows, then highlighted residues.
const ARROW_COLOR: [u8; 3] = [0xe6, 0xf0, 0xff];
const HIGHLIGHT_COLOR: [u8; 3] = [0xff, 0x3d, 0xc8];

/// What the 3D view holds.
pub(super) struct ViewState {
    pub(super) viewer: Option<Rc<RefCell<Viewer>>>,
    /// Why there is no 3D view (neither WebGPU nor WebGL 2).
    viewer_error: Option<String>,
    pub(super) color: ColorMode,
    arrows: bool,
    /// Whether the other chains of the model are drawn around the chain on screen.
    context: bool,
    /// Length of the longest arrows (Å).
    arrow_length: f32,
    /// Pointers down on the canvas (id → position) and the dragging button.
    pointers: HashMap<i32, (f32, f32)>,
    drag_button: i16,
    spin: Option<gloo::render::AnimationFrame>,
    /// (start ms, frames, last frame ms) of the current fps window, and the last rate.
    frames: (f64, u32, f64),
    fps: Option<f64>,
    pub(super) canvas: NodeRef,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            viewer: None,
            viewer_error: None,
            color: ColorMode::Chain,
            arrows: true,
            context: true,
            arrow_length: 3.0,
            pointers: HashMap::new(),
            drag_button: 0,
            spin: None,
            frames: (0.0, 0, 0.0),
            fps: None,
            canvas: NodeRef::default(),
        }
    }
}

/// The 3D view's messages.
pub enum ViewMsg {
    /// The viewer (WebGPU or WebGL 2) is ready, or why not.
    Ready(Result<Rc<RefCell<Viewer>>, String>),
    SetColor(ColorMode),
    ToggleArrows,
    ToggleContext,
    ArrowLength(f32),
    Pointer(&'static str, web_sys::PointerEvent),
    Wheel(web_sys::WheelEvent),
    ResetView,
    ToggleSpin,
    Frame(f64),
}

impl App {
    pub(super) fn update_view(&mut self, ctx: &Context<Self>, msg: ViewMsg) -> bool {
        match msg {
            ViewMsg::Ready(result) => match result {
                Ok(v) => {
                    self.view3d.viewer = Some(v);
                    self.refresh_scene(true);
                }
                Err(e) => self.view3d.viewer_error = Some(e),
            },
            ViewMsg::SetColor(mode) => {
                self.view3d.color = mode;
                self.refresh_scene(false);
                self.kick(ctx);
            }
            ViewMsg::ToggleArrows => {
                self.view3d.arrows = !self.view3d.arrows;
                self.refresh_scene(false);
            }
            ViewMsg::ToggleContext => {
                // The camera stays (Reset view frames what is drawn).
                self.view3d.context = !self.view3d.context;
                self.refresh_scene(false);
            }
            ViewMsg::ArrowLength(v) => {
                self.view3d.arrow_length = v;
                self.refresh_scene(false);
            }
            ViewMsg::Pointer(kind, e) => return self.pointer(kind, e),
            ViewMsg::Wheel(e) => {
                e.prevent_default();
                if let Some(v) = &self.view3d.viewer {
                    let mut v = v.borrow_mut();
                    v.camera.zoom((e.delta_y() as f32 * 0.0015).exp());
                    v.render();
                }
                return false;
            }
            ViewMsg::ResetView => {
                self.refresh_scene(true);
                return false;
            }
            ViewMsg::ToggleSpin => {
                if self.view3d.spin.take().is_none() {
                    self.view3d.frames = (browser::now_ms(), 0, 0.0);
                    let link = ctx.link().clone();
                    self.view3d.spin = Some(gloo::render::request_animation_frame(move |t| {
                        link.send_message(Msg::View(ViewMsg::Frame(t)))
                    }));
                } else {
                    self.view3d.fps = None;
                }
            }
            ViewMsg::Frame(t) => {
                if self.view3d.spin.is_none() {
                    return false;
                }
                if let Some(v) = &self.view3d.viewer {
                    let mut v = v.borrow_mut();
                    let dt = if self.view3d.frames.2 > 0.0 {
                        t - self.view3d.frames.2
                    } else {
                        16.0
                    };
                    v.camera.orbit((dt as f32 * 0.04).min(4.0), 0.0);
                    v.render();
                }
                self.view3d.frames.2 = t;
                self.view3d.frames.1 += 1;
                let elapsed = browser::now_ms() - self.view3d.frames.0;
                let link = ctx.link().clone();
                self.view3d.spin = Some(gloo::render::request_animation_frame(move |t| {
                    link.send_message(Msg::View(ViewMsg::Frame(t)))
                }));
                if elapsed > 1000.0 {
                    self.view3d.fps = Some(self.view3d.frames.1 as f64 * 1000.0 / elapsed);
                    self.view3d.frames = (browser::now_ms(), 0, t);
                    return true;
                }
                return false;
            }
        }
        true
    }

    /// Rebuild the 3D meshes and colours from the current state.
    pub(super) fn refresh_scene(&self, refit: bool) {
        let Some(viewer) = &self.view3d.viewer else {
            return;
        };
        let Some(chain) = self.chain() else { return };
        let mut v = viewer.borrow_mut();
        let coords = self.coords();
        let max_gap = if self.display.is_some() {
            f32::INFINITY
        } else {
            4.5
        };
        let mut trace = scene::tube(coords, 0.42, 6, 10, max_gap);
        let l = chain.len();
        let (mut colors, _) = self.residue_colors(chain);
        colors.push(ARROW_COLOR);
        colors.push(HIGHLIGHT_COLOR);
        // The other chains, thinner and in their own slots after the fixed ones.
        let others = self.context_chains();
        let context: Vec<&[[f32; 3]]> = others.iter().map(|(_, c)| c.ca.as_slice()).collect();
        trace.extend(&scene::context_tubes(&context, l as u32 + 2, 0.3, 4.5));
        colors.extend(
            others
                .iter()
                .map(|(k, _)| logic::context_color(self.view3d.color, *k)),
        );
        v.set_colors(&colors);
        v.set_mesh(Layer::Trace, &trace);
        let arrows = match (
            &self.embedding,
            self.view3d.arrows && self.display.is_none(),
        ) {
            (Some(e), true) if e.length == l => {
                let norms = e.gradient_norms();
                let (_, hi) = logic::robust_range(&norms);
                let scale = self.view3d.arrow_length / hi.max(1e-12);
                scene::field_arrows(
                    coords,
                    &e.gradient,
                    scale,
                    self.view3d.arrow_length * 1.5,
                    l as u32,
                )
            }
            _ => scene::Mesh::default(),
        };
        v.set_mesh(Layer::Arrows, &arrows);
        v.set_mesh(Layer::Markers, &self.markers());
        if refit {
            // Frame the whole model when the other chains are drawn.
            let all: Vec<[f32; 3]> = coords
                .iter()
                .chain(context.iter().flat_map(|c| c.iter()))
                .copied()
                .collect();
            v.camera = Camera::fit(&all);
            v.radius = scene::bounds(&all).1;
        }
        v.render();
    }

    /// The other protein chains of the model (index in the chain list, chain) when they are
    /// drawn: the toggle is on and the view shows the structure itself, not a refinement (whose
    /// frame is its own).
    fn context_chains(&self) -> Vec<(usize, &Chain)> {
        if !self.view3d.context || self.display.is_some() {
            return Vec::new();
        }
        self.structure
            .as_ref()
            .map(|s| {
                s.first_model_chains()
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != self.chain_index)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Spheres on the hovered residue(s), in the highlight colour slot.
    pub(super) fn markers(&self) -> scene::Mesh {
        let coords = self.coords();
        let slot = self.chain().map_or(0, |c| c.len()) as u32 + 1;
        let mut markers = scene::Mesh::default();
        if let Some((i, j)) = self.hover {
            for k in std::iter::once(i).chain(j) {
                if let Some(p) = coords.get(k) {
                    markers.extend(&scene::sphere(*p, 1.1, slot, 2));
                }
            }
        }
        markers
    }

    /// After a hover change: only the markers and the map's crosshair change.
    pub(super) fn refresh_hover(&self) {
        if let Some(viewer) = &self.view3d.viewer {
            let mut v = viewer.borrow_mut();
            v.set_mesh(Layer::Markers, &self.markers());
            v.render();
        }
        self.paint_overlay();
    }

    pub(super) fn residue_colors(&self, chain: &Chain) -> (Vec<[u8; 3]>, Legend) {
        let norms = match self.view3d.color {
            ColorMode::Plausibility => self
                .plausibility
                .as_ref()
                .filter(|(job, _)| *job == self.model_job)
                .map(|(_, v)| v.to_vec()),
            _ => self.embedding.as_ref().map(|e| e.gradient_norms()),
        };
        let kind = self
            .structure
            .as_ref()
            .map(|s| s.b_factor_kind)
            .unwrap_or(BFactorKind::Temperature);
        logic::residue_colors(
            self.view3d.color,
            chain,
            self.chain_index,
            kind,
            norms.as_deref(),
        )
    }

    pub(super) fn pointer(&mut self, kind: &'static str, e: web_sys::PointerEvent) -> bool {
        let Some(viewer) = self.view3d.viewer.clone() else {
            return false;
        };
        let (x, y) = (e.offset_x() as f32, e.offset_y() as f32);
        let id = e.pointer_id();
        match kind {
            "down" => {
                if let Some(t) = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                {
                    // Without the capture a drag that leaves the canvas ends there: harmless.
                    if t.set_pointer_capture(id).is_err() {
                        web_sys::console::warn_1(&"pointer capture refused".into());
                    }
                }
                self.view3d.drag_button = if e.button() == 2 || e.shift_key() {
                    2
                } else {
                    0
                };
                self.view3d.pointers.insert(id, (x, y));
                false
            }
            "up" | "cancel" => {
                self.view3d.pointers.remove(&id);
                false
            }
            "move" => {
                let mut v = viewer.borrow_mut();
                let Some(&(px, py)) = self.view3d.pointers.get(&id) else {
                    // Hover: pick the residue under the pointer.
                    let (Some(canvas), true) = (
                        self.view3d.canvas.cast::<HtmlCanvasElement>(),
                        self.display.is_none(),
                    ) else {
                        return false;
                    };
                    let (w, h) = (canvas.client_width() as f32, canvas.client_height() as f32);
                    let coords = self.coords();
                    let picked = scene::pick(coords, &v.camera, w, h, x, y, 10.0);
                    let hover = picked.map(|i| (i, None));
                    if hover == self.hover {
                        return false;
                    }
                    drop(v);
                    self.hover = hover;
                    self.refresh_hover();
                    return true;
                };
                let (dx, dy) = (x - px, y - py);
                if self.view3d.pointers.len() >= 2 {
                    // Pinch: zoom by the change of distance to the other pointer, pan by half the move.
                    let other = self
                        .view3d
                        .pointers
                        .iter()
                        .find(|(k, _)| **k != id)
                        .map(|(_, p)| *p)
                        .unwrap_or((x, y));
                    let before = ((px - other.0).powi(2) + (py - other.1).powi(2)).sqrt();
                    let after = ((x - other.0).powi(2) + (y - other.1).powi(2)).sqrt();
                    if before > 1.0 && after > 1.0 {
                        v.camera.zoom(before / after);
                    }
                    let h = v.size().1 as f32;
                    v.camera.pan(dx * 0.5, dy * 0.5, h / device_ratio());
                } else if self.view3d.drag_button == 2 {
                    let h = v.size().1 as f32;
                    v.camera.pan(dx, dy, h / device_ratio());
                } else {
                    v.camera.orbit(dx, dy);
                }
                self.view3d.pointers.insert(id, (x, y));
                v.render();
                false
            }
            "leave" => {
                if self.hover.is_some() && self.view3d.pointers.is_empty() {
                    self.hover = None;
                    self.refresh_hover();
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    pub(super) fn view_3d(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let several_chains = self
            .structure
            .as_ref()
            .is_some_and(|s| s.first_model_chains().len() > 1);
        let legend = self.chain().map(|c| {
            let (_, mut legend) = self.residue_colors(c);
            // By chain, the other chains drawn have swatches too.
            if let Legend::Swatches(_, items) = &mut legend
                && self.view3d.color == ColorMode::Chain
            {
                items.extend(self.context_chains().iter().map(|(k, other)| {
                    (
                        format!("chain {}", other.id),
                        logic::context_color(ColorMode::Chain, *k),
                    )
                }));
            }
            legend_html(&legend)
        });
        let oncolor = link.callback(|e: Event| {
            let s: HtmlSelectElement = e.target_unchecked_into();
            Msg::View(ViewMsg::SetColor(ColorMode::parse(&s.value())))
        });
        let onarrowlen = link.batch_callback(|e: InputEvent| {
            browser::input_value(&e).map(|l| Msg::View(ViewMsg::ArrowLength(l)))
        });
        let hover_text = self.hover_text();
        let fps = self
            .view3d
            .fps
            .map(|f| format!("{f:.0}"))
            .unwrap_or_default();
        let renderer = self
            .view3d
            .viewer
            .as_ref()
            .map(|v| v.borrow().renderer().name())
            .unwrap_or_default();
        html! {
            <section class="panel view3d">
                <div class="panel-head">
                    <h2>{ "3D view" }</h2>
                    <div class="tools">
                        <select onchange={oncolor} title="colour the trace by">
                            <option value="chain" selected={self.view3d.color == ColorMode::Chain}>{ "colour: chain" }</option>
                            <option value="bfactor" selected={self.view3d.color == ColorMode::BFactor}>{ "colour: B-factor / pLDDT" }</option>
                            <option value="score" selected={self.view3d.color == ColorMode::Score}>{ "colour: score ‖g‖" }</option>
                            <option value="plausibility" selected={self.view3d.color == ColorMode::Plausibility}>{ format!("colour: plausibility (σ ≈ {PLAUSIBILITY_SIGMA:.2} Å)") }</option>
                        </select>
                        <label class="check"><input type="checkbox" checked={self.view3d.arrows} onchange={link.callback(|_| Msg::View(ViewMsg::ToggleArrows))} />{ " arrows" }</label>
                        if several_chains {
                            <label class="check" title="draw the model's other chains, thinner, around the chain on screen"><input type="checkbox" data-testid="context-chains" checked={self.view3d.context} onchange={link.callback(|_| Msg::View(ViewMsg::ToggleContext))} />{ " other chains" }</label>
                        }
                        <label class="check" title="length of the longest arrows (Å)">
                            <input type="range" min="0.5" max="10" step="0.5" value={self.view3d.arrow_length.to_string()} oninput={onarrowlen} />
                        </label>
                        <button onclick={link.callback(|_| Msg::View(ViewMsg::ResetView))}>{ "Reset view" }</button>
                        <button onclick={link.callback(|_| Msg::View(ViewMsg::ToggleSpin))}>{ if self.view3d.spin.is_some() { "Stop spin" } else { "Spin" } }</button>
                        <button onclick={link.callback(|_| Msg::Export(Export::Png))}>{ "PNG" }</button>
                    </div>
                </div>
                <div class="canvas-wrap">
                    <canvas ref={self.view3d.canvas.clone()} data-testid="viewer-3d" data-fps={fps.clone()} data-renderer={renderer}
                        onpointerdown={link.callback(|e| Msg::View(ViewMsg::Pointer("down", e)))}
                        onpointermove={link.callback(|e| Msg::View(ViewMsg::Pointer("move", e)))}
                        onpointerup={link.callback(|e| Msg::View(ViewMsg::Pointer("up", e)))}
                        onpointercancel={link.callback(|e| Msg::View(ViewMsg::Pointer("cancel", e)))}
                        onpointerleave={link.callback(|e| Msg::View(ViewMsg::Pointer("leave", e)))}
                        oncontextmenu={Callback::from(|e: MouseEvent| e.prevent_default())}
                        onwheel={link.callback(|e| Msg::View(ViewMsg::Wheel(e)))} />
                    if let Some(e) = &self.view3d.viewer_error {
                        <div class="overlay-note">{ format!("No 3D view: {e}") }</div>
                    } else if self.structure.is_none() {
                        <div class="overlay-note muted">{ "drag to rotate · right-drag or shift-drag to pan · wheel or pinch to zoom" }</div>
                    }
                    if !fps.is_empty() { <div class="fps">{ format!("{fps} fps") }</div> }
                </div>
                <div class="under">
                    { legend.unwrap_or_default() }
                    <span class="hover">{ hover_text }</span>
                    if !renderer.is_empty() {
                        <span class="muted small" data-testid="viewer-renderer" title="the browser API drawing the 3D view (?view=webgl or ?view=webgpu chooses)">{ renderer }</span>
                    }
                </div>
                if self.view3d.color == ColorMode::Plausibility {
                    <details class="muted small" data-testid="plausibility-note">
                        <summary>{ "How good is this?" }</summary>
                        <p>{ PLAUSIBILITY_NOTE }{ " " }
                            <a href="docs/EVALUATION.txt" target="_blank" rel="noopener">{ "The tables and the command (EVALUATION.md)" }</a>{ "." }</p>
                    </details>
                }
            </section>
        }
    }

    pub(super) fn hover_text(&self) -> String {
        let (Some(chain), Some((i, j))) = (self.chain(), self.hover) else {
            return String::new();
        };
        let name = |k: usize| {
            format!(
                "{} {}",
                chain
                    .residue_names
                    .get(k)
                    .map(String::as_str)
                    .unwrap_or("?"),
                chain
                    .residue_numbers
                    .get(k)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )
        };
        let norm = |k: usize| {
            self.embedding
                .as_ref()
                .filter(|e| e.length == chain.len())
                .and_then(|e| e.gradient.get(3 * k..3 * k + 3))
                .map(|g| {
                    format!(
                        " · ‖g‖ {:.3}",
                        (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt()
                    )
                })
                .unwrap_or_default()
        };
        match j {
            Some(j) => {
                let d = self
                    .distances
                    .as_ref()
                    .and_then(|d| d.get(i * chain.len() + j).copied())
                    .map(|d| format!(" · {d:.2} Å"))
                    .unwrap_or_default();
                format!("i {i} ({}) · j {j} ({}){d}", name(i), name(j))
            }
            None => format!("residue {i} ({}){}", name(i), norm(i)),
        }
    }
}

pub(super) fn legend_html(legend: &Legend) -> Html {
    match legend {
        Legend::Swatches(title, items) => html! {
            <div class="legend">
                <span class="legend-title">{ title.clone() }</span>
                { for items.iter().map(|(label, c)| html! {
                    <span class="swatch"><i style={format!("background:{}", logic::hex(*c))}></i>{ label.clone() }</span>
                }) }
            </div>
        },
        Legend::Gradient(title, lo, hi, ramp) => html! {
            <div class="legend">
                <span class="legend-title">{ title.clone() }</span>
                <span class="ramp-label">{ lo.clone() }</span>
                <span class="ramp" style={format!("background:{}", logic::css_gradient(ramp))}></span>
                <span class="ramp-label">{ hi.clone() }</span>
            </div>
        },
    }
}

pub(super) fn device_ratio() -> f32 {
    web_sys::window()
        .map(|w| w.device_pixel_ratio() as f32)
        .unwrap_or(1.0)
        .min(2.0)
}
