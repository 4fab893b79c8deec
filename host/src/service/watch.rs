//! Poll mode (`aimass serve --watch`, Triton's `--model-control-mode=poll`):
//! the config file and every file it names are polled, and a model whose
//! own section, plugin section, artifact sections or files changed is
//! loaded the way `POST /v2/repository/models/{m}/load` does: the new one
//! swapped in with every hierarchy that calls it, no request failing. A
//! change waits until it has held for one whole poll, so a file caught half
//! written is not loaded. A model is loaded by name, every version at once
//! (its `[versions]` policy and `[rollouts]` entry are part of what is
//! watched). A change `check` refuses is logged and counted, and the old
//! model keeps serving; a model gone from the config is unloaded.

use super::InferenceService;
use crate::config::split_version;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// What a model's serving depends on, as text: its section (and, for a
/// node, its plugin's and artifacts' sections) plus the size and time of
/// every file those name. Equal text, nothing to reload.
type Fingerprint = String;

/// Tables that are not models (a model's `versions`, `rollouts` and
/// `capture` entries are part of its fingerprint: a changed capture is
/// restarted by the model's load).
const NOT_MODELS: [&str; 6] = [
    "engine",
    "plugins",
    "artifacts",
    "versions",
    "rollouts",
    "capture",
];

/// Polls every `every` until the task is dropped or aborted.
pub async fn watch(service: &InferenceService, every: Duration) {
    let config = service.config().to_path_buf();
    let mut loaded = fingerprints(&config).unwrap_or_default();
    let mut seen = loaded.clone();
    let mut complaint = String::new();
    // The state in which a load failed: not tried again until something
    // in the config or its files changes (the fix may be anywhere).
    let mut stuck: Option<Fingerprints> = None;
    loop {
        tokio::time::sleep(every).await;
        let now = match fingerprints(&config) {
            Ok(now) => now,
            Err(e) => {
                // Once per distinct problem, not once per poll.
                if e != complaint {
                    tracing::warn!("--watch: {e}; the models serving now keep serving");
                    complaint = e;
                }
                continue;
            }
        };
        complaint.clear();
        if stuck.as_ref() == Some(&now) {
            continue;
        }
        // Changed since it was loaded, and the same as one poll ago.
        let settled = |name: &str| now.get(name) == seen.get(name);
        let changed: Vec<String> = now
            .models
            .keys()
            .filter(|name| now.get(name) != loaded.get(name) && settled(name))
            .cloned()
            .collect();
        let gone: Vec<String> = loaded
            .models
            .keys()
            .filter(|name| !now.models.contains_key(*name) && !seen.models.contains_key(*name))
            .cloned()
            .collect();
        // A model is loaded by name, all its versions at once (its policy
        // decides which serve); a model gone whole is unloaded. Nodes
        // first: loading one rebuilds the hierarchies that call it.
        let base = |key: &String| split_version(key).0.to_string();
        let mut to_load: Vec<String> = changed.iter().map(base).collect();
        let mut to_unload = Vec::new();
        for key in &gone {
            let model = base(key);
            if now.models.keys().any(|k| base(k) == model) {
                to_load.push(model);
            } else {
                to_unload.push(model);
            }
        }
        let is_node = |model: &String| {
            now.models
                .iter()
                .any(|(k, f)| &base(k) == model && f.starts_with("[nodes]"))
        };
        to_load.sort_by_key(|model| (!is_node(model), model.clone()));
        to_load.dedup();
        to_unload.sort();
        to_unload.dedup();
        let mut failed = false;
        for model in &to_load {
            match service.load(model).await {
                Ok(took) => {
                    tracing::info!(model = %model, "--watch: reloaded in {} ms", took.as_millis());
                    loaded.models.retain(|k, _| &base(k) != model);
                    for (key, fingerprint) in now.models.iter().filter(|(k, _)| &base(k) == model) {
                        loaded.models.insert(key.clone(), fingerprint.clone());
                    }
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(model = %model, "--watch: not reloaded, the old one keeps serving: {e}");
                }
            }
        }
        for model in to_unload {
            match service.unload(&model, false) {
                Ok(_) => {
                    tracing::info!(model = %model, "--watch: gone from the config, unloaded");
                    loaded.models.retain(|k, _| base(k) != model);
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(model = %model, "--watch: gone from the config but not unloaded: {e}");
                }
            }
        }
        if now.engine != loaded.engine && now.engine == seen.engine {
            tracing::warn!("--watch: [engine] changed; restart the server to apply it");
            loaded.engine = now.engine.clone();
        }
        stuck = failed.then(|| now.clone());
        seen = now;
    }
}

/// The engine's section and every model's fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
struct Fingerprints {
    engine: Fingerprint,
    models: BTreeMap<String, Fingerprint>,
}

impl Fingerprints {
    fn get(&self, model: &str) -> Option<&Fingerprint> {
        self.models.get(model)
    }
}

fn fingerprints(config: &Path) -> Result<Fingerprints, String> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{} is not valid TOML: {e}", config.display()))?;
    let dir = config.parent().unwrap_or(Path::new("."));
    let section = |kind: &str, name: &str| -> Option<&toml::Value> { table.get(kind)?.get(name) };
    let file = |value: Option<&toml::Value>| -> String {
        let Some(path) = value
            .and_then(|s| s.get("path"))
            .and_then(toml::Value::as_str)
        else {
            return String::new();
        };
        match std::fs::metadata(dir.join(path)) {
            Ok(m) => format!(" file {path} {} {:?}", m.len(), m.modified().ok()),
            Err(e) => format!(" file {path} unreadable ({})", e.kind()),
        }
    };
    let text_of = |value: Option<&toml::Value>| value.map(ToString::to_string).unwrap_or_default();
    let names = |value: Option<&toml::Value>, key: &str| -> Vec<String> {
        value
            .and_then(|v| v.get(key))
            .and_then(toml::Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut out = Fingerprints {
        engine: text_of(table.get("engine")),
        models: BTreeMap::new(),
    };
    for (kind, models) in &table {
        let Some(models) = models.as_table() else {
            continue;
        };
        if NOT_MODELS.contains(&kind.as_str()) {
            continue;
        }
        for (name, own) in models {
            let model = split_version(name).0;
            let mut fingerprint = format!(
                "[{kind}] {own} versions {} rollout {} capture {}",
                text_of(section("versions", model)),
                text_of(section("rollouts", model)),
                text_of(section("capture", model))
            );
            if kind == "nodes" {
                let plugin_name = own
                    .get("plugin")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("");
                let plugin = section("plugins", plugin_name);
                fingerprint += &format!(" plugin {}{}", text_of(plugin), file(plugin));
                let mut graphs = names(plugin, "graphs");
                graphs.extend(names(Some(own), "graphs"));
                for graph in graphs {
                    let artifact = section("artifacts", &graph);
                    fingerprint += &format!(" artifact {}{}", text_of(artifact), file(artifact));
                }
            }
            out.models.insert(name.clone(), fingerprint);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::fingerprints;

    #[test]
    fn a_node_changes_with_its_plugin_file_and_a_hierarchy_with_its_section() {
        let dir = std::env::temp_dir().join(format!("aimass-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("aimass.toml");
        let write = |scale: f64, threshold: f64| {
            std::fs::write(
                &config,
                format!(
                    "[plugins.p]\npath = \"p.wasm\"\n[artifacts.g]\npath = \"g.onnx\"\n\
                     [nodes.a]\nplugin = \"p\"\ngraphs = [\"g\"]\nparams = {{ scale = {scale:?} }}\n\
                     [nodes.b]\nplugin = \"p\"\n\
                     [cascade.c]\nstages = [{{ model = \"a\", threshold = {threshold:?} }}, {{ model = \"b\" }}]\n"
                ),
            )
            .unwrap();
        };
        write(1.0, 0.9);
        std::fs::write(dir.join("p.wasm"), b"one").unwrap();
        let first = fingerprints(&config).unwrap();
        assert_eq!(first.models.keys().collect::<Vec<_>>(), ["a", "b", "c"]);

        // Formatting and comments are not changes.
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!("# a comment\n{}", text.replace(" = ", "=")),
        )
        .unwrap();
        assert_eq!(fingerprints(&config).unwrap(), first);

        // The artifact file appears: only `a` uses it.
        std::fs::write(dir.join("g.onnx"), b"graph").unwrap();
        let second = fingerprints(&config).unwrap();
        assert_ne!(second.models["a"], first.models["a"]);
        assert_eq!(
            (&second.models["b"], &second.models["c"]),
            (&first.models["b"], &first.models["c"])
        );

        // The plugin file grows: both nodes; the threshold: the cascade.
        std::fs::write(dir.join("p.wasm"), b"two!").unwrap();
        write(1.0, 0.8);
        let third = fingerprints(&config).unwrap();
        assert_ne!(third.models["a"], second.models["a"]);
        assert_ne!(third.models["b"], second.models["b"]);
        assert_ne!(third.models["c"], second.models["c"]);

        // A capture of the cascade is part of its fingerprint, not a model.
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!("{text}[capture.c]\nfolder = \"capture\"\n"),
        )
        .unwrap();
        let fourth = fingerprints(&config).unwrap();
        assert_eq!(fourth.models.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_ne!(fourth.models["c"], third.models["c"]);
        assert_eq!(fourth.models["a"], third.models["a"]);

        std::fs::write(&config, "[nodes.a\n").unwrap();
        assert!(
            fingerprints(&config)
                .unwrap_err()
                .contains("not valid TOML")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
