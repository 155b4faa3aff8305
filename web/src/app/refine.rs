//! Refinement: annealed Langevin dynamics on the chain's C-alpha coordinates with the score
//! model (`foldspace::score::refine`), its settings, progress and the model panel's controls.

use foldspace::geometry::superpose;
use foldspace::score::refine::{Schedule, Step, random_cloud};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::{App, Msg};
use crate::browser;
use crate::error::PageResult;
use crate::model::Stopper;

/// Refinement in progress or finished.
pub(super) struct Refinement {
    stop: Stopper,
    running: bool,
    done: usize,
    total: usize,
    sigma: f32,
    rmsd: Option<f32>,
    from_noise: bool,
}

/// The refinement settings and the run in progress or finished.
pub(super) struct RefineState {
    pub(super) run: Option<Refinement>,
    /// The noise level it starts from, steps per level, and whether from a random cloud.
    level: usize,
    steps: usize,
    from_noise: bool,
}

impl Default for RefineState {
    fn default() -> Self {
        Self {
            run: None,
            level: 40,
            steps: 3,
            from_noise: false,
        }
    }
}

impl RefineState {
    /// Whether a refinement is running.
    pub(super) fn running(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.running)
    }
}

/// Refinement's messages.
pub enum RefineMsg {
    StartLevel(usize),
    /// Steps per level; `None` (a field left unreadable) shows the current value again.
    Steps(Option<usize>),
    FromNoise(bool),
    Start,
    Stop,
    /// Coordinates after a step, and where the run is.
    Step(Vec<[f32; 3]>, Step),
    Done(PageResult<Vec<[f32; 3]>>),
    /// Back to the structure's own coordinates.
    ShowStructure,
}

impl App {
    pub(super) fn update_refine(&mut self, ctx: &Context<Self>, msg: RefineMsg) -> bool {
        match msg {
            RefineMsg::StartLevel(l) => self.refine.level = l,
            RefineMsg::Steps(Some(s)) => self.refine.steps = s.clamp(1, 50),
            RefineMsg::Steps(None) => {}
            RefineMsg::FromNoise(b) => self.refine.from_noise = b,
            RefineMsg::Start => self.start_refinement(ctx),
            RefineMsg::Stop => self.stop_refinement(),
            // A run the page let go of (another chain, back to the structure) draws nothing.
            RefineMsg::Step(..) | RefineMsg::Done(_) if self.refine.run.is_none() => {
                self.kick(ctx);
                return false;
            }
            RefineMsg::Step(coords, step) => {
                let reference = self.chain().map(|c| c.ca.clone()).unwrap_or_default();
                let rmsd = superpose(&coords, &reference).map(|s| s.rmsd);
                self.display = Some(align_to(&coords, &reference));
                if let Some(r) = &mut self.refine.run {
                    r.done = step.done;
                    r.total = step.total;
                    r.sigma = step.sigma;
                    r.rmsd = rmsd;
                }
                self.refresh_scene(false);
            }
            RefineMsg::Done(result) => {
                let reference = self.chain().map(|c| c.ca.clone()).unwrap_or_default();
                match result {
                    Ok(coords) => {
                        let rmsd = superpose(&coords, &reference).map(|s| s.rmsd);
                        self.display = Some(align_to(&coords, &reference));
                        if let Some(r) = &mut self.refine.run {
                            r.running = false;
                            r.rmsd = rmsd;
                        }
                    }
                    Err(e) => {
                        self.refine.run = None;
                        self.display = None;
                        self.fail(e.during("refinement failed"));
                    }
                }
                self.refresh_scene(false);
                self.kick(ctx);
            }
            RefineMsg::ShowStructure => {
                self.stop_refinement();
                self.refine.run = None;
                self.display = None;
                self.refresh_scene(false);
            }
        }
        true
    }

    pub(super) fn stop_refinement(&mut self) {
        if let Some(r) = &self.refine.run {
            r.stop.stop();
        }
    }

    fn start_refinement(&mut self, ctx: &Context<Self>) {
        let (Some(network), Some(chain)) = (self.network.clone(), self.chain().cloned()) else {
            return;
        };
        if chain.len() > self.model_limit() || chain.len() < 2 {
            return;
        }
        let levels = network.sigmas().len();
        if levels == 0 {
            return;
        }
        let start_level = if self.refine.from_noise {
            0
        } else {
            self.refine.level.min(levels.saturating_sub(1))
        };
        let schedule = Schedule {
            start_level,
            iterations: self.refine.steps.max(1),
            ..Schedule::reference(start_level)
        };
        let start = if self.refine.from_noise {
            random_cloud(chain.len(), js_sys::Date::now() as u64)
        } else {
            chain.ca.clone()
        };
        self.display = Some(align_to(&start, &chain.ca));
        self.hover = None;
        let link = ctx.link().clone();
        let (stop, run) = network.refine(
            chain.sequence.clone(),
            start,
            schedule,
            7,
            move |coords, step| link.send_message(Msg::Refine(RefineMsg::Step(coords, step))),
        );
        self.refine.run = Some(Refinement {
            stop,
            running: true,
            done: 0,
            total: schedule.total_steps(levels),
            sigma: network.sigmas()[start_level],
            rmsd: None,
            from_noise: self.refine.from_noise,
        });
        ctx.link()
            .send_future(async move { Msg::Refine(RefineMsg::Done(run.await)) });
    }

    /// The refinement controls of the model panel.
    pub(super) fn view_refine(&self, ctx: &Context<Self>, levels: usize) -> Html {
        let link = ctx.link();
        // The state follows each input event (`browser::input_value`; seen in CI: a value typed
        // while the page re-rendered was lost, and 3 steps ran instead of 1).
        let onrefine_level = link.batch_callback(|e: InputEvent| {
            browser::input_value(&e).map(|l| Msg::Refine(RefineMsg::StartLevel(l)))
        });
        // While typing, an unreadable field (empty, "-") changes nothing; on `change` it shows the
        // value in use again.
        let onsteps_input = link.batch_callback(|e: InputEvent| {
            browser::input_value(&e).map(|n| Msg::Refine(RefineMsg::Steps(Some(n))))
        });
        let onsteps =
            link.callback(|e: Event| Msg::Refine(RefineMsg::Steps(browser::input_value(&e))));
        let onnoise = link.callback(|e: Event| {
            let s: HtmlInputElement = e.target_unchecked_into();
            Msg::Refine(RefineMsg::FromNoise(s.checked()))
        });
        let running = self.refine.running();
        let can_refine = self.network.is_some()
            && self
                .chain()
                .is_some_and(|c| c.len() >= 2 && c.len() <= self.model_limit())
            && self.embed_running.is_none();
        let refine_text = self.refine.run.as_ref().map(|r| {
            format!(
                "{}{} / {} steps · σ {:.3} Å{}",
                if r.from_noise { "from noise · " } else { "" },
                r.done,
                r.total,
                r.sigma,
                r.rmsd
                    .map(|x| format!(" · RMSD to the structure {x:.2} Å"))
                    .unwrap_or_default()
            )
        });
        html! {
            <>
                    <h3>{ "Refinement (annealed Langevin dynamics)" }</h3>
                    <label class="row">{ "start level " }
                        <input type="range" min="0" max={levels.saturating_sub(1).to_string()} value={self.refine.level.to_string()}
                            disabled={self.refine.from_noise} oninput={onrefine_level} />
                        <span class="value">{ format!("{} · σ {}", self.refine.level, self.sigma_label(self.refine.level)) }</span>
                    </label>
                    <label class="row">{ "steps per level " }
                        <input type="number" min="1" max="50" value={self.refine.steps.to_string()}
                            oninput={onsteps_input} onchange={onsteps} />
                    </label>
                    <label class="row check"><input type="checkbox" checked={self.refine.from_noise} onchange={onnoise} />{ " from noise (a random cloud, all levels)" }</label>
                    <div class="row">
                        if running {
                            <button class="danger" onclick={link.callback(|_| Msg::Refine(RefineMsg::Stop))}>{ "Stop" }</button>
                        } else {
                            <button data-testid="refine" class="primary" disabled={!can_refine} onclick={link.callback(|_| Msg::Refine(RefineMsg::Start))}>{ "Refine" }</button>
                        }
                        if self.display.is_some() && !running {
                            <button onclick={link.callback(|_| Msg::Refine(RefineMsg::ShowStructure))}>{ "Back to the structure" }</button>
                        }
                    </div>
                    if let Some(t) = refine_text { <div class="refine-status" data-testid="refine-status">{ t }</div> }
            </>
        }
    }
}

/// `coords` superposed onto `reference` (unchanged if they cannot be).
fn align_to(coords: &[[f32; 3]], reference: &[[f32; 3]]) -> Vec<[f32; 3]> {
    match superpose(coords, reference) {
        Some(s) => coords.iter().map(|p| s.apply(*p)).collect(),
        None => coords.to_vec(),
    }
}
