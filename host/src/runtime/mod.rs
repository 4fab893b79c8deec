//! The sandboxed plugin runtime: one engine, one linker granting nothing but
//! the contract's imports, plugins loaded once and instantiated per node.

mod batcher;
pub mod bindings;
mod cache;
mod contract;
mod engine;
mod error;
mod info;
mod instance;
mod limits;
mod output;
mod plugin;
mod pool;
mod state;
mod text;
pub mod wasi_nn;

pub use crate::nn::GrantedGraphs;
pub use batcher::{BatchLog, BatchPolicy, Batcher};
pub use cache::CompileCache;
pub use contract::validate_info;
pub use engine::{EPOCH_TICK, EngineOptions};
pub use error::{GuestErrorKind, RuntimeError};
pub use info::{ModelInfo, ModelKind};
pub use instance::{Instance, InstanceLimits, NamedTensor};
pub use plugin::{Plugin, sha256_hex};
pub use pool::{Isolation, NodePool, NodeSpec};
pub use state::HostState;
pub use text::bounded;
pub use wasi_nn::NnState;

use limits::MemoryCap;
use std::path::Path;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store};

/// The engine and the linker every plugin is checked and instantiated with.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<CompileCache>,
    max_memory_bytes: usize,
    log_budgets: output::LogBudgets,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime with the given engine sizing.
    pub fn new(options: EngineOptions) -> Result<Self, RuntimeError> {
        let engine = engine::build_engine(&options)?;
        let mut linker = Linker::new(&engine);
        let link = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        // wasi:nn is ours (see `wasi_nn`), with the contract's tensors.
        wasi_nn::add_to_linker(&mut linker, HostState::wasi_nn).map_err(link)?;
        bindings::aimass::plugin::log::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(link)?;
        let cache = options
            .compile_cache
            .as_deref()
            .map(|dir| CompileCache::new(&engine, dir));
        Ok(Runtime {
            engine,
            linker,
            cache,
            max_memory_bytes: options.max_memory_bytes,
            log_budgets: output::LogBudgets::default(),
        })
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads and validates the plugin at `path`, checking its sha256 pin.
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        pinned_sha256: Option<&str>,
    ) -> Result<Plugin, RuntimeError> {
        Plugin::load_file(
            &self.engine,
            &self.linker,
            self.cache.as_ref(),
            name,
            path,
            pinned_sha256,
        )
    }

    /// The log budget `node`'s instances share. A node's pool holds it for
    /// its life, so that instances made one per call share it too.
    pub(crate) fn log_budget(&self, node: &str) -> output::LogBudget {
        self.log_budgets.for_node(node)
    }

    /// A new instance of `plugin` serving `node`, reaching the graphs in `nn`.
    pub async fn instantiate(
        &self,
        plugin: &Plugin,
        node: &str,
        nn: NnState,
        limits: InstanceLimits,
    ) -> Result<Instance, RuntimeError> {
        // The pooling allocator's slots are this big: past it, growth fails
        // before our limiter is asked and the plugin would die of an
        // anonymous trap instead of a clear out-of-memory error.
        if limits.memory_bytes > self.max_memory_bytes {
            return Err(RuntimeError::Engine(format!(
                "node `{node}` asks for a memory limit of {} bytes, above the engine's \
                 {} bytes per instance; lower the node's limit or raise the engine's",
                limits.memory_bytes, self.max_memory_bytes
            )));
        }
        let budget = self.log_budgets.for_node(node);
        let state = HostState::new(node, nn, MemoryCap::new(limits.memory_bytes), budget);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // At every epoch tick a running plugin yields to the executor, so a
        // looping plugin holds no worker thread and a caller's timeout can
        // cancel it; past its own deadline it is interrupted (a trap).
        store.data_mut().deadline = std::time::Instant::now() + limits.call_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| {
            if std::time::Instant::now() >= store.data().deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        let pre = plugin.pre();
        let instantiation = pre.instance_pre().instantiate_async(&mut store);
        let instance = match tokio::time::timeout(limits.call_timeout, instantiation).await {
            Ok(Ok(instance)) => instance,
            // Every slot of the engine's pool is taken: a capacity problem
            // of this host, not a fault of the plugin.
            Ok(Err(e))
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                return Err(RuntimeError::Capacity {
                    node: node.to_string(),
                    reason: format!("{e:#}"),
                });
            }
            Ok(Err(e)) => {
                return Err(RuntimeError::Trap {
                    plugin: plugin.name().to_string(),
                    call: "instantiation",
                    message: bounded(&format!("{e:#}"), 4096),
                });
            }
            Err(_) => {
                return Err(RuntimeError::Timeout {
                    plugin: plugin.name().to_string(),
                    call: "instantiation",
                    timeout: limits.call_timeout,
                });
            }
        };
        // The exports' names were checked at load; their types are checked
        // here, and a mismatch is the plugin's fault, not the node's.
        let model = plugin
            .indices()
            .load(&mut store, &instance)
            .map_err(|e| RuntimeError::WrongWorld {
                plugin: plugin.name().to_string(),
                reason: format!(
                    "its exports do not have the contract's types ({e:#}); rebuild it against aimass-sdk"
                ),
            })?;
        Ok(Instance {
            store,
            model,
            plugin: plugin.name().to_string(),
            limits,
            contract: None,
            _live: crate::metrics::live_instance(node),
        })
    }
}
