//! The error a sub-model returns, and shorthands for building one.

pub use crate::bindings::aimass::plugin::types::Error;

impl Error {
    /// The inputs or parameters are not acceptable (the caller's fault).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// The model could not produce an answer (the operator's concern).
    pub fn model(message: impl Into<String>) -> Self {
        Error::Model(message.into())
    }

    /// A bug in the plugin itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    /// The message, whatever the kind of error.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m) | Error::Model(m) | Error::Internal(m) => m,
        }
    }
}

/// The result of every fallible SDK call.
pub type Result<T, E = Error> = core::result::Result<T, E>;
