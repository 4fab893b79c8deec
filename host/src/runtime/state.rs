//! What each plugin instance's store holds: WASI with nothing granted, the
//! wasi-nn context with the node's graphs, and the node's log tag.

use super::bindings::{LogLevel, aimass};
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_nn::wit::WasiNnCtx;

/// The per-instance host state.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) nn: WasiNnCtx,
    pub(crate) limits: StoreLimits,
    node: String,
}

impl HostState {
    /// State for an instance serving `node`, reaching only the graphs in `nn`,
    /// held to `limits`.
    pub fn new(node: &str, nn: WasiNnCtx, limits: StoreLimits) -> Self {
        // A fresh builder grants nothing: no preopened directories, no
        // environment, no arguments, no sockets, no name lookups.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            nn,
            limits,
            node: node.to_string(),
        }
    }

    /// The node this instance serves.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl aimass::plugin::log::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        let node = self.node.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Info => tracing::info!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Error => tracing::error!(target: "aimass::plugin", node, "{message}"),
        }
    }
}
