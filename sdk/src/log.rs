//! Logging into the host's log, tagged there with the node that logs.
//!
//! Outside WebAssembly (a plugin's own unit tests) messages go to stderr.

use crate::bindings::aimass::plugin::log::Level;

fn emit(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::aimass::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Logs very detailed tracing.
pub fn trace(message: &str) {
    emit(Level::Trace, message);
}

/// Logs information useful when debugging.
pub fn debug(message: &str) {
    emit(Level::Debug, message);
}

/// Logs normal operation worth noting.
pub fn info(message: &str) {
    emit(Level::Info, message);
}

/// Logs something unexpected that the plugin recovered from.
pub fn warn(message: &str) {
    emit(Level::Warn, message);
}

/// Logs a failure.
pub fn error(message: &str) {
    emit(Level::Error, message);
}
