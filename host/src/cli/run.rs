//! `aimass run CONFIG MODEL --input REQUEST.json`: one inference without a
//! server, printing the v2 response (as JSON, whatever the request asked).

use crate::repository::Repository;
use crate::server::{BinaryChoice, Limits, decode, encode};
use crate::service::InferenceService;
use std::io::Read as _;
use std::path::Path;
use std::time::Instant;

/// Runs `model` on the v2 request in `input` (`-` for stdin), through the
/// same inference service the server uses.
pub async fn run(config: &Path, model: &str, input: &Path) -> Result<(), String> {
    let body = if input == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read the request from stdin: {e}"))?;
        body
    } else {
        std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?
    };
    let received = Instant::now();
    let repository = Repository::open(config).await.map_err(|e| e.to_string())?;
    if !repository.models.contains_key(model) {
        let names: Vec<&str> = repository.models.keys().map(String::as_str).collect();
        return Err(format!(
            "{} has no model `{model}` (its models: {})",
            config.display(),
            names.join(", ")
        ));
    }
    let service = InferenceService::new(config.to_path_buf(), Limits::default().service());
    service.install(repository);
    let decoded = decode(&body, bytes::Bytes::new(), received).map_err(|e| e.to_string())?;
    let response = service.infer(model, None, decoded.request).await;
    // A captured model's one request is written before the process ends
    // (a short blocking wait: nothing else runs here).
    service.close_captures();
    let response = response.map_err(|e| e.to_string())?;
    let encoded = encode(response, &BinaryChoice::none()).map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_slice(&encoded.body)
        .map_err(|e| format!("cannot read back the response: {e}"))?;
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    // serde_json escapes C0 controls only: the rest a terminal acts on
    // (C1, U+2028, bidi overrides in a BYTES answer) is escaped too, as
    // JSON's own `\uNNNN`, so the output stays the same JSON.
    super::stdout::line(&crate::printable::escape_except(&text, |c| c == '\n'))
}
