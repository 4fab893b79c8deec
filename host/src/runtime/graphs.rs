//! The graphs a node is granted: a wasi-nn state that reaches only those,
//! so `load-by-name` of anything else is `not-found`.

use super::wasi_nn::{GrantedGraph, NnState};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime_wasi_nn::Graph;

/// Named graphs shared by every instance of a node (graphs are reference
/// counted: granting one does not copy its weights).
#[derive(Clone, Default)]
pub struct GrantedGraphs {
    graphs: Arc<HashMap<String, Arc<GrantedGraph>>>,
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
            graphs: Arc::new(
                graphs
                    .into_iter()
                    .map(|(name, graph)| {
                        let granted = GrantedGraph::new(graph).timed(&name);
                        (name, Arc::new(granted))
                    })
                    .collect(),
            ),
        }
    }

    /// The granted names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graphs.keys().map(String::as_str)
    }

    /// The wasi-nn state of one instance. A plugin cannot load graph bytes
    /// of its own: models belong to the operator.
    pub fn context(&self) -> NnState {
        NnState::new(self.graphs.clone())
    }
}
