//! Why a request to a model failed, with who is at fault.

use crate::error_kind::ErrorKind;
use crate::runtime::RuntimeError;

/// Why a request to a model failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The request itself is wrong (a missing input, no branch for it).
    #[error("{0}")]
    BadRequest(String),
    /// A node failed; the error names it.
    #[error("node `{node}`: {source}")]
    Node {
        /// The node.
        node: String,
        /// What went wrong inside it.
        source: RuntimeError,
    },
    /// A member took longer than its hierarchy allows.
    #[error("`{model}` did not answer within {millis} ms")]
    Timeout {
        /// The member.
        model: String,
        /// Its budget.
        millis: u128,
    },
    /// A model answered something its hierarchy cannot use: the model's
    /// fault, whatever the client sent.
    #[error("`{model}` {message}")]
    Contract {
        /// The model that answered.
        model: String,
        /// What is wrong with its answer.
        message: String,
    },
    /// Too many soft members failed.
    #[error(
        "ensemble `{ensemble}`: {answered} of its members answered, it needs {needed}: {failures}"
    )]
    TooFewMembers {
        /// The ensemble.
        ensemble: String,
        /// How many answered.
        answered: usize,
        /// How many it needs.
        needed: usize,
        /// Each failure.
        failures: String,
    },
    /// A fault of the host's own (a bug, never the client's or a plugin's).
    #[error("internal error in `{model}`: {message}")]
    Internal {
        /// Where.
        model: String,
        /// What.
        message: String,
    },
}

impl ExecError {
    /// Who is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecError::BadRequest(_) => ErrorKind::Client,
            ExecError::Node { source, .. } => source.kind(),
            ExecError::Timeout { .. }
            | ExecError::Contract { .. }
            | ExecError::TooFewMembers { .. } => ErrorKind::PluginFailure,
            ExecError::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// A malformed answer from `model`.
    pub(super) fn contract(model: &str, message: impl std::fmt::Display) -> ExecError {
        ExecError::Contract {
            model: model.to_string(),
            message: message.to_string(),
        }
    }
}
