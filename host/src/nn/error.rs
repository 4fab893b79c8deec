//! Why a graph could not be loaded or granted.

use std::path::PathBuf;

/// Errors at the graph registry's boundary (start-up and node set-up).
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The artifact file could not be read.
    #[error("graph `{name}`: cannot read {}: {source}", path.display())]
    Read {
        /// The graph's name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The backend refused the model.
    #[error("graph `{name}` ({backend}): {message}")]
    Load {
        /// The graph's name.
        name: String,
        /// The backend that refused it.
        backend: &'static str,
        /// The backend's reason.
        message: String,
    },
    /// The backend or device cannot be used in this build or on this host.
    #[error("graph `{name}`: {backend} is not available: {reason}")]
    Unavailable {
        /// The graph's name.
        name: String,
        /// The backend asked for.
        backend: &'static str,
        /// What is missing and how to get it.
        reason: String,
    },
    /// Two artifacts share one name.
    #[error("graph `{0}` is defined twice; give each artifact its own name")]
    Duplicate(String),
    /// A node was granted a graph nobody loaded.
    #[error("graph `{name}` is not loaded (loaded graphs: {known})")]
    NotFound {
        /// The missing name.
        name: String,
        /// The names that do exist.
        known: String,
    },
}
