//! What each plugin instance's store holds: WASI with nothing granted, the
//! wasi-nn context with the node's graphs, its memory cap and its log tag.

use super::bindings::{LogLevel, aimass};
use super::limits::MemoryCap;
use super::output::{GuestOutput, LogBudget};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_nn::wit::WasiNnCtx;

/// The per-instance host state.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) nn: WasiNnCtx,
    pub(crate) memory: MemoryCap,
    node: String,
    /// The last error the plugin logged, attached to a trap that follows it
    /// (the SDK logs a panic's message just before the trap).
    pub(crate) last_error: Option<String>,
    /// When the current call must end.
    pub(crate) deadline: std::time::Instant,
    budget: LogBudget,
}

impl HostState {
    /// State for an instance serving `node`, reaching only the graphs in `nn`,
    /// with linear memory capped by `memory`.
    pub fn new(node: &str, nn: WasiNnCtx, memory: MemoryCap) -> Self {
        // A fresh builder grants nothing: no preopened directories, no
        // environment, no arguments, no sockets, no name lookups. Only the
        // output streams are connected, to the host log.
        let budget = LogBudget::new();
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(GuestOutput::new(node, "stdout", budget.clone()))
            .stderr(GuestOutput::new(node, "stderr", budget.clone()))
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            nn,
            memory,
            node: node.to_string(),
            last_error: None,
            deadline: std::time::Instant::now(),
            budget,
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

/// Longest log message kept from a plugin.
const MAX_MESSAGE: usize = 4096;

impl aimass::plugin::log::Host for HostState {
    fn log(&mut self, level: LogLevel, mut message: String) {
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let node = self.node.as_str();
        if matches!(level, LogLevel::Error) {
            self.last_error = Some(message.clone());
        }
        if !self.budget.admit(node) {
            return;
        }
        match level {
            LogLevel::Trace => tracing::trace!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Info => tracing::info!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Error => tracing::error!(target: "aimass::plugin", node, "{message}"),
        }
    }
}
