//! `aimass eval CONFIG --model NAME --data FILE.csv|CAPTURE|IMAGES [--batch N] [--json]`
//! (IMAGES: a folder of images with `labels.json`, for models that read text).

use crate::eval::{
    Dataset, evaluate, evaluate_text, input_name, is_text_set, read_capture, render, render_text,
};
use crate::repository::Repository;
use std::path::Path;

/// Evaluates `model` on `data` and prints the report.
pub async fn run(
    config: &Path,
    model: &str,
    data: &Path,
    batch: usize,
    json: bool,
) -> Result<(), String> {
    // A capture folder is read once the model's input name is known.
    let csv = if data.is_dir() {
        None
    } else {
        Some(Dataset::read_csv(data)?)
    };
    let repository = Repository::open(config).await.map_err(|e| e.to_string())?;
    let served = repository.models.get(model).ok_or_else(|| {
        let names: Vec<&str> = repository.models.keys().map(String::as_str).collect();
        format!(
            "{} has no model `{model}` (its models: {})",
            config.display(),
            names.join(", ")
        )
    })?;
    if is_text_set(data) {
        let report = evaluate_text(served, data).await?;
        if json {
            let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            super::stdout::line(&shown(&text))?;
        } else {
            super::stdout::write(&shown(&render_text(&report)))?;
        }
        return Ok(());
    }
    let (dataset, live) = match csv {
        Some(dataset) => (dataset, None),
        None => {
            let captured = read_capture(data, &input_name(served)?)?;
            (captured.dataset, Some(captured.live))
        }
    };
    let mut report = evaluate(served, &dataset, &data.display().to_string(), batch).await?;
    report.live = live;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        super::stdout::line(&shown(&text))
    } else {
        super::stdout::write(&shown(&render(&report)))
    }
}

/// A report as printed: it may quote what a plugin answered (an OCR line)
/// or a config named; its own lines stay, everything else a terminal acts
/// on is escaped (inside JSON strings, as JSON's own `\uNNNN`).
fn shown(report: &str) -> std::borrow::Cow<'_, str> {
    crate::printable::escape_except(report, |c| c == '\n')
}
