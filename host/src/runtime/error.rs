//! Everything that can go wrong loading or calling a plugin.

use std::path::PathBuf;

/// An error at the runtime boundary. Each names the plugin it concerns.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The `.wasm` file could not be read.
    #[error("plugin `{plugin}`: cannot read {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's digest differs from the pinned one.
    #[error(
        "plugin `{plugin}`: sha256 mismatch: the config pins {expected} but {} has {actual}; \
         rebuild the plugin or update the pin",
        path.display()
    )]
    DigestMismatch {
        plugin: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The file is a core module, or no WebAssembly at all.
    #[error("plugin `{plugin}` is not a WebAssembly component: {reason}")]
    NotAComponent { plugin: String, reason: String },
    /// The component failed validation or compilation.
    #[error("plugin `{plugin}` is not a valid component: {reason}")]
    Invalid { plugin: String, reason: String },
    /// The component does not implement the sub-model world.
    #[error("plugin `{plugin}` does not implement the aimass sub-model contract: {reason}")]
    WrongWorld { plugin: String, reason: String },
    /// The component needs an import the host does not provide.
    #[error("plugin `{plugin}` needs an import the host does not provide: {reason}")]
    UnsupportedImport { plugin: String, reason: String },
    /// The plugin returned an error from one of its functions.
    #[error("plugin `{plugin}`: {call} failed: {kind}: {message}")]
    Plugin {
        plugin: String,
        call: &'static str,
        kind: GuestErrorKind,
        message: String,
    },
    /// The call ran past its deadline and was interrupted.
    #[error("plugin `{plugin}` timed out in {call}: it ran past its {}ms limit", timeout.as_millis())]
    Timeout {
        plugin: String,
        call: &'static str,
        timeout: std::time::Duration,
    },
    /// The plugin tried to grow its memory past its cap.
    #[error(
        "plugin `{plugin}` ran out of memory in {call}: it asked for {asked} bytes, its cap is {limit} bytes"
    )]
    OutOfMemory {
        plugin: String,
        call: &'static str,
        asked: usize,
        limit: usize,
    },
    /// The plugin trapped; the instance is unusable afterwards.
    #[error("plugin `{plugin}` trapped in {call}: {message}")]
    Trap {
        plugin: String,
        call: &'static str,
        message: String,
    },
    /// The plugin returned something its own `info()` does not declare.
    #[error("plugin `{plugin}` broke its contract in {call}: {message}")]
    Contract {
        plugin: String,
        call: &'static str,
        message: String,
    },
    /// The plugin's `info()` is not a valid description of a sub-model.
    #[error("plugin `{plugin}` describes itself wrongly: {message}; fix the plugin's `info`")]
    InvalidInfo { plugin: String, message: String },
    /// Every instance of the node is busy and its wait queue is full, or a
    /// call waited past the node's queue timeout.
    #[error("saturated: {reason}; try again later")]
    Saturated { node: String, reason: String },
    /// The engine has no free instance slot for a new instance (its
    /// `engine.max_instances` are all alive, across every node).
    #[error(
        "no free instance slot in the engine ({reason}); every slot is in use across the \
         nodes, retry later or raise `engine.max_instances`"
    )]
    Capacity { node: String, reason: String },
    /// A merged call of a batching node failed: every call in it gets the
    /// plugin's failure, saying it was batched.
    #[error("{source} (in one call batching {requests} requests)")]
    Batched {
        /// How many calls were merged.
        requests: usize,
        /// What the merged call ended with.
        source: std::sync::Arc<RuntimeError>,
    },
    /// The engine itself could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

impl RuntimeError {
    /// Whether the instance that produced this error must be discarded:
    /// wasmtime will not re-enter an instance that trapped, and one that was
    /// interrupted may have been left mid-update.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            RuntimeError::Trap { .. }
                | RuntimeError::Timeout { .. }
                | RuntimeError::OutOfMemory { .. }
        )
    }

    /// Who is at fault: the client for input its plugin refused, the host
    /// for missing capacity, the plugin for everything else it did.
    pub fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            RuntimeError::Plugin {
                kind: GuestErrorKind::InvalidInput,
                ..
            } => ErrorKind::Client,
            // A node going away under a reload also ends its queue's waits
            // with an engine error: retrying reaches the new one.
            RuntimeError::Saturated { .. }
            | RuntimeError::Capacity { .. }
            | RuntimeError::Engine(_) => ErrorKind::Unavailable,
            RuntimeError::Batched { source, .. } => source.kind(),
            _ => ErrorKind::PluginFailure,
        }
    }

    /// The failure's kind as `/metrics` labels it.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            RuntimeError::Trap { .. } => "trap",
            RuntimeError::Timeout { .. } => "timeout",
            RuntimeError::OutOfMemory { .. } => "out_of_memory",
            RuntimeError::Contract { .. } => "contract",
            RuntimeError::Saturated { .. } => "saturated",
            RuntimeError::Capacity { .. } => "capacity",
            RuntimeError::Batched { source, .. } => source.metric_kind(),
            RuntimeError::Plugin { kind, .. } => match kind {
                GuestErrorKind::InvalidInput => "invalid_input",
                GuestErrorKind::Model => "model",
                GuestErrorKind::Internal => "internal",
            },
            _ => "engine",
        }
    }
}

/// The three kinds of error a plugin may return, as the contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestErrorKind {
    /// The caller's input was not acceptable.
    InvalidInput,
    /// The model could not answer.
    Model,
    /// A bug in the plugin.
    Internal,
}

impl std::fmt::Display for GuestErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestErrorKind::InvalidInput => "invalid-input",
            GuestErrorKind::Model => "model",
            GuestErrorKind::Internal => "internal",
        })
    }
}

impl GuestErrorKind {
    /// Splits a plugin's error into its kind and message.
    pub fn split(error: super::bindings::GuestError) -> (Self, String) {
        use super::bindings::GuestError as E;
        match error {
            E::InvalidInput(m) => (GuestErrorKind::InvalidInput, m),
            E::Model(m) => (GuestErrorKind::Model, m),
            E::Internal(m) => (GuestErrorKind::Internal, m),
        }
    }
}
