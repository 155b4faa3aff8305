//! The per-residue plot along the sequence: the model's plausibility (‖g‖ at σ ≈ 0.56 Å averaged
//! over each residue's 15 Å neighbourhood: high where the model would move the residues around it
//! most, i.e. doubts them), and pLDDT where the file has it.
//! Linked by hover with the 3D view and the distance map: hovering a residue here highlights it
//! there, and hovering there moves the plot's marker.

use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use super::{App, Msg};
use crate::browser;
use crate::logic::{self, PLAUSIBILITY_SIGMA};
use foldspace::structure::BFactorKind;

/// Height of the plot in CSS pixels.
const PLOT_PX: f64 = 90.0;
/// Colours of the two series and the marker.
const PLAUSIBILITY_COLOR: &str = "#ffb020";
const PLDDT_COLOR: &str = "#4fb3ff";
const MARKER_COLOR: &str = "#ff3dc8";

impl App {
    /// ‖g‖ at σ ≈ 0.56 Å (15 Å neighbourhood mean) for the current chain, once computed.
    fn plausibility_values(&self) -> Option<&[f32]> {
        self.plausibility
            .as_ref()
            .filter(|(job, _)| *job == self.model_job)
            .map(|(_, v)| v.as_slice())
    }

    /// pLDDT per residue when the file's B-factor column holds it.
    fn plddt_values(&self) -> Option<&[f32]> {
        let kind = self.structure.as_ref()?.b_factor_kind;
        (kind == BFactorKind::Plddt).then_some(())?;
        self.chain().map(|c| c.b_factors.as_slice())
    }

    /// Draw the plot at the canvas's size: plausibility on its robust range (top = most
    /// doubted), pLDDT on 0–100 (top = 100), the hovered residue as a vertical line.
    pub(super) fn paint_residue_plot(&self) {
        let Some(canvas) = self.residue_plot.cast::<HtmlCanvasElement>() else {
            return;
        };
        let Some(n) = self.chain().map(|c| c.len()).filter(|&n| n > 0) else {
            return;
        };
        let ratio = f64::from(super::device_ratio());
        let width = f64::from(canvas.client_width().max(1));
        canvas.set_width((width * ratio) as u32);
        canvas.set_height((PLOT_PX * ratio) as u32);
        let Ok(g) = browser::context_2d(&canvas) else {
            return;
        };
        browser::warn_on_err("residue plot scale", g.scale(ratio, ratio));
        g.clear_rect(0.0, 0.0, width, PLOT_PX);
        let x = |i: usize| (i as f64 + 0.5) * width / n as f64;
        let (top, bottom) = (6.0, PLOT_PX - 6.0);
        let line = |values: &[f32], lo: f32, hi: f32, color: &str| {
            let span = f64::from((hi - lo).max(1e-9));
            g.begin_path();
            for (i, &v) in values.iter().enumerate().take(n) {
                let t = (f64::from(v - lo) / span).clamp(0.0, 1.0);
                let y = bottom - t * (bottom - top);
                if i == 0 {
                    g.move_to(x(i), y);
                } else {
                    g.line_to(x(i), y);
                }
            }
            g.set_stroke_style_str(color);
            g.set_line_width(1.5);
            g.stroke();
        };
        if let Some(p) = self.plddt_values() {
            line(p, 0.0, 100.0, PLDDT_COLOR);
        }
        if let Some(v) = self.plausibility_values() {
            let (lo, hi) = logic::robust_range(v);
            line(v, lo, hi, PLAUSIBILITY_COLOR);
        }
        if let Some((i, _)) = self.hover.filter(|(i, _)| *i < n) {
            g.set_fill_style_str(MARKER_COLOR);
            let w = (width / n as f64).max(2.0);
            g.fill_rect(x(i) - w / 2.0, 0.0, w, PLOT_PX);
        }
    }

    pub(super) fn view_residue_plot(&self, ctx: &Context<Self>) -> Html {
        let Some(chain) = self.chain() else {
            return html! {};
        };
        let plddt = self.plddt_values().is_some();
        let plausibility = self.plausibility_values().is_some();
        let hovered = self.hover.map(|(i, _)| i.to_string()).unwrap_or_default();
        let link = ctx.link();
        let onmove = {
            let n = chain.len();
            link.callback(move |e: web_sys::PointerEvent| {
                let width = e
                    .target_dyn_into::<HtmlCanvasElement>()
                    .map_or(0.0, |c| f64::from(c.client_width()));
                match logic::residue_at(f64::from(e.offset_x()), width, n) {
                    Some(i) => Msg::HoverResidue(Some(i)),
                    None => Msg::Nothing,
                }
            })
        };
        let onleave = link.callback(|_| Msg::HoverResidue(None));
        html! {
            <section class="panel residues" data-testid="residue-panel">
                <div class="panel-head">
                    <h2>{ "Along the sequence" }</h2>
                    <span class="legend">
                        <span class="swatch"><i style={format!("background:{PLAUSIBILITY_COLOR}")}></i>
                            { if plausibility { format!("plausibility ‖g‖ at σ ≈ {PLAUSIBILITY_SIGMA:.2} Å, mean within 15 Å (higher: the model doubts it more)") } else { "plausibility: computing after the embedding…".to_string() } }</span>
                        if plddt {
                            <span class="swatch"><i style={format!("background:{PLDDT_COLOR}")}></i>{ "pLDDT (0–100, from the file)" }</span>
                        }
                    </span>
                </div>
                <canvas ref={self.residue_plot.clone()} class="residue-plot" data-testid="residue-plot"
                        data-hovered={hovered} onpointermove={onmove} onpointerleave={onleave}></canvas>
                <div class="under"><span class="hover" data-testid="residue-hover">{
                    if self.hover.is_some_and(|(_, j)| j.is_none()) { self.hover_text() } else { String::new() }
                }</span></div>
            </section>
        }
    }
}
