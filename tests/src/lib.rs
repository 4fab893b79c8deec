//! Helpers shared by the integration tests.

use aimass::runtime::{EngineOptions, Instance, InstanceLimits, Plugin, Runtime};
use std::path::Path;
use wasmtime_wasi_nn::wit::WasiNnCtx;
use wasmtime_wasi_nn::{InMemoryRegistry, Tensor, wit::TensorType};

/// A runtime sized for tests.
pub fn runtime() -> Runtime {
    Runtime::new(EngineOptions {
        max_instances: 16,
        ..EngineOptions::default()
    })
    .expect("engine")
}

/// Loads the component at `path` under `name`.
pub fn load(runtime: &Runtime, name: &str, path: &str) -> Plugin {
    runtime
        .load(name, Path::new(path), None)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A wasi-nn context that grants no graphs at all.
pub fn no_graphs() -> WasiNnCtx {
    WasiNnCtx::new(Vec::new(), InMemoryRegistry::new().into())
}

/// An instance of `plugin` for node `node` with default limits and no graphs.
pub async fn instance(runtime: &Runtime, plugin: &Plugin, node: &str) -> Instance {
    runtime
        .instantiate(plugin, node, no_graphs(), InstanceLimits::default())
        .await
        .unwrap_or_else(|e| panic!("instantiating {node}: {e}"))
}

/// An FP32 host tensor.
pub fn f32_tensor(shape: &[u32], values: &[f32]) -> Tensor {
    Tensor::new(
        shape.to_vec(),
        TensorType::Fp32,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// The values of an FP32 host tensor.
pub fn f32_values(tensor: &Tensor) -> Vec<f32> {
    assert_eq!(tensor.ty, TensorType::Fp32, "expected an FP32 tensor");
    tensor
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// An INT64 host tensor.
pub fn i64_tensor(shape: &[u32], values: &[i64]) -> Tensor {
    Tensor::new(
        shape.to_vec(),
        TensorType::I64,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// The digits example's folder.
pub fn digits_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits")
}

/// The digits test split: 64 raw pixel values (0-16) and the label per row.
pub fn digits_test_rows() -> Vec<(Vec<f32>, i64)> {
    let text = std::fs::read_to_string(digits_dir().join("data/test.csv")).expect("test.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            let label = fields.pop().expect("label").parse().expect("label");
            let pixels = fields.iter().map(|f| f.parse().expect("pixel")).collect();
            (pixels, label)
        })
        .collect()
}

/// Runs `graph` natively (no plugin) on one input tensor.
pub fn compute(
    graph: &wasmtime_wasi_nn::Graph,
    input: &str,
    tensor: Tensor,
) -> Result<Vec<(String, Tensor)>, String> {
    let mut context = graph.init_execution_context().map_err(|e| e.to_string())?;
    let outputs = context
        .compute_with_io(vec![wasmtime_wasi_nn::backend::NamedTensor {
            name: input.to_string(),
            tensor,
        }])
        .map_err(|e| e.to_string())?;
    Ok(outputs.into_iter().map(|t| (t.name, t.tensor)).collect())
}

/// Starts the config at `relative` (from this crate's folder), with
/// `@PLUGINS@` standing for the folder the test build put the plugins in.
pub async fn open_config(
    relative: &str,
) -> Result<aimass::repository::Repository, aimass::config::ConfigErrors> {
    let plugins = Path::new(aimass_test_artifacts::SCALER)
        .parent()
        .expect("plugin folder")
        .display()
        .to_string();
    // Tests run in this crate's folder, so messages name `relative` as is.
    // The example configs point at the default cargo output folder instead.
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .expect("config")
        .replace("@PLUGINS@", &plugins)
        .replace("../../target/wasm32-wasip2/release", &plugins);
    let file = aimass::config::ConfigFile::parse(Path::new(relative), text)?;
    aimass::repository::Repository::start(file).await
}
