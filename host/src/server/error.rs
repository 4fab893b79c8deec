//! The HTTP boundary's one error type, and the one place it becomes a
//! status code: every failure is `{"error": "..."}`, which tritonclient and
//! the KServe SDK both read.

use crate::graph::ExecError;
use crate::runtime::RuntimeError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The client's request is malformed or does not fit the model.
    #[error("{0}")]
    BadRequest(String),
    /// No such model, version or route.
    #[error("{0}")]
    NotFound(String),
    /// The body is over the server's limit.
    #[error("{0}")]
    TooLarge(String),
    /// Not ready yet, shutting down, unloaded, overloaded or out of time.
    #[error("{0}")]
    Unavailable(String),
    /// A model failed (a plugin trapped, timed out, ran out of memory or
    /// returned an error): its own message, named.
    #[error("{0}")]
    ModelFailed(String),
}

impl ApiError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ModelFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ExecError> for ApiError {
    fn from(error: ExecError) -> Self {
        if error.is_bad_request() {
            return ApiError::BadRequest(error.to_string());
        }
        match &error {
            // The node's queue wait ended because the node is going away
            // (a reload swapped it out under a hierarchy built earlier).
            ExecError::Node {
                source: RuntimeError::Engine(_) | RuntimeError::Saturated { .. },
                ..
            } => ApiError::Unavailable(error.to_string()),
            _ => ApiError::ModelFailed(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Inside the request's span, so the line carries its id; cut, as a
        // plugin's message may be long (the client gets up to 4 KiB of it).
        let logged = crate::runtime::bounded(&self.to_string(), 1024);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "{logged}");
        } else {
            tracing::info!(status = status.as_u16(), "{logged}");
        }
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
