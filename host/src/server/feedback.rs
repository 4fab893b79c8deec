//! `POST /v2/models/{m}/feedback`: the truth about an earlier request,
//! stored beside the model's capture and joined to it by request id.

use super::error::ApiError;
use super::handlers::{ModelPath, Shared, management_body};
use crate::capture::Feedback;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

/// The longest id or text label kept.
const MAX_TEXT: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    id: String,
    #[serde(default)]
    label: Option<Value>,
    #[serde(default)]
    reward: Option<f64>,
}

/// Stores `{"id": ..., "label": ...}` and/or `"reward"` for model `m`.
pub async fn feedback(
    State(state): Shared,
    path: ModelPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = management_body(&state, &headers, body).await?.bytes;
    let entry = parse(&body)?;
    let id = entry.id.clone();
    state.service.feedback(&path.model, entry)?;
    Ok(Json(json!({ "id": id })))
}

fn parse(body: &[u8]) -> Result<Feedback, ApiError> {
    let bad = |message: String| ApiError::BadRequest(message);
    let body: FeedbackBody = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the feedback is not {{\"id\": \"...\", \"label\": ..., \"reward\": ...}}: {e}"
        ))
    })?;
    if body.id.is_empty() || body.id.len() > MAX_TEXT {
        return Err(bad(format!(
            "`id` must be the request's id, 1 to {MAX_TEXT} bytes (the body's `id` or its \
             x-request-id)"
        )));
    }
    let (label, label_text) = match body.label {
        None => (None, None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(label) => (Some(label), None),
            None => return Err(bad(format!("`label` {n} is not a whole number"))),
        },
        Some(Value::String(text)) if text.len() <= MAX_TEXT => (None, Some(text)),
        Some(Value::String(_)) => {
            return Err(bad(format!("`label` is longer than {MAX_TEXT} bytes")));
        }
        Some(other) => {
            return Err(bad(format!(
                "`label` must be a class index or a text label, not {other}"
            )));
        }
    };
    if body.reward.is_some_and(|r| !r.is_finite()) {
        return Err(bad("`reward` must be a finite number".into()));
    }
    if label.is_none() && label_text.is_none() && body.reward.is_none() {
        return Err(bad(
            "the feedback says nothing: give a `label`, a `reward` or both".into(),
        ));
    }
    Ok(Feedback {
        id: body.id,
        time_us: crate::capture::now_us(),
        label,
        label_text,
        reward: body.reward,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn labels_rewards_and_what_is_refused() {
        let entry = parse(br#"{"id": "r1", "label": 3}"#).unwrap();
        assert_eq!(
            (entry.label, entry.label_text, entry.reward),
            (Some(3), None, None)
        );
        let entry = parse(br#"{"id": "r1", "label": "cat", "reward": 0.5}"#).unwrap();
        assert_eq!(
            (entry.label_text.as_deref(), entry.reward),
            (Some("cat"), Some(0.5))
        );
        assert!(error(r#"{"id": "r1"}"#).contains("says nothing"));
        assert!(error(r#"{"id": "", "label": 1}"#).contains("`id` must be"));
        assert!(error(r#"{"id": "r", "label": 1.5}"#).contains("not a whole number"));
        assert!(error(r#"{"id": "r", "label": [1]}"#).contains("class index"));
        assert!(error(r#"{"id": "r", "lable": 1}"#).contains("unknown field `lable`"));
        assert!(error(r#"{"label": 1}"#).contains("missing field `id`"));
    }
}
