//! The graphs a node is granted: a wasi-nn registry that holds only those,
//! so `load-by-name` of anything else is `not-found`.

use std::collections::HashMap;
use std::sync::Arc;
use wasmtime_wasi_nn::wit::WasiNnCtx;
use wasmtime_wasi_nn::{Graph, GraphRegistry};

/// Named graphs shared by every instance of a node (graphs are reference
/// counted: granting one does not copy its weights).
#[derive(Clone, Default)]
pub struct GrantedGraphs {
    graphs: Arc<HashMap<String, Graph>>,
}

impl std::fmt::Debug for GrantedGraphs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.graphs.keys()).finish()
    }
}

impl GrantedGraphs {
    /// Grants exactly these graphs, under these names.
    pub fn new(graphs: impl IntoIterator<Item = (String, Graph)>) -> Self {
        GrantedGraphs {
            graphs: Arc::new(graphs.into_iter().collect()),
        }
    }

    /// The granted names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graphs.keys().map(String::as_str)
    }

    /// A wasi-nn context for one instance. It has no backends, so a plugin
    /// cannot load graph bytes of its own: models belong to the operator.
    pub fn context(&self) -> WasiNnCtx {
        WasiNnCtx::new(Vec::new(), Registry(self.graphs.clone()).into())
    }
}

struct Registry(Arc<HashMap<String, Graph>>);

impl GraphRegistry for Registry {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }

    fn get_mut(&mut self, _name: &str) -> Option<&mut Graph> {
        // Shared graphs are never handed out mutably.
        None
    }
}
