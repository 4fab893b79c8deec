//! `aimass inspect PLUGIN.wasm`: what a plugin reports about itself.

use crate::printable::escape;
use crate::runtime::{EngineOptions, GrantedGraphs, InstanceLimits, ModelInfo, NnState, Runtime};
use crate::tensor::TensorSpec;
use std::fmt::Write as _;
use std::path::Path;

/// Loads the plugin (which checks it against the contract), instantiates it
/// with nothing granted, and prints its description.
pub async fn run(path: &Path) -> Result<(), String> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let runtime = Runtime::new(EngineOptions {
        max_instances: 1,
        ..EngineOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let plugin = runtime.load(&name, path, None).map_err(|e| e.to_string())?;
    let nn = NnState::new(&GrantedGraphs::default());
    let mut instance = runtime
        .instantiate(&plugin, &name, nn, InstanceLimits::default())
        .await
        .map_err(|e| e.to_string())?;
    let info = instance.info().await.map_err(|e| e.to_string())?;
    let verdict = crate::runtime::validate_info(&info);
    super::stdout::write(&render(
        path,
        plugin.digest(),
        &info,
        &plugin.imports(runtime.engine()),
        &plugin.exports(runtime.engine()),
    ))?;
    // Shown whole above (escaped), so an author sees what is wrong with it.
    verdict.map_err(|message| format!("plugin `{name}` describes itself wrongly: {message}"))
}

fn render(
    path: &Path,
    digest: &str,
    info: &ModelInfo,
    imports: &[String],
    exports: &[String],
) -> String {
    let specs = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| format!("{} {} {:?}", s.name, s.dtype, s.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    // Everything here but the keys comes from the plugin (or its file's
    // name): written escaped, so that no name or description can forge a
    // line or send the terminal escape sequences.
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key:<10} {}", escape(value));
    };
    line("plugin", &path.display().to_string());
    line("sha256", digest);
    line(
        "model",
        &format!("{} {} ({})", info.name, info.version, info.kind),
    );
    if !info.description.is_empty() {
        line("about", &info.description);
    }
    line("inputs", &specs(&info.inputs));
    line("outputs", &specs(&info.outputs));
    if let Some(labels) = &info.labels {
        line("labels", &labels.join(", "));
    }
    if let Some(max) = info.max_batch_size {
        line("max batch", &max.to_string());
    }
    line("imports", &imports.join(", "));
    line("exports", &exports.join(", "));
    out
}
