//! The 3D view on WebGL 2, for browsers without WebGPU: the same meshes and lighting as
//! [`super::webgpu`]. WebGL has no storage buffers, so the colour table is a texture the vertex
//! shader reads by slot (`COLOR_ROW` slots a row); multisampling is the canvas's own
//! (`antialias`).

use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    HtmlCanvasElement, WebGl2RenderingContext as Gl, WebGlBuffer, WebGlProgram, WebGlShader,
    WebGlTexture, WebGlUniformLocation, WebGlVertexArrayObject,
};

use super::{Globals, ViewerError};
use crate::scene::{Mesh, Vertex};

/// Colour slots per row of the colour texture (WebGL 2 guarantees 2048 texels a side).
const COLOR_ROW: usize = 1024;

/// GLSL ES 3.00 translation of the WGSL vertex shader of [`super::webgpu`].
const VERTEX: &str = r#"#version 300 es
precision highp float;
precision highp int;
uniform mat4 view_proj;
uniform mat4 view;
uniform highp sampler2D colors;
layout(location = 0) in vec3 p;
layout(location = 1) in vec3 n;
layout(location = 2) in uint slot;
out vec3 v_normal;
out vec3 v_color;
out float v_depth;
void main() {
    vec4 v = view * vec4(p, 1.0);
    gl_Position = view_proj * vec4(p, 1.0);
    v_normal = (view * vec4(n, 0.0)).xyz;
    v_color = texelFetch(colors, ivec2(int(slot % 1024u), int(slot / 1024u)), 0).rgb;
    v_depth = -v.z;
}
"#;

/// GLSL ES 3.00 translation of the WGSL fragment shader of [`super::webgpu`].
const FRAGMENT: &str = r#"#version 300 es
precision highp float;
// x: fog start, y: fog end (view depth, Å), z: fog strength
uniform vec4 fog;
uniform vec4 background;
in vec3 v_normal;
in vec3 v_color;
in float v_depth;
out vec4 color;
void main() {
    vec3 n = normalize(v_normal);
    // Headlight from the camera, a little above.
    vec3 l = normalize(vec3(0.25, 0.35, 1.0));
    vec3 h = normalize(l + vec3(0.0, 0.0, 1.0));
    float diffuse = max(dot(n, l), 0.0);
    float specular = pow(max(dot(n, h), 0.0), 48.0);
    float rim = pow(1.0 - max(n.z, 0.0), 3.0);
    vec3 c = v_color * (0.30 + 0.70 * diffuse) + vec3(0.30) * specular - vec3(0.12) * rim;
    float f = clamp((v_depth - fog.x) / max(fog.y - fog.x, 1e-3), 0.0, 1.0) * fog.z;
    c = mix(c, background.rgb, f);
    color = vec4(clamp(c, vec3(0.0), vec3(1.0)), 1.0);
}
"#;

struct GlMesh {
    vao: WebGlVertexArrayObject,
    vertices: WebGlBuffer,
    indices: WebGlBuffer,
    count: i32,
}

/// The WebGL 2 renderer of one canvas.
pub(super) struct WebGl {
    gl: Gl,
    program: WebGlProgram,
    view_proj: Option<WebGlUniformLocation>,
    view: Option<WebGlUniformLocation>,
    fog: Option<WebGlUniformLocation>,
    background: Option<WebGlUniformLocation>,
    colors_location: Option<WebGlUniformLocation>,
    colors: WebGlTexture,
    meshes: Vec<Option<GlMesh>>,
    size: (u32, u32),
}

impl WebGl {
    /// Start WebGL 2 on `canvas` (fails if the canvas already has another context).
    pub(super) fn new(canvas: &HtmlCanvasElement) -> Result<Self, ViewerError> {
        let options = js_sys::Object::new();
        for (key, value) in [
            ("antialias", true),
            ("alpha", false),
            ("depth", true),
            ("preserveDrawingBuffer", false),
        ] {
            js_sys::Reflect::set(&options, &key.into(), &value.into()).map_err(js_error)?;
        }
        let gl: Gl = canvas
            .get_context_with_context_options("webgl2", &options)
            .map_err(js_error)?
            .ok_or_else(|| {
                ViewerError::WebGl(
                    "this browser has no WebGL 2, or the canvas is already in use".into(),
                )
            })?
            .dyn_into()
            .map_err(|_| ViewerError::WebGl("the context is not a WebGL 2 context".into()))?;
        let vertex = compile(&gl, Gl::VERTEX_SHADER, VERTEX)?;
        let fragment = compile(&gl, Gl::FRAGMENT_SHADER, FRAGMENT)?;
        let program = gl
            .create_program()
            .ok_or_else(|| ViewerError::WebGl("no program (context lost?)".into()))?;
        gl.attach_shader(&program, &vertex);
        gl.attach_shader(&program, &fragment);
        gl.link_program(&program);
        if !gl
            .get_program_parameter(&program, Gl::LINK_STATUS)
            .as_bool()
            .unwrap_or(false)
        {
            let log = gl.get_program_info_log(&program).unwrap_or_default();
            return Err(ViewerError::WebGl(format!(
                "the shaders did not link: {log}"
            )));
        }
        let colors = gl
            .create_texture()
            .ok_or_else(|| ViewerError::WebGl("no texture (context lost?)".into()))?;
        gl.bind_texture(Gl::TEXTURE_2D, Some(&colors));
        // texelFetch only, but a texture without mipmaps must not ask for them to be complete.
        for (name, value) in [
            (Gl::TEXTURE_MIN_FILTER, Gl::NEAREST),
            (Gl::TEXTURE_MAG_FILTER, Gl::NEAREST),
            (Gl::TEXTURE_WRAP_S, Gl::CLAMP_TO_EDGE),
            (Gl::TEXTURE_WRAP_T, Gl::CLAMP_TO_EDGE),
        ] {
            gl.tex_parameteri(Gl::TEXTURE_2D, name, value as i32);
        }
        let uniform = |name| gl.get_uniform_location(&program, name);
        let mut this = Self {
            view_proj: uniform("view_proj"),
            view: uniform("view"),
            fog: uniform("fog"),
            background: uniform("background"),
            colors_location: uniform("colors"),
            gl,
            program,
            colors,
            meshes: vec![None, None, None],
            size: (canvas.width(), canvas.height()),
        };
        this.set_colors(&[[255; 3]; 4]);
        Ok(this)
    }

    /// Replace mesh `layer` (an empty mesh hides it).
    pub(super) fn set_mesh(&mut self, layer: usize, mesh: &Mesh) {
        let gl = &self.gl;
        if let Some(old) = self.meshes[layer].take() {
            gl.delete_vertex_array(Some(&old.vao));
            gl.delete_buffer(Some(&old.vertices));
            gl.delete_buffer(Some(&old.indices));
        }
        if mesh.indices.is_empty() {
            return;
        }
        let (Some(vao), Some(vertices), Some(indices)) = (
            gl.create_vertex_array(),
            gl.create_buffer(),
            gl.create_buffer(),
        ) else {
            // Only a lost context refuses these; the view stays empty until a reload.
            return;
        };
        gl.bind_vertex_array(Some(&vao));
        gl.bind_buffer(Gl::ARRAY_BUFFER, Some(&vertices));
        gl.buffer_data_with_u8_array(
            Gl::ARRAY_BUFFER,
            bytemuck::cast_slice(&mesh.vertices),
            Gl::STATIC_DRAW,
        );
        let stride = std::mem::size_of::<Vertex>() as i32;
        gl.enable_vertex_attrib_array(0);
        gl.vertex_attrib_pointer_with_i32(0, 3, Gl::FLOAT, false, stride, 0);
        gl.enable_vertex_attrib_array(1);
        gl.vertex_attrib_pointer_with_i32(1, 3, Gl::FLOAT, false, stride, 12);
        gl.enable_vertex_attrib_array(2);
        gl.vertex_attrib_i_pointer_with_i32(2, 1, Gl::UNSIGNED_INT, stride, 24);
        gl.bind_buffer(Gl::ELEMENT_ARRAY_BUFFER, Some(&indices));
        gl.buffer_data_with_u8_array(
            Gl::ELEMENT_ARRAY_BUFFER,
            bytemuck::cast_slice(&mesh.indices),
            Gl::STATIC_DRAW,
        );
        gl.bind_vertex_array(None);
        self.meshes[layer] = Some(GlMesh {
            vao,
            vertices,
            indices,
            count: mesh.indices.len() as i32,
        });
    }

    /// Set the colour slots (sRGB bytes): slot `i` is texel (i mod COLOR_ROW, i / COLOR_ROW).
    pub(super) fn set_colors(&mut self, colors: &[[u8; 3]]) {
        let rows = colors.len().div_ceil(COLOR_ROW).max(1);
        let mut texels = vec![255u8; rows * COLOR_ROW * 4];
        for (texel, c) in texels.chunks_exact_mut(4).zip(colors) {
            texel[..3].copy_from_slice(c);
        }
        let gl = &self.gl;
        gl.bind_texture(Gl::TEXTURE_2D, Some(&self.colors));
        gl.pixel_storei(Gl::UNPACK_ALIGNMENT, 1);
        // Fails only on a lost context, which leaves the view as it was.
        let _ = gl.tex_image_2d_with_i32_and_i32_and_i32_and_format_and_type_and_opt_u8_array(
            Gl::TEXTURE_2D,
            0,
            Gl::RGBA8 as i32,
            COLOR_ROW as i32,
            rows as i32,
            0,
            Gl::RGBA,
            Gl::UNSIGNED_BYTE,
            Some(&texels),
        );
    }

    /// Width and height of the drawing buffer (device pixels).
    pub(super) fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Draw one frame with `globals` on the canvas's drawing buffer (the browser may make it
    /// smaller than the canvas's `w` × `h` when that exceeds its limits).
    pub(super) fn render(&mut self, (w, h): (u32, u32), g: &Globals) {
        let gl = &self.gl;
        let (bw, bh) = (gl.drawing_buffer_width(), gl.drawing_buffer_height());
        self.size = if bw > 0 && bh > 0 {
            (bw as u32, bh as u32)
        } else {
            (w, h)
        };
        gl.viewport(0, 0, self.size.0 as i32, self.size.1 as i32);
        gl.enable(Gl::DEPTH_TEST);
        gl.depth_func(Gl::LESS);
        // No culling: the meshes' winding is not uniform (caps, cones).
        gl.disable(Gl::CULL_FACE);
        gl.clear_color(g.background[0], g.background[1], g.background[2], 1.0);
        gl.clear_depth(1.0);
        gl.clear(Gl::COLOR_BUFFER_BIT | Gl::DEPTH_BUFFER_BIT);
        gl.use_program(Some(&self.program));
        gl.uniform_matrix4fv_with_f32_array(
            self.view_proj.as_ref(),
            false,
            bytemuck::cast_slice(&g.view_proj),
        );
        gl.uniform_matrix4fv_with_f32_array(
            self.view.as_ref(),
            false,
            bytemuck::cast_slice(&g.view),
        );
        gl.uniform4fv_with_f32_array(self.fog.as_ref(), &g.fog);
        gl.uniform4fv_with_f32_array(self.background.as_ref(), &g.background);
        gl.active_texture(Gl::TEXTURE0);
        gl.bind_texture(Gl::TEXTURE_2D, Some(&self.colors));
        gl.uniform1i(self.colors_location.as_ref(), 0);
        for mesh in self.meshes.iter().flatten() {
            gl.bind_vertex_array(Some(&mesh.vao));
            gl.draw_elements_with_i32(Gl::TRIANGLES, mesh.count, Gl::UNSIGNED_INT, 0);
        }
        gl.bind_vertex_array(None);
    }
}

fn compile(gl: &Gl, kind: u32, source: &str) -> Result<WebGlShader, ViewerError> {
    let shader = gl
        .create_shader(kind)
        .ok_or_else(|| ViewerError::WebGl("no shader (context lost?)".into()))?;
    gl.shader_source(&shader, source);
    gl.compile_shader(&shader);
    if gl
        .get_shader_parameter(&shader, Gl::COMPILE_STATUS)
        .as_bool()
        .unwrap_or(false)
    {
        Ok(shader)
    } else {
        let log = gl.get_shader_info_log(&shader).unwrap_or_default();
        Err(ViewerError::WebGl(format!(
            "a shader did not compile: {log}"
        )))
    }
}

fn js_error(e: JsValue) -> ViewerError {
    ViewerError::WebGl(e.as_string().unwrap_or_else(|| format!("{e:?}")))
}
