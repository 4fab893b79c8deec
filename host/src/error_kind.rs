//! Who is at fault when a request fails, decided where the failure arises
//! (the runtime for a plugin's failure, the graph for a hierarchy's, the
//! inference service for a request's) and carried up unchanged; each front
//! end maps a kind to its status codes in one place.

/// The kinds of failure a client can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is wrong and would fail again unchanged.
    Client,
    /// No such model or version.
    NotFound,
    /// The request conflicts with what is serving (e.g. unloading a model
    /// a served hierarchy still calls).
    Conflict,
    /// The server cannot take it now (loading, unloaded, saturated): retry.
    Unavailable,
    /// The request ran out of time.
    DeadlineExceeded,
    /// A plugin failed: trapped, timed out, ran out of memory, broke its
    /// contract or returned an error of its own.
    PluginFailure,
    /// A fault of the host itself.
    Internal,
}

impl ErrorKind {
    /// A label for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Client => "client",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::PluginFailure => "plugin_failure",
            ErrorKind::Internal => "internal",
        }
    }
}
