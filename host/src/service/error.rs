//! The inference service's one error: a kind (who is at fault) decided
//! where the failure arose, and the message every front end sends as is.

use crate::error_kind::ErrorKind;
use crate::graph::ExecError;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// Who is at fault; each front end maps it to a status.
    pub kind: ErrorKind,
    /// What went wrong, for the client.
    pub message: String,
}

impl ServiceError {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }

    /// The client's request is wrong.
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Client, message)
    }

    /// No such model or version.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Conflicts with what is serving.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A fault of the host itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Not now: retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
}

impl From<ExecError> for ServiceError {
    fn from(error: ExecError) -> Self {
        ServiceError::new(error.kind(), error.to_string())
    }
}
