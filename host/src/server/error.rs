//! The HTTP boundary's one error type, and the one place it becomes a
//! status code: every failure is `{"error": "..."}`, which tritonclient and
//! the KServe SDK both read.

use crate::error_kind::ErrorKind;
use crate::service::ServiceError;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
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
    /// The body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// A management call without the right token.
    #[error("{0}")]
    Unauthorized(String),
    /// A management call from a client that may not make it.
    #[error("{0}")]
    Forbidden(String),
    /// Not ready yet, shutting down, unloaded, overloaded or out of time.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the server's own.
    #[error("{0}")]
    Internal(String),
    /// The inference service's answer, whatever its kind.
    #[error("{0}")]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Service(e) => match e.kind {
                ErrorKind::Client => StatusCode::BAD_REQUEST,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                // A request past the server's deadline was answered 503 by
                // Triton's HTTP front end too: try again later.
                ErrorKind::Unavailable | ErrorKind::DeadlineExceeded => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ErrorKind::PluginFailure | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
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
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of the body was not read: the connection cannot
            // carry another request.
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// Gives every error the server sends the protocol's `{"error": "..."}`
/// body, whoever produced it: axum's extractors and fallbacks answer in
/// plain text (or nothing), and tritonclient reads only `error`.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Our own bodies are small; one from elsewhere is cut, never buffered whole.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    } else {
        text
    };
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
