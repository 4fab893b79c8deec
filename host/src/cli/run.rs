//! `aimass run CONFIG MODEL --input REQUEST.json`: one inference without a
//! server, printing the v2 response (as JSON, whatever the request asked).

use crate::repository::Repository;
use crate::server::{ApiError, decode, encode};
use std::io::Read as _;
use std::path::Path;

/// Runs `model` on the v2 request in `input` (`-` for stdin).
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
    let repository = Repository::open(config).await.map_err(|e| e.to_string())?;
    let Some(served) = repository.models.get(model) else {
        let names: Vec<&str> = repository.models.keys().map(String::as_str).collect();
        return Err(format!(
            "{} has no model `{model}` (its models: {})",
            config.display(),
            names.join(", ")
        ));
    };
    let fail = |e: ApiError| e.to_string();
    let rows = crate::server::Limits::default().max_batch_rows;
    let mut decoded = decode(served, &body, &[], rows).map_err(fail)?;
    decoded.outputs = decoded.outputs.as_json();
    let id = decoded.request.id.clone();
    let response = served
        .run(decoded.request)
        .await
        .map_err(|e| ApiError::from(e).to_string())?;
    let encoded = encode(served, id, response, &decoded.outputs).map_err(fail)?;
    let value: serde_json::Value = serde_json::from_slice(&encoded.body)
        .map_err(|e| format!("cannot read back the response: {e}"))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
    );
    Ok(())
}
