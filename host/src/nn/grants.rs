//! The graphs a node is granted, each timed: an instance's wasi-nn state
//! reaches only those, so `load-by-name` of anything else is `not-found`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi_nn::Graph;

/// A graph whose last compute took longer than this runs its next ones on a
/// blocking thread, whatever their size.
pub const SLOW_COMPUTE: Duration = Duration::from_micros(500);

/// One graph granted to a node, with how long its last compute took.
pub struct GrantedGraph {
    /// The backend's graph.
    pub graph: Graph,
    last_compute_nanos: AtomicU64,
    compute_seconds: Option<metrics::Histogram>,
}

impl GrantedGraph {
    /// Wraps a loaded graph.
    pub fn new(graph: Graph) -> Self {
        GrantedGraph {
            graph,
            last_compute_nanos: AtomicU64::new(0),
            compute_seconds: None,
        }
    }

    /// Also records each compute's time under `name` in `/metrics`.
    pub fn timed(mut self, name: &str) -> Self {
        self.compute_seconds = Some(crate::metrics::compute_timer(name));
        self
    }

    pub(crate) fn is_slow(&self) -> bool {
        self.last_compute_nanos.load(Ordering::Relaxed) > SLOW_COMPUTE.as_nanos() as u64
    }

    pub(crate) fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.last_compute_nanos.store(nanos, Ordering::Relaxed);
        if let Some(histogram) = &self.compute_seconds {
            histogram.record(took.as_secs_f64());
        }
    }
}

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

    /// The graph granted under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<GrantedGraph>> {
        self.graphs.get(name)
    }
}
