//! What each plugin instance's store holds: WASI with nothing granted, the
//! wasi-nn state with the node's graphs, its memory cap and its log tag.

use super::bindings::{LogLevel, aimass};
use super::limits::MemoryCap;
use super::output::{GuestOutput, LogBudget};
use super::text::bounded;
use super::wasi_nn::{NnState, WasiNnView};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The per-instance host state.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) nn: NnState,
    pub(crate) memory: MemoryCap,
    pub(crate) node: String,
    /// The last error the plugin logged, attached to a trap that follows it
    /// (the SDK logs a panic's message just before the trap).
    pub(crate) last_error: Option<String>,
    /// When the current call must end.
    pub(crate) deadline: std::time::Instant,
    /// Set when a host call found the deadline passed (native compute cannot
    /// be interrupted, so it is checked when it returns).
    pub(crate) timed_out: bool,
    pub(crate) budget: LogBudget,
}

impl HostState {
    /// State for an instance serving `node`, reaching only the graphs in `nn`,
    /// with memory (linear and host-side) capped by `memory`, logging within
    /// the node's `budget`.
    pub fn new(node: &str, nn: NnState, memory: MemoryCap, budget: LogBudget) -> Self {
        // A fresh builder grants nothing: no preopened directories, no
        // environment, no arguments, no sockets, no name lookups. Only the
        // output streams are connected, to the host log.
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
            timed_out: false,
            budget,
        }
    }

    /// The node this instance serves.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// What the `wasi:nn` host functions reach.
    pub(crate) fn wasi_nn(&mut self) -> WasiNnView<'_> {
        WasiNnView {
            nn: &mut self.nn,
            memory: &mut self.memory,
            node: &self.node,
            budget: &self.budget,
            deadline: self.deadline,
            timed_out: &mut self.timed_out,
        }
    }

    /// Ends a call: every tensor and error handle of it is dropped and its
    /// memory released.
    pub(crate) fn end_call(&mut self) {
        let released = self.nn.handles.end_call();
        self.memory.release(released);
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
pub(crate) const MAX_MESSAGE: usize = 4096;
/// Longest plugin message that reaches the host log whole.
pub(crate) const MAX_LOGGED: usize = 1024;

impl aimass::plugin::log::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        if matches!(level, LogLevel::Error) {
            self.last_error = Some(bounded(&message, MAX_MESSAGE));
        }
        let node = self.node.as_str();
        if !self.budget.admit(node) {
            return Ok(());
        }
        let message = bounded(&message, MAX_LOGGED);
        match level {
            LogLevel::Trace => tracing::trace!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Info => tracing::info!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "aimass::plugin", node, "{message}"),
            LogLevel::Error => tracing::error!(target: "aimass::plugin", node, "{message}"),
        }
        Ok(())
    }
}
