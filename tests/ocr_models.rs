//! PaddleOCR's real graphs (from the RapidOCR wheels, fetched by
//! `examples/ocr/fetch_models.py`) on both native backends: each of the five
//! loads in tract, runs at concrete-shape plans, and agrees with ONNX
//! Runtime on the same input within `TOLERANCE`.
//!
//! They run where `AIMASS_OCR_MODELS` names the fetched folder and are
//! reported as ignored elsewhere; CI fetches the models and sets
//! `AIMASS_REQUIRE_OCR=1`.

use aimass::nn::{BackendKind, Device, GraphStore};
use aimass_tests::{compute_backend, f32_values};
use std::path::PathBuf;
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::wit::TensorType;

/// Largest absolute difference allowed between tract and ONNX Runtime on an
/// output element (probability maps and softmax scores in [0, 1]; measured
/// agreement is about 1e-5).
const TOLERANCE: f32 = 1e-4;

fn models() -> PathBuf {
    match std::env::var_os("AIMASS_OCR_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/ocr/models"),
    }
}

/// Deterministic values in [-1, 1], as a normalised image is.
fn seeded(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn input(shape: &[u32], seed: u64) -> Tensor {
    let count = shape.iter().product::<u32>() as usize;
    let data = seeded(count, seed)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    Tensor::new(shape.to_vec(), TensorType::Fp32, data)
}

fn run(backend: BackendKind, file: &str, shape: &[u32]) -> (Vec<u32>, Vec<f32>) {
    let mut store = GraphStore::default();
    let graph = store
        .load_file(file, &models().join(file), backend, Device::Cpu)
        .unwrap_or_else(|e| panic!("{backend} {file}: {e}"))
        .graph
        .clone();
    let outputs = compute_backend(&graph, "x", input(shape, 7))
        .unwrap_or_else(|e| panic!("{backend} {file} {shape:?}: {e}"));
    let y = &outputs[0].1;
    let values = f32_values(&aimass::tensor::Tensor::from_backend(y.clone()).unwrap());
    (y.dimensions.clone(), values)
}

fn agree(file: &str, shape: &[u32], expected_out: &[u32]) {
    require();
    let (tract_dims, tract) = run(BackendKind::Tract, file, shape);
    let (ort_dims, ort) = run(BackendKind::OnnxRuntime, file, shape);
    assert_eq!(tract_dims, expected_out, "{file}: tract's output shape");
    assert_eq!(ort_dims, expected_out, "{file}: onnxruntime's output shape");
    let worst = tract
        .iter()
        .zip(&ort)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= TOLERANCE,
        "{file}: tract and onnxruntime differ by {worst} (tolerance {TOLERANCE})"
    );
    eprintln!("{file} {shape:?}: largest difference {worst:e}");
}

fn require() {
    assert!(
        models().join("rec_v4.onnx").exists(),
        "the OCR models are not at {}: run python3 examples/ocr/fetch_models.py",
        models().display()
    );
    assert!(
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "the OCR equivalence tests need ORT_DYLIB_PATH (pip install onnxruntime)"
    );
}

macro_rules! ocr_graph {
    ($($test:ident: $file:literal, $shape:expr => $out:expr;)*) => {$(
        #[test]
        #[cfg_attr(
            not(all(aimass_ocr, aimass_ort)),
            ignore = "needs AIMASS_OCR_MODELS (examples/ocr/fetch_models.py) and ORT_DYLIB_PATH"
        )]
        fn $test() {
            agree($file, &$shape, &$out);
        }
    )*};
}

ocr_graph! {
    v4_detector_agrees: "det_v4.onnx", [1, 3, 96, 160] => [1, 1, 96, 160];
    v6_detector_agrees: "det_v6.onnx", [1, 3, 96, 160] => [1, 1, 96, 160];
    angle_classifier_agrees: "cls.onnx", [2, 3, 48, 192] => [2, 2];
    v4_recogniser_agrees: "rec_v4.onnx", [2, 3, 48, 160] => [2, 20, 6625];
    v6_recogniser_agrees: "rec_v6.onnx", [1, 3, 48, 160] => [1, 20, 18710];
}

/// The recogniser serves lines of any width: each width gets its own plan,
/// and answers for the same pixels agree across batch sizes.
#[test]
#[cfg_attr(not(aimass_ocr), ignore = "needs AIMASS_OCR_MODELS")]
fn a_recogniser_serves_many_widths_and_batches_on_tract() {
    assert!(models().join("rec_v4.onnx").exists(), "run fetch_models.py");
    let mut store = GraphStore::default();
    let graph = store
        .load_file(
            "rec",
            &models().join("rec_v4.onnx"),
            BackendKind::Tract,
            Device::Cpu,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .graph
        .clone();
    for width in [64u32, 96, 128] {
        let outputs = compute_backend(&graph, "x", input(&[1, 3, 48, width], 3))
            .unwrap_or_else(|e| panic!("width {width}: {e}"));
        assert_eq!(outputs[0].1.dimensions, [1, width / 8, 6625]);
    }
}
