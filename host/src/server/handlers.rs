//! One function per endpoint of the Open Inference Protocol, plus the
//! Triton extensions tritonclient calls and `/metrics`.

use super::body::{ReadBody, read_body};
use super::codec::{self, HEADER_LENGTH};
use super::error::ApiError;
use super::protocol::{ModelMetadata, ServerMetadata, TensorMetadata};
use super::state::ServerState;
use crate::service::ModelConfig;
use crate::tensor::{Dtype, TensorSpec};
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

pub(super) type Shared = State<Arc<ServerState>>;

/// A model (and maybe version) named in the path; a malformed one is a
/// `{"error"}` 400 like every other mistake.
#[derive(Debug, serde::Deserialize)]
pub struct ModelPath {
    pub(super) model: String,
    version: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ModelPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<ModelPath>::from_request_parts(parts, state)
            .await
            .map(|Path(path)| path)
            .map_err(|e| ApiError::BadRequest(format!("bad model path: {}", e.body_text())))
    }
}

/// `GET /v2`.
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "aimass",
        version: env!("CARGO_PKG_VERSION"),
        extensions: super::EXTENSIONS.to_vec(),
    })
}

/// `GET /v2/health/live`: the process answers. KServe's protocol shows
/// the body `{"live": true}` (its client parses it); tritonclient reads
/// only the status.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: loaded and not shutting down. Answered without
/// logging: probes poll it, and "not yet" is expected while loading.
pub async fn ready(State(state): Shared) -> Response {
    if let Some(error) = state.not_ready_because() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": error })),
        )
            .into_response()
    } else {
        Json(json!({ "ready": true })).into_response()
    }
}

/// `GET /v2/models` (KServe): the names of the models ready to serve.
pub async fn list_models(State(state): Shared) -> Json<Value> {
    let names: std::collections::BTreeSet<String> = state
        .service
        .ready_models()
        .iter()
        .map(|m| m.model_name().to_string())
        .collect();
    Json(json!({ "models": names }))
}

/// `GET /v2/models/{m}[/versions/{v}]`.
pub async fn model_metadata(
    State(state): Shared,
    path: ModelPath,
) -> Result<Json<ModelMetadata>, ApiError> {
    let model = state.service.model(&path.model, path.version.as_deref())?;
    let tensors = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| TensorMetadata {
                name: s.name.clone(),
                datatype: s.dtype.name(),
                shape: s.shape.clone(),
            })
            .collect()
    };
    let name = model.model_name();
    Ok(Json(ModelMetadata {
        name: name.to_string(),
        versions: state
            .service
            .versions(name)
            .iter()
            .map(u64::to_string)
            .collect(),
        platform: model.platform(),
        inputs: tensors(&model.signature.inputs),
        outputs: tensors(&model.signature.outputs),
    }))
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`.
pub async fn model_ready(State(state): Shared, path: ModelPath) -> Result<Json<Value>, ApiError> {
    let model = state.service.model(&path.model, path.version.as_deref())?;
    Ok(Json(json!({ "name": model.model_name(), "ready": true })))
}

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's model configuration.
pub async fn model_config(State(state): Shared, path: ModelPath) -> Result<Json<Value>, ApiError> {
    let model = state.service.model(&path.model, path.version.as_deref())?;
    let config = ModelConfig::of(&model);
    let tensors = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| json!({ "name": s.name, "data_type": triton_type(s.dtype), "dims": s.shape }))
            .collect()
    };
    let mut json = json!({
        "name": config.name,
        "platform": config.platform,
        "backend": "aimass",
        // Batches travel in the tensors' leading dimension, which the
        // signature already shows as -1.
        "max_batch_size": 0,
        "input": tensors(&config.inputs),
        "output": tensors(&config.outputs),
        "parameters": {
            "kind": { "string_value": config.kind },
            "members": { "string_value": config.members.join(",") },
        },
    });
    if let Some(batching) = &config.dynamic_batching {
        json["dynamic_batching"] = json!({
            "max_queue_delay_microseconds": batching.max_queue_delay_us,
            "preferred_batch_size": batching.preferred_batch_sizes,
            "default_queue_policy": { "max_queue_size": batching.max_queue_size },
        });
    }
    // Where a running rollout stands (aimass's own key).
    if let Some(rollout) = &config.rollout {
        json["rollout"] = json!(rollout);
    }
    Ok(Json(json))
}

fn triton_type(dtype: Dtype) -> String {
    format!("TYPE_{}", dtype.name())
}

/// `GET /v2/models/stats`.
pub async fn all_stats(State(state): Shared) -> Json<Value> {
    let stats = state.service.all_statistics();
    Json(json!({ "model_stats": stats }))
}

/// `GET /v2/models/{m}[/versions/{v}]/stats`.
pub async fn model_stats(State(state): Shared, path: ModelPath) -> Result<Json<Value>, ApiError> {
    let model = state.service.model(&path.model, path.version.as_deref())?;
    let stats = state.service.statistics(&model.name);
    Ok(Json(json!({ "model_stats": [stats] })))
}

/// Management bodies are small JSON objects.
const MANAGEMENT_BODY_BYTES: usize = 64 << 10;

pub(super) async fn management_body(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<ReadBody, ApiError> {
    let limits = &state.limits;
    read_body(
        headers,
        body,
        MANAGEMENT_BODY_BYTES,
        limits.body_timeout,
        &state.bodies,
    )
    .await
}

/// `POST /v2/repository/index` (an empty body is accepted).
pub async fn repository_index(
    State(state): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = management_body(&state, &headers, body).await?.bytes;
    let ready_only = match optional_object(&body)? {
        Some(object) => object
            .get("ready")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        None => false,
    };
    Ok(Json(json!(state.service.index(ready_only))))
}

/// `POST /v2/repository/models/{m}/load`: re-read the config and swap in a
/// fresh copy of the model.
pub async fn load(
    State(state): Shared,
    path: ModelPath,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let body = management_body(&state, &headers, body).await?.bytes;
    if let Some(object) = optional_object(&body)?
        && let Some(parameters) = object.get("parameters").and_then(Value::as_object)
        && let Some(key) = parameters
            .keys()
            .find(|k| *k == "config" || k.starts_with("file:"))
    {
        return Err(ApiError::BadRequest(format!(
            "load parameter `{key}` is not supported: aimass loads models from its config file \
             ({}); edit it and load again",
            state.service.config().display()
        )));
    }
    let took = state.service.load(&path.model).await?;
    tracing::info!(model = %path.model, "loaded in {} ms", took.as_millis());
    Ok(StatusCode::OK)
}

/// `POST /v2/repository/models/{m}/unload`; with the parameter
/// `unload_users: true` the hierarchies calling the model go too.
pub async fn unload(
    State(state): Shared,
    path: ModelPath,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let body = management_body(&state, &headers, body).await?.bytes;
    let with_users = match optional_object(&body)?
        .as_ref()
        .and_then(|o| o.get("parameters"))
        .and_then(|p| p.get("unload_users"))
    {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unload parameter `unload_users` must be true or false, not {other}"
            )));
        }
    };
    let users = state.service.unload(&path.model, with_users)?;
    tracing::info!(model = %path.model, with = ?users, "unloaded");
    Ok(StatusCode::OK)
}

/// `GET /metrics` in Prometheus' text format.
pub async fn metrics() -> Result<Response, ApiError> {
    let handle = crate::metrics::install().ok_or_else(|| {
        ApiError::Unavailable("another metrics recorder owns this process".into())
    })?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

/// Anything else.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint {method} {}", uri.path()))
}

/// A known path with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = json!({ "error": format!("{} does not take {method}", uri.path()) });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// `POST /v2/models/{m}[/versions/{v}]/infer`: the body read within its
/// limits, decoded, answered by the inference service, encoded.
pub async fn infer(
    State(state): Shared,
    path: ModelPath,
    request_id: Option<axum::Extension<super::RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let request_id = request_id.map(|axum::Extension(id)| id.0);
    let result = answer(&state, &path, &headers, body, received, request_id).await;
    let status = result
        .as_ref()
        .map_or_else(ApiError::status, |_| StatusCode::OK);
    let label = state.service.metric_label(&path.model);
    crate::metrics::request(label, status.as_u16(), received.elapsed());
    result
}

async fn answer(
    state: &ServerState,
    path: &ModelPath,
    headers: &HeaderMap,
    body: Body,
    received: Instant,
    request_id: Option<String>,
) -> Result<Response, ApiError> {
    let limits = &state.limits;
    // Read within its deadline and the bytes budget, which stays charged
    // until the answer is sent; no inference slot is held meanwhile.
    let mut charged = read_body(
        headers,
        body,
        limits.max_body_bytes,
        limits.body_timeout,
        &state.bodies,
    )
    .await?;
    let bytes = bytes::Bytes::from(std::mem::take(&mut charged.bytes));
    let json_length = match headers.get(HEADER_LENGTH) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::BadRequest("header Inference-Header-Content-Length is not text".into())
        })?),
        None => None,
    };
    let (json, binary) = codec::split_body(json_length, &bytes)?;
    let binary = bytes.slice_ref(binary);
    let mut decoded = codec::decode(json, binary, received)?;
    decoded.request.request_id = request_id;
    drop(bytes);
    let answer = state
        .service
        .infer(&path.model, path.version.as_deref(), decoded.request)
        .await?;
    let encoded = codec::encode(answer, &decoded.binary)?;
    let content_type = if encoded.json_length.is_some() {
        "application/octet-stream"
    } else {
        "application/json"
    };
    let mut response = encoded.body.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(length) = encoded.json_length {
        response_headers.insert(HEADER_LENGTH, HeaderValue::from(length));
    }
    drop(charged);
    Ok(response)
}

/// An optional JSON object body (empty is fine).
fn optional_object(body: &[u8]) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(other) => Err(ApiError::BadRequest(format!(
            "the body must be a JSON object, got {other}"
        ))),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}
