//! The 3D view on WebGPU: one pipeline draws every mesh, the colour table is a storage buffer
//! read by the vertex shader, 4× multisampling.

use web_sys::HtmlCanvasElement;
use wgpu::util::DeviceExt;

use super::{BACKGROUND, Globals, ViewerError, canvas_size};
use crate::scene::{Mesh, Vertex};

const SHADER: &str = r#"
struct Globals {
    view_proj: mat4x4<f32>,
    view: mat4x4<f32>,
    // x: fog start, y: fog end (view depth, Å), z: fog strength
    fog: vec4<f32>,
    background: vec4<f32>,
};
@group(0) @binding(0) var<uniform> g: Globals;
@group(0) @binding(1) var<storage, read> colors: array<vec4<f32>>;

struct VOut {
    @builtin(position) position: vec4<f32>,
    @location(0) normal: vec3<f32>,
    @location(1) color: vec3<f32>,
    @location(2) depth: f32,
};

@vertex
fn vs(@location(0) p: vec3<f32>, @location(1) n: vec3<f32>, @location(2) slot: u32) -> VOut {
    var o: VOut;
    let v = g.view * vec4<f32>(p, 1.0);
    o.position = g.view_proj * vec4<f32>(p, 1.0);
    o.normal = (g.view * vec4<f32>(n, 0.0)).xyz;
    o.color = colors[slot].rgb;
    o.depth = -v.z;
    return o;
}

@fragment
fn fs(i: VOut) -> @location(0) vec4<f32> {
    let n = normalize(i.normal);
    // Headlight from the camera, a little above.
    let l = normalize(vec3<f32>(0.25, 0.35, 1.0));
    let h = normalize(l + vec3<f32>(0.0, 0.0, 1.0));
    let diffuse = max(dot(n, l), 0.0);
    let specular = pow(max(dot(n, h), 0.0), 48.0);
    let rim = pow(1.0 - max(n.z, 0.0), 3.0);
    var c = i.color * (0.30 + 0.70 * diffuse) + vec3<f32>(0.30) * specular - vec3<f32>(0.12) * rim;
    let f = clamp((i.depth - g.fog.x) / max(g.fog.y - g.fog.x, 1e-3), 0.0, 1.0) * g.fog.z;
    c = mix(c, g.background.rgb, f);
    return vec4<f32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
"#;

const SAMPLES: u32 = 4;
const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

struct GpuMesh {
    vertices: wgpu::Buffer,
    indices: wgpu::Buffer,
    count: u32,
}

/// The WebGPU renderer of one canvas.
pub(super) struct WebGpu {
    surface: wgpu::Surface<'static>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    config: wgpu::SurfaceConfiguration,
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    globals: wgpu::Buffer,
    colors: wgpu::Buffer,
    colors_len: usize,
    bind_group: wgpu::BindGroup,
    msaa: wgpu::TextureView,
    depth: wgpu::TextureView,
    meshes: Vec<Option<GpuMesh>>,
}

impl WebGpu {
    /// Start WebGPU on `canvas`. The canvas becomes a WebGPU surface only once an adapter and a
    /// device exist, so that a refusal leaves it free for WebGL 2.
    pub(super) async fn new(canvas: &HtmlCanvasElement) -> Result<Self, ViewerError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| ViewerError::Adapter(e.to_string()))?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("foldspace 3D view"),
                required_limits: wgpu::Limits::downlevel_defaults()
                    .using_resolution(adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| ViewerError::Device(e.to_string()))?;
        let (width, height) = canvas_size(canvas);
        let surface = instance
            .create_surface(wgpu::SurfaceTarget::Canvas(canvas.clone()))
            .map_err(|e| ViewerError::Surface(e.to_string()))?;
        let mut config = surface
            .get_default_config(&adapter, width, height)
            .ok_or_else(|| {
                ViewerError::Surface("the adapter cannot present to this canvas".into())
            })?;
        // Plain (non-sRGB) format: the colours we pass are already sRGB-encoded.
        config.format = config.format.remove_srgb_suffix();
        config.alpha_mode = wgpu::CompositeAlphaMode::Opaque;
        config.usage = wgpu::TextureUsages::RENDER_ATTACHMENT;
        surface.configure(&device, &config);

        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("foldspace trace"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("globals"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::VERTEX,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("trace"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("trace"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<Vertex>() as u64,
                    step_mode: wgpu::VertexStepMode::Vertex,
                    attributes: &wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3, 2 => Uint32],
                })],
            },
            // No culling: the meshes' winding is not uniform (caps, cones), depth testing
            // keeps the nearest surface.
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: Some(wgpu::DepthStencilState {
                format: DEPTH_FORMAT,
                depth_write_enabled: Some(true),
                depth_compare: Some(wgpu::CompareFunction::Less),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: wgpu::MultisampleState {
                count: SAMPLES,
                ..Default::default()
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(config.format.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        let globals = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("globals"),
            size: std::mem::size_of::<Globals>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let colors = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("colours"),
            contents: bytemuck::cast_slice(&[[1.0f32; 4]; 4]),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        let bind_group = bind(&device, &layout, &globals, &colors);
        let (msaa, depth) = targets(&device, &config);
        Ok(Self {
            surface,
            device,
            queue,
            config,
            pipeline,
            layout,
            globals,
            colors,
            colors_len: 4,
            bind_group,
            msaa,
            depth,
            meshes: vec![None, None, None],
        })
    }

    /// Replace mesh `layer` (an empty mesh hides it).
    pub(super) fn set_mesh(&mut self, layer: usize, mesh: &Mesh) {
        let slot = &mut self.meshes[layer];
        if mesh.indices.is_empty() {
            *slot = None;
            return;
        }
        let vertices = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("vertices"),
                contents: bytemuck::cast_slice(&mesh.vertices),
                usage: wgpu::BufferUsages::VERTEX,
            });
        let indices = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("indices"),
                contents: bytemuck::cast_slice(&mesh.indices),
                usage: wgpu::BufferUsages::INDEX,
            });
        *slot = Some(GpuMesh {
            vertices,
            indices,
            count: mesh.indices.len() as u32,
        });
    }

    /// Set the colour slots (sRGB bytes).
    pub(super) fn set_colors(&mut self, colors: &[[u8; 3]]) {
        let data: Vec<[f32; 4]> = colors
            .iter()
            .map(|c| {
                [
                    c[0] as f32 / 255.0,
                    c[1] as f32 / 255.0,
                    c[2] as f32 / 255.0,
                    1.0,
                ]
            })
            .collect();
        if data.is_empty() {
            return;
        }
        if data.len() == self.colors_len {
            self.queue
                .write_buffer(&self.colors, 0, bytemuck::cast_slice(&data));
        } else {
            self.colors = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("colours"),
                    contents: bytemuck::cast_slice(&data),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                });
            self.colors_len = data.len();
            self.bind_group = bind(&self.device, &self.layout, &self.globals, &self.colors);
        }
    }

    /// Width and height of the drawing buffer (device pixels).
    pub(super) fn size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    /// Draw one frame of `w` × `h` device pixels (the canvas's size) with `globals`.
    pub(super) fn render(&mut self, (w, h): (u32, u32), globals: &Globals) {
        if (w, h) != (self.config.width, self.config.height) {
            self.config.width = w;
            self.config.height = h;
            self.surface.configure(&self.device, &self.config);
            (self.msaa, self.depth) = targets(&self.device, &self.config);
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t)
            | wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface.configure(&self.device, &self.config);
                return;
            }
            _ => return,
        };
        let view = frame.texture.create_view(&Default::default());
        self.queue
            .write_buffer(&self.globals, 0, bytemuck::bytes_of(globals));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("frame"),
            });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("trace"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &self.msaa,
                    depth_slice: None,
                    resolve_target: Some(&view),
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color {
                            r: BACKGROUND[0] as f64,
                            g: BACKGROUND[1] as f64,
                            b: BACKGROUND[2] as f64,
                            a: 1.0,
                        }),
                        store: wgpu::StoreOp::Discard,
                    },
                })],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &self.depth,
                    depth_ops: Some(wgpu::Operations {
                        load: wgpu::LoadOp::Clear(1.0),
                        store: wgpu::StoreOp::Discard,
                    }),
                    stencil_ops: None,
                }),
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            for mesh in self.meshes.iter().flatten() {
                pass.set_vertex_buffer(0, mesh.vertices.slice(..));
                pass.set_index_buffer(mesh.indices.slice(..), wgpu::IndexFormat::Uint32);
                pass.draw_indexed(0..mesh.count, 0, 0..1);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.queue.present(frame);
    }
}

fn bind(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    globals: &wgpu::Buffer,
    colors: &wgpu::Buffer,
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("globals"),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: globals.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: colors.as_entire_binding(),
            },
        ],
    })
}

fn targets(
    device: &wgpu::Device,
    config: &wgpu::SurfaceConfiguration,
) -> (wgpu::TextureView, wgpu::TextureView) {
    let size = wgpu::Extent3d {
        width: config.width,
        height: config.height,
        depth_or_array_layers: 1,
    };
    let make = |format, label| {
        device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size,
                mip_level_count: 1,
                sample_count: SAMPLES,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
                view_formats: &[],
            })
            .create_view(&Default::default())
    };
    (make(config.format, "msaa"), make(DEPTH_FORMAT, "depth"))
}
