//! `aimass check CONFIG`: load everything the file describes, type-check
//! every hierarchy, and print what would be served.

use crate::nn::shape_text;
use crate::printable::escape;
use crate::repository::Repository;
use crate::tensor::TensorSpec;
use std::fmt::Write as _;
use std::path::Path;

/// Prints each model's signature, or every error in the file.
pub async fn run(config: &Path) -> Result<(), String> {
    let repository = Repository::open(config).await.map_err(|e| e.to_string())?;
    super::stdout::write(&render(&repository))
}

fn specs(specs: &[TensorSpec]) -> String {
    let parts: Vec<String> = specs
        .iter()
        .map(|s| format!("{} {} {}", s.name, s.dtype, shape_text(&s.shape)))
        .collect();
    parts.join(", ")
}

/// One line per model: kind, inputs and outputs.
pub fn render(repository: &Repository) -> String {
    let mut out = String::new();
    for (name, model) in &repository.models {
        // Names come from the config and the plugins: escaped, so that
        // none can forge a line (`ok: 99 models`) or reach the terminal.
        let line = format!(
            "{name} ({}): ({}) -> ({})",
            model.kind.name(),
            specs(&model.signature.inputs),
            specs(&model.signature.outputs)
        );
        let _ = writeln!(out, "{}", escape(&line));
    }
    let _ = writeln!(
        out,
        "ok: {} models, {} graphs",
        repository.models.len(),
        repository.graphs.names().count()
    );
    out
}
