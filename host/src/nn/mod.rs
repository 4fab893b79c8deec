//! wasi-nn on native kernels: the backends a plugin's `compute` runs on, and
//! the registry of the operator's graphs, loaded once and shared.
//!
//! Both backends implement `wasmtime-wasi-nn`'s public graph and execution
//! context traits; the crate's own onnx backend is not used (f32 only, panics
//! on other types). Plugins get no backend to `load` bytes with: graphs come
//! only from this registry.

pub mod cancel;
mod error;
mod grants;
mod onnx_fixes;
#[cfg(feature = "onnxruntime")]
mod onnxruntime;
pub mod plans;
mod signature;
mod tract;
mod tract_signature;
mod vector_state;

pub use error::NnError;
pub use grants::{GrantedGraph, GrantedGraphs, SLOW_COMPUTE};
pub use signature::{Signature, shape_text};
pub use tract::set_threads as set_tract_threads;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use wasmtime_wasi_nn::Graph;

/// The native library that runs a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// tract: pure Rust, CPU, built in.
    #[default]
    Tract,
    /// ONNX Runtime, loaded from `ORT_DYLIB_PATH` (cargo feature `onnxruntime`).
    OnnxRuntime,
}

impl BackendKind {
    /// The name operators write in config.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::OnnxRuntime => "onnxruntime",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The host CPU.
    #[default]
    Cpu,
    /// A CUDA GPU (onnxruntime only); never silently replaced by the CPU.
    Gpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        })
    }
}

/// A graph ready to run, with what it takes and returns.
#[derive(Clone)]
pub struct LoadedGraph {
    /// The wasi-nn graph handed to plugins.
    pub graph: Graph,
    /// Its inputs and outputs.
    pub signature: Signature,
    /// The backend running it.
    pub backend: BackendKind,
    /// The device it runs on.
    pub device: Device,
}

impl fmt::Debug for LoadedGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedGraph")
            .field("signature", &self.signature)
            .field("backend", &self.backend)
            .field("device", &self.device)
            .finish()
    }
}

/// The operator's graphs by name, each loaded once at start-up.
#[derive(Debug, Default, Clone)]
pub struct GraphStore {
    graphs: BTreeMap<String, LoadedGraph>,
}

impl GraphStore {
    /// Reads an ONNX file and loads it under `name`.
    pub fn load_file(
        &mut self,
        name: &str,
        path: &Path,
        backend: BackendKind,
        device: Device,
    ) -> Result<&LoadedGraph, NnError> {
        let bytes = std::fs::read(path).map_err(|source| NnError::Read {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(name, &bytes, backend, device)
    }

    /// Loads ONNX bytes under `name`.
    pub fn load_bytes(
        &mut self,
        name: &str,
        bytes: &[u8],
        backend: BackendKind,
        device: Device,
    ) -> Result<&LoadedGraph, NnError> {
        if self.graphs.contains_key(name) {
            return Err(NnError::Duplicate(name.to_string()));
        }
        let loaded = load(name, bytes, backend, device)?;
        Ok(self.graphs.entry(name.to_string()).or_insert(loaded))
    }

    /// The graph called `name`, if loaded.
    pub fn get(&self, name: &str) -> Option<&LoadedGraph> {
        self.graphs.get(name)
    }

    /// Every loaded graph's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graphs.keys().map(String::as_str)
    }

    /// Exactly these graphs, for one node; an unknown name is an error.
    pub fn grant<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<GrantedGraphs, NnError> {
        let granted = names
            .into_iter()
            .map(|name| {
                self.graphs
                    .get(name)
                    .map(|g| (name.to_string(), g.graph.clone()))
                    .ok_or_else(|| NnError::NotFound {
                        name: name.to_string(),
                        known: self.names().collect::<Vec<_>>().join(", "),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GrantedGraphs::new(granted))
    }
}

fn load(
    name: &str,
    bytes: &[u8],
    backend: BackendKind,
    device: Device,
) -> Result<LoadedGraph, NnError> {
    let refused = |message: String| NnError::Load {
        name: name.to_string(),
        backend: backend.name(),
        message,
    };
    let (graph, signature) = match backend {
        BackendKind::Tract => {
            if device != Device::Cpu {
                return Err(NnError::Unavailable {
                    name: name.to_string(),
                    backend: backend.name(),
                    reason: format!(
                        "tract runs on the CPU only; use backend \"onnxruntime\" for {device}"
                    ),
                });
            }
            tract::load_onnx(bytes).map_err(refused)?
        }
        #[cfg(feature = "onnxruntime")]
        BackendKind::OnnxRuntime => onnxruntime::load_onnx(bytes, device).map_err(|e| match e {
            onnxruntime::OrtLoadError::Unavailable(reason) => NnError::Unavailable {
                name: name.to_string(),
                backend: backend.name(),
                reason,
            },
            onnxruntime::OrtLoadError::Refused(message) => refused(message),
        })?,
        #[cfg(not(feature = "onnxruntime"))]
        BackendKind::OnnxRuntime => {
            return Err(NnError::Unavailable {
                name: name.to_string(),
                backend: backend.name(),
                reason: "this aimass was built without it; rebuild with \
                         `--features onnxruntime` and set ORT_DYLIB_PATH"
                    .to_string(),
            });
        }
    };
    Ok(LoadedGraph {
        graph,
        signature,
        backend,
        device,
    })
}
