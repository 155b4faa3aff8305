//! The page's logic in the browser (wasm32, headless Chromium via `tests/browser`): reading a
//! shipped example, colours and legends, heatmap pixels, query parsing and the 3D meshes,
//! exactly as the components call them.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: a failed test says why

use foldspace::structure::{BFactorKind, ReadOptions, read_structure};
use foldspace_web::logic::{self, ColorMode, Legend};
use foldspace_web::scene::{self, Camera};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ALPHAFOLD: &[u8] = include_bytes!("../../assets/examples/AF-Q5VSL9-F1-model_v2.pdb.gz");
const PROTEASE: &[u8] = include_bytes!("../../assets/examples/4e43.pdb");

#[wasm_bindgen_test]
fn alphafold_model_is_coloured_by_plddt_bands() {
    let parsed = read_structure(
        ALPHAFOLD,
        Some("AF-Q5VSL9-F1-model_v2.pdb.gz"),
        &ReadOptions::default(),
    )
    .expect("read the shipped AlphaFold example");
    let s = parsed.structure;
    assert_eq!(s.b_factor_kind, BFactorKind::Plddt);
    let i = logic::default_chain(&s).expect("a chain");
    let chain = &s.first_model_chains()[i];
    assert_eq!(chain.len(), 837);
    let (colors, legend) =
        logic::residue_colors(ColorMode::BFactor, chain, i, s.b_factor_kind, None);
    // The first residue has pLDDT 39.15: the "< 50" orange.
    assert_eq!(logic::hex(colors[0]), "#ff7d45");
    assert!(
        matches!(legend, Legend::Swatches(ref t, ref items) if t == "pLDDT" && items.len() == 4)
    );
    // Without a model run, colour-by-score falls back to the chain colour.
    let (fallback, _) = logic::residue_colors(ColorMode::Score, chain, i, s.b_factor_kind, None);
    assert!(fallback.iter().all(|c| *c == logic::chain_color(i)));
}

#[wasm_bindgen_test]
fn multi_chain_file_gives_a_chain_list_map_and_meshes() {
    let s = read_structure(PROTEASE, Some("4e43.pdb"), &ReadOptions::default())
        .expect("read")
        .structure;
    let chains = s.first_model_chains();
    let labels: Vec<String> = chains.iter().map(logic::chain_label).collect();
    assert_eq!(
        labels,
        [
            "chain A · 99 residues",
            "chain B · 99 residues",
            "chain C · 6 residues"
        ]
    );
    let a = &chains[0];
    let n = a.len();
    let mut d = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let (p, q) = (a.ca[i], a.ca[j]);
            d[i * n + j] =
                ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
        }
    }
    let max = logic::distance_scale_max(&d);
    let rgba = logic::distance_rgba(&d, max);
    assert_eq!(rgba.len(), n * n * 4);
    // The diagonal (0 Å) is the bright end, far pairs the dark end.
    let bright = |k: usize| rgba[4 * k] as u32 + rgba[4 * k + 1] as u32 + rgba[4 * k + 2] as u32;
    let far = d
        .iter()
        .enumerate()
        .max_by(|x, y| x.1.total_cmp(y.1))
        .map(|(k, _)| k)
        .expect("pairs");
    assert!(bright(0) > bright(far) + 200);
    let mesh = scene::tube(&a.ca, 0.42, 6, 10, 4.5);
    assert!(
        mesh.indices
            .iter()
            .all(|&i| (i as usize) < mesh.vertices.len())
    );
    assert!(mesh.vertices.iter().all(|v| (v.slot as usize) < n));
    // Picking the projected centre of a residue finds that residue.
    let cam = Camera::fit(&a.ca);
    let (x, y, _) = cam.project(a.ca[40], 800.0, 600.0).expect("in front");
    let picked = scene::pick(&a.ca, &cam, 800.0, 600.0, x, y, 6.0).expect("a residue");
    let (px, py, _) = cam.project(a.ca[picked], 800.0, 600.0).expect("in front");
    assert!((px - x).hypot(py - y) < 1e-3 || picked == 40);
}

#[wasm_bindgen_test]
fn page_options_and_file_names() {
    let o = logic::parse_query("?weights=%2Fpublished%2Fmodel.safetensors&level=4&backend=cpu")
        .expect("parse");
    assert_eq!(o.weights.as_deref(), Some("/published/model.safetensors"));
    assert_eq!(o.level, Some(4));
    assert_eq!(o.backend, logic::BackendChoice::Cpu);
    assert!(logic::parse_query("?weights=https://evil.example/w.safetensors").is_err());
    assert!(logic::parse_query("?level=high").is_err());
    assert_eq!(
        logic::download_stem("AF-Q5VSL9-F1-model_v2.pdb.gz", "A"),
        "AF-Q5VSL9-F1-model_v2_A"
    );
    assert_eq!(logic::bytes_label(45 << 20), "45.0 MB");
}

/// The panic hook's banner: visible, at the top of the page, with the message.
#[wasm_bindgen_test]
fn a_crash_is_said_on_the_page() {
    foldspace_web::show_crash("index out of bounds at web/src/x.rs:1");
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("document");
    let banner = document
        .query_selector("[data-testid=crash]")
        .expect("query")
        .expect("a crash banner");
    let text = banner.text_content().unwrap_or_default();
    assert!(
        text.contains("index out of bounds at web/src/x.rs:1"),
        "{text}"
    );
    assert!(text.contains("Reload"), "{text}");
    assert_eq!(banner.get_attribute("role").as_deref(), Some("alert"));
    let first = document
        .body()
        .and_then(|b| b.first_element_child())
        .expect("body child");
    assert_eq!(first, banner, "the banner is the page's first element");
}

/// Render the AlphaFold example's trace on a fresh canvas with `renderer` and read its pixels
/// (RGBA, row-major). The trace uses colour slots 600…1436, across the WebGL colour texture's
/// row of 1024, each residue a different colour, so a slot read wrong changes the picture.
async fn frame(renderer: foldspace_web::viewer::Renderer) -> (Vec<u8>, u32, u32) {
    use foldspace_web::viewer::{Layer, Viewer};
    use wasm_bindgen::JsCast;
    let s = read_structure(ALPHAFOLD, Some("AF.pdb.gz"), &ReadOptions::default())
        .expect("read")
        .structure;
    let chain = &s.first_model_chains()[0];
    let mut mesh = scene::tube(&chain.ca, 0.45, 4, 8, 4.3);
    for v in &mut mesh.vertices {
        v.slot += 600;
    }
    let colors: Vec<[u8; 3]> = (0..600 + chain.len() as u32)
        .map(|i| {
            let i = i as usize;
            [
                (i * 37 % 200 + 55) as u8,
                (i * 91 % 200 + 55) as u8,
                (i * 13 % 200 + 55) as u8,
            ]
        })
        .collect();
    let document = web_sys::window().unwrap().document().unwrap();
    let canvas: web_sys::HtmlCanvasElement = document
        .create_element("canvas")
        .unwrap()
        .dyn_into()
        .unwrap();
    canvas
        .set_attribute("style", "width: 320px; height: 240px; display: block")
        .unwrap();
    document.body().unwrap().append_child(&canvas).unwrap();
    let mut viewer = Viewer::new(canvas.clone(), Some(renderer))
        .await
        .unwrap_or_else(|e| panic!("{} did not start: {e}", renderer.name()));
    assert_eq!(viewer.renderer(), renderer);
    viewer.set_mesh(Layer::Trace, &mesh);
    viewer.set_colors(&colors);
    viewer.camera = Camera::fit(&chain.ca);
    viewer.radius = scene::bounds(&chain.ca).1;
    viewer.render();
    let (w, h) = viewer.size();
    let copy: web_sys::HtmlCanvasElement = document
        .create_element("canvas")
        .unwrap()
        .dyn_into()
        .unwrap();
    copy.set_width(w);
    copy.set_height(h);
    let context: web_sys::CanvasRenderingContext2d =
        copy.get_context("2d").unwrap().unwrap().dyn_into().unwrap();
    context
        .draw_image_with_html_canvas_element(&canvas, 0.0, 0.0)
        .unwrap();
    let pixels = context
        .get_image_data(0.0, 0.0, w as f64, h as f64)
        .unwrap()
        .data()
        .0;
    document.body().unwrap().remove_child(&canvas).unwrap();
    (pixels, w, h)
}

/// The WebGL 2 fallback draws what WebGPU draws: the same trace, colours, depth and lighting,
/// up to antialiasing along the edges.
#[wasm_bindgen_test]
async fn webgl_draws_the_same_view_as_webgpu() {
    use foldspace_web::viewer::{BACKGROUND, Renderer};
    let (gpu, w, h) = frame(Renderer::WebGpu).await;
    let (gl, w2, h2) = frame(Renderer::WebGl2).await;
    assert_eq!((w, h), (w2, h2));
    let background = BACKGROUND.map(|c| (c * 255.0).round() as i32);
    let drawn = |px: &[u8]| {
        px.chunks_exact(4)
            .filter(|p| (0..3).any(|k| (p[k] as i32 - background[k]).abs() > 8))
            .count() as f64
            / (w * h) as f64
    };
    let (drawn_gpu, drawn_gl) = (drawn(&gpu), drawn(&gl));
    let (mut differ, mut sum) = (0usize, 0u64);
    for (a, b) in gpu.chunks_exact(4).zip(gl.chunks_exact(4)) {
        let d = (0..3)
            .map(|k| (a[k] as i32 - b[k] as i32).unsigned_abs())
            .max()
            .unwrap_or(0);
        sum += d as u64;
        if d > 48 {
            differ += 1;
        }
    }
    let differ = differ as f64 / (w * h) as f64;
    let mean = sum as f64 / (w * h) as f64;
    web_sys::console::log_1(
        &format!(
            "{w}x{h}: drawn WebGPU {drawn_gpu:.3} WebGL {drawn_gl:.3}; pixels differing by > 48: \
             {differ:.4}; mean largest channel difference {mean:.2}"
        )
        .into(),
    );
    // Measured in headless Chromium on SwiftShader: 6.5 % of the view drawn by each, 0.15 % of
    // the pixels differing by more than 48, mean 0.86. A colour slot read wrong would change
    // most of the drawn pixels; an empty view fails the first bound.
    assert!(
        drawn_gpu > 0.03 && drawn_gl > 0.03,
        "a view is (nearly) empty"
    );
    assert!(
        differ < 0.01,
        "{:.2} % of the pixels differ",
        differ * 100.0
    );
    assert!(mean < 2.0, "mean difference {mean:.2}");
}
