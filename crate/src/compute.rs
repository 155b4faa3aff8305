//! Where the model runs: burn's flex CPU backend, or burn's wgpu backend (Vulkan, Metal, DX12
//! natively; WebGPU in the browser). With wgpu, the C-alpha distance map is computed by our own
//! WGSL compute shader on the same wgpu device burn uses.

use std::fmt;

use burn::prelude::*;
use wgpu::util::DeviceExt;

use crate::score::inputs::{distance_map, torch_squared_distance, uses_matmul_form};

/// The distance shader: one invocation per (row, column) pair, the same arithmetic as
/// [`crate::score::inputs::torch_distance`].
const DISTANCE_WGSL: &str = include_str!("distance.wgsl");

/// Smallest map sent to the distance shader. Smaller maps (training crops of 31–32 residues,
/// small chains) are cheaper on the CPU than a GPU round trip, and there they are bit-exact with
/// torch: WGSL lets a GPU evaluate `fma` unfused (lavapipe does), which moves a few percent of
/// the matmul-form distances by one rounding step.
pub const GPU_DISTANCE_MIN_PAIRS: usize = 64 * 64;

/// Why a compute device could not be set up or used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComputeError {
    /// No usable GPU adapter, or the runtime refused to start.
    #[error("no GPU device could be set up: {0}")]
    NoGpu(String),
    /// A GPU operation failed.
    #[error("the GPU failed: {0}")]
    Gpu(String),
    /// Reading a tensor back failed.
    #[error("reading results from the device failed: {0}")]
    Read(String),
}

/// The wgpu handles shared with burn.
#[derive(Clone)]
struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    adapter: String,
    /// The adapter is a CPU implementation (a browser's fallback adapter, lavapipe, llvmpipe).
    software: bool,
}

/// A burn device, and the wgpu handles for our own shaders when it is a GPU.
#[derive(Clone)]
pub struct Compute {
    /// The burn device models and tensors live on.
    pub device: Device,
    gpu: Option<Gpu>,
    /// The CPU backend's name, for [`Compute::describe`].
    cpu_backend: &'static str,
}

impl fmt::Debug for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Compute {
    /// The pure-Rust CPU backend (burn flex).
    pub fn cpu() -> Self {
        Self {
            device: Device::flex(),
            gpu: None,
            cpu_backend: "burn flex",
        }
    }

    /// burn's LibTorch backend on the CPU (PyTorch's kernels: oneDNN, MKL), built with the
    /// `tch` feature against a pip-installed PyTorch (`LIBTORCH_USE_PYTORCH=1`). Only for
    /// measuring it beside flex (`foldspace bench-train --backend libtorch`, BENCHMARKS.md):
    /// burn 0.22 deprecates this backend, and the page and the tests never use it.
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    pub fn libtorch() -> Self {
        Self {
            device: Device::libtorch(),
            gpu: None,
            cpu_backend: "LibTorch",
        }
    }

    /// The wgpu backend on the default adapter (native). Set up once per process and shared.
    #[cfg(not(target_family = "wasm"))]
    pub fn wgpu() -> Result<Self, ComputeError> {
        static SHARED: std::sync::OnceLock<Result<Compute, ComputeError>> =
            std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                let (device, setup) = Device::wgpu_options()
                    .init_with_setup()
                    .map_err(|e| ComputeError::NoGpu(e.to_string()))?;
                Ok(Self::from_setup(device, setup))
            })
            .clone()
    }

    /// The wgpu backend (WebGPU in a browser). Set up once and shared.
    pub async fn wgpu_async() -> Result<Self, ComputeError> {
        #[cfg(target_family = "wasm")]
        {
            thread_local! {
                static SHARED: std::cell::RefCell<Option<Compute>> = const { std::cell::RefCell::new(None) };
            }
            if let Some(c) = SHARED.with(|s| s.borrow().clone()) {
                return Ok(c);
            }
            let (device, setup) = Device::wgpu_options()
                .init_with_setup_async()
                .await
                .map_err(|e| ComputeError::NoGpu(e.to_string()))?;
            let compute = Self::from_setup(device, setup);
            SHARED.with(|s| *s.borrow_mut() = Some(compute.clone()));
            Ok(compute)
        }
        #[cfg(not(target_family = "wasm"))]
        {
            Self::wgpu()
        }
    }

    fn from_setup(device: Device, setup: burn::tensor::wgpu::WgpuSetup) -> Self {
        let info = setup.adapter.get_info();
        let module = setup
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("foldspace distance map"),
                source: wgpu::ShaderSource::Wgsl(DISTANCE_WGSL.into()),
            });
        let pipeline = setup
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("foldspace distance map"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        Self {
            device,
            gpu: Some(Gpu {
                device: setup.device,
                queue: setup.queue,
                pipeline,
                adapter: format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
                software: info.device_type == wgpu::DeviceType::Cpu,
            }),
            cpu_backend: "burn flex",
        }
    }

    /// The same device with automatic differentiation, for training (native only: the page's
    /// build has no burn `autodiff`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn autodiff(&self) -> Self {
        Self {
            device: self.device.clone().autodiff(),
            gpu: self.gpu.clone(),
            cpu_backend: self.cpu_backend,
        }
    }

    /// Whether this is a GPU device.
    pub fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Whether this is a GPU device whose adapter is implemented on the CPU (SwiftShader in a
    /// browser without a usable GPU, lavapipe natively): such an adapter runs the score model
    /// tens of times slower than the CPU backend (BENCHMARKS.md).
    pub fn is_software_gpu(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.software)
    }

    /// A one-line description (backend and adapter).
    pub fn describe(&self) -> String {
        match &self.gpu {
            Some(gpu) => format!("wgpu: {}", gpu.adapter),
            None => format!("cpu ({})", self.cpu_backend),
        }
    }

    /// The C-alpha distance map (rows × cols, row-major) as `torch.cdist` computes it: on the
    /// GPU by the WGSL shader when this is a GPU device and the map has at least
    /// [`GPU_DISTANCE_MIN_PAIRS`] entries, on the CPU otherwise.
    pub async fn distance_map(
        &self,
        rows: &[[f32; 3]],
        cols: &[[f32; 3]],
    ) -> Result<Vec<f32>, ComputeError> {
        match &self.gpu {
            Some(gpu) if rows.len() * cols.len() >= GPU_DISTANCE_MIN_PAIRS => {
                gpu_distance_map(gpu, rows, cols).await
            }
            _ => Ok(distance_map(rows, cols)),
        }
    }
}

async fn gpu_distance_map(
    gpu: &Gpu,
    rows: &[[f32; 3]],
    cols: &[[f32; 3]],
) -> Result<Vec<f32>, ComputeError> {
    let (h, w) = (rows.len(), cols.len());
    let mm = uses_matmul_form(h, w);
    // Per point: x, y, z, |x|² (as the CPU rounds it: a GPU may contract it into an FMA), and
    // the point's squared distance to itself. In the matmul form that self-distance is pure
    // rounding noise of torch's fused multiply-adds (~0.01–0.1 Å), and the published network is
    // sensitive to it, so it is computed here. The shader returns squared distances; the square
    // root is taken here, correctly rounded (GPU square roots need not be), so the map is
    // bit-identical to the CPU's wherever the GPU fuses `fma` as WGSL allows.
    let pad = |p: &[[f32; 3]]| -> Vec<f32> {
        p.iter()
            .flat_map(|&v| {
                let norm = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                [
                    v[0],
                    v[1],
                    v[2],
                    norm,
                    torch_squared_distance(v, v, mm),
                    0.0,
                    0.0,
                    0.0,
                ]
            })
            .collect()
    };
    let rows_buf = gpu
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("rows"),
            contents: bytemuck::cast_slice(&pad(rows)),
            usage: wgpu::BufferUsages::STORAGE,
        });
    let cols_buf = gpu
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("cols"),
            contents: bytemuck::cast_slice(&pad(cols)),
            usage: wgpu::BufferUsages::STORAGE,
        });
    let dims = [h as u32, w as u32, u32::from(mm), 0];
    let dims_buf = gpu
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dims"),
            contents: bytemuck::cast_slice(&dims),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    let size = (h * w * 4) as u64;
    let out_buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("distances"),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let read_buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("distances readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let layout = gpu.pipeline.get_bind_group_layout(0);
    let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("distance map"),
        layout: &layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: rows_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: cols_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: out_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: dims_buf.as_entire_binding(),
            },
        ],
    });
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("distance map"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("distance map"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&gpu.pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups((w as u32).div_ceil(16), (h as u32).div_ceil(16), 1);
    }
    encoder.copy_buffer_to_buffer(&out_buf, 0, &read_buf, 0, size);
    gpu.queue.submit([encoder.finish()]);
    let (tx, rx) = futures_channel::oneshot::channel();
    read_buf.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_family = "wasm"))]
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| ComputeError::Gpu(e.to_string()))?;
    rx.await
        .map_err(|_| ComputeError::Gpu("the map callback was dropped".into()))?
        .map_err(|e| ComputeError::Gpu(e.to_string()))?;
    let data = read_buf
        .slice(..)
        .get_mapped_range()
        .map_err(|e| ComputeError::Gpu(e.to_string()))?;
    let out: Vec<f32> = bytemuck::cast_slice::<u8, f32>(&data)
        .iter()
        .map(|d2| d2.sqrt())
        .collect();
    drop(data);
    read_buf.unmap();
    Ok(out)
}

/// Read a float tensor back as a `Vec<f32>` (works on WebGPU, where synchronous reads panic).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ComputeError> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| ComputeError::Read(format!("{e:?}")))?;
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ComputeError::Read(format!("{e:?}")))
}
