//! The 3D view: draws the meshes of [`crate::scene`] on a canvas — positions and normals per
//! vertex, a colour slot per vertex looked up in a table (one slot per residue, then the arrow and
//! highlight colours), a headlight with a specular highlight, depth fog and multisampling. It
//! renders on demand (a change of camera, colours or meshes), never in a loop unless asked to
//! spin. WebGPU draws it where the browser has it ([`webgpu`]); WebGL 2 otherwise ([`webgl`]),
//! with the same meshes, colour table, camera and lighting (the two shaders are a line-for-line
//! translation; a browser test compares their frames).

mod webgl;
mod webgpu;

use web_sys::HtmlCanvasElement;

pub use crate::logic::Renderer;
use crate::scene::{Camera, Mesh};

/// Background colour of the view (sRGB 0..1), matching the page's panel colour.
pub const BACKGROUND: [f32; 3] = [0.043, 0.063, 0.102];

/// What both shaders read each frame.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Globals {
    view_proj: [[f32; 4]; 4],
    view: [[f32; 4]; 4],
    fog: [f32; 4],
    background: [f32; 4],
}

/// Why the 3D view could not start.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// No WebGPU adapter.
    #[error("no WebGPU adapter: {0}")]
    Adapter(String),
    /// The device request failed.
    #[error("the GPU refused a device: {0}")]
    Device(String),
    /// The canvas could not become a surface.
    #[error("the canvas cannot show WebGPU output: {0}")]
    Surface(String),
    /// WebGL 2 is missing or failed to set up.
    #[error("WebGL 2: {0}")]
    WebGl(String),
    /// Neither API could draw.
    #[error("neither WebGPU ({webgpu}) nor WebGL 2 ({webgl}) could start")]
    Neither {
        /// Why WebGPU did not start.
        webgpu: Box<ViewerError>,
        /// Why WebGL 2 did not start.
        webgl: Box<ViewerError>,
    },
}

enum Gpu {
    WebGpu(Box<webgpu::WebGpu>),
    WebGl(webgl::WebGl),
}

/// The renderer of one canvas.
pub struct Viewer {
    canvas: HtmlCanvasElement,
    gpu: Gpu,
    /// The camera; change it and call [`Viewer::render`].
    pub camera: Camera,
    /// Fog strength 0..1.
    pub fog: f32,
    /// Radius of the molecule (Å): fog runs from its front to its back.
    pub radius: f32,
}

/// Which mesh layer: the trace, the score arrows, the highlight markers.
#[derive(Debug, Clone, Copy)]
pub enum Layer {
    /// The C-alpha tube.
    Trace = 0,
    /// Gradient arrows.
    Arrows = 1,
    /// Hover markers.
    Markers = 2,
}

impl Viewer {
    /// Start drawing on `canvas` with `only` if given, else WebGPU where the browser has it and
    /// WebGL 2 where it has not (or where WebGPU refuses an adapter or a device).
    pub async fn new(
        canvas: HtmlCanvasElement,
        only: Option<Renderer>,
    ) -> Result<Self, ViewerError> {
        let webgpu = if only == Some(Renderer::WebGl2) {
            Err(ViewerError::Adapter("not asked for (?view=webgl)".into()))
        } else if !crate::browser::has_webgpu() {
            Err(ViewerError::Adapter("this browser has no WebGPU".into()))
        } else {
            webgpu::WebGpu::new(&canvas).await
        };
        let gpu = match webgpu {
            Ok(w) => Gpu::WebGpu(Box::new(w)),
            Err(e) if only == Some(Renderer::WebGpu) => return Err(e),
            Err(webgpu) => match webgl::WebGl::new(&canvas) {
                Ok(g) => Gpu::WebGl(g),
                Err(webgl) => {
                    return Err(ViewerError::Neither {
                        webgpu: Box::new(webgpu),
                        webgl: Box::new(webgl),
                    });
                }
            },
        };
        Ok(Self {
            canvas,
            gpu,
            camera: Camera::fit(&[[0.0; 3]]),
            fog: 0.55,
            radius: 20.0,
        })
    }

    /// The API drawing this view.
    pub fn renderer(&self) -> Renderer {
        match self.gpu {
            Gpu::WebGpu(_) => Renderer::WebGpu,
            Gpu::WebGl(_) => Renderer::WebGl2,
        }
    }

    /// Replace one layer's mesh (an empty mesh hides the layer).
    pub fn set_mesh(&mut self, layer: Layer, mesh: &Mesh) {
        match &mut self.gpu {
            Gpu::WebGpu(g) => g.set_mesh(layer as usize, mesh),
            Gpu::WebGl(g) => g.set_mesh(layer as usize, mesh),
        }
    }

    /// Set the colour slots (sRGB bytes).
    pub fn set_colors(&mut self, colors: &[[u8; 3]]) {
        if colors.is_empty() {
            return;
        }
        match &mut self.gpu {
            Gpu::WebGpu(g) => g.set_colors(colors),
            Gpu::WebGl(g) => g.set_colors(colors),
        }
    }

    /// Width and height of the drawing buffer (device pixels).
    pub fn size(&self) -> (u32, u32) {
        match &self.gpu {
            Gpu::WebGpu(g) => g.size(),
            Gpu::WebGl(g) => g.size(),
        }
    }

    /// Draw one frame (resizing first if the canvas changed size).
    pub fn render(&mut self) {
        let (w, h) = canvas_size(&self.canvas);
        let aspect = w as f32 / h.max(1) as f32;
        let cam = self.camera;
        let view_proj = match self.gpu {
            Gpu::WebGpu(_) => cam.view_projection(aspect),
            // WebGL clips depth to -1..1, WebGPU to 0..1: z' = 2z - w maps one onto the other.
            Gpu::WebGl(_) => {
                glam::Mat4::from_cols(
                    glam::Vec4::X,
                    glam::Vec4::Y,
                    glam::Vec4::new(0.0, 0.0, 2.0, 0.0),
                    glam::Vec4::new(0.0, 0.0, -1.0, 1.0),
                ) * cam.view_projection(aspect)
            }
        };
        // Fog from the front of the molecule to its back, whatever the zoom.
        let radius = self.radius;
        let globals = Globals {
            view_proj: view_proj.to_cols_array_2d(),
            view: cam.view().to_cols_array_2d(),
            fog: [
                cam.distance - radius * 0.2,
                cam.distance + radius,
                self.fog,
                0.0,
            ],
            background: [BACKGROUND[0], BACKGROUND[1], BACKGROUND[2], 1.0],
        };
        match &mut self.gpu {
            Gpu::WebGpu(g) => g.render((w, h), &globals),
            Gpu::WebGl(g) => g.render((w, h), &globals),
        }
    }

    /// A PNG data URL of a freshly rendered frame (rendered and read in the same task, while
    /// the canvas still holds it).
    pub fn screenshot(&mut self) -> Option<String> {
        self.render();
        self.canvas.to_data_url_with_type("image/png").ok()
    }
}

/// The canvas's drawing buffer size in device pixels (at most 2 per CSS pixel, 4096 a side),
/// set on the canvas.
fn canvas_size(canvas: &HtmlCanvasElement) -> (u32, u32) {
    let ratio = web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .unwrap_or(1.0)
        .min(2.0);
    let w = ((canvas.client_width().max(1) as f64) * ratio).round() as u32;
    let h = ((canvas.client_height().max(1) as f64) * ratio).round() as u32;
    let (w, h) = (w.clamp(1, 4096), h.clamp(1, 4096));
    if canvas.width() != w {
        canvas.set_width(w);
    }
    if canvas.height() != h {
        canvas.set_height(h);
    }
    (w, h)
}
