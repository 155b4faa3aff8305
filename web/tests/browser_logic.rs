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
    assert!(o.force_cpu);
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
