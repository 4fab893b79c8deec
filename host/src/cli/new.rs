//! `aimass new NAME`: a folder that serves a plugin of the author's own as
//! it is (the plugin crate, a config that builds and serves it, a request
//! for it), so that a first plugin needs no paths rewritten.

use std::path::{Path, PathBuf};

/// The plugin the folder starts from: the repository's template, which
/// `tests/plugins.rs` builds and runs.
const TEMPLATE: &str = include_str!("../../../examples/plugin-template/src/lib.rs");

/// The SDK of the checkout this binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// The longest name taken (crates.io's limit).
const MAX_NAME: usize = 64;

/// Writes the folder `dir` (default `./NAME`) and says what to run next.
pub fn run(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<(), String> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let sdk = sdk_folder(sdk)?;
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!(
            "{} already exists and is not empty: choose another NAME or --dir",
            dir.display()
        ));
    }
    let files = files(name, &sdk)?;
    let write = |relative: &str, text: &str| {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    for (relative, text) in &files {
        write(relative, text)?;
    }
    let shown = dir.display();
    super::stdout::line(&format!(
        "wrote {shown}/ (plugin crate `{name}`, aimass.toml, request.json). Serve it:\n\
         \n  cd {shown} && aimass serve --build aimass.toml\n\
         \nand ask it, from another shell in {shown}:\n\
         \n  curl -s -X POST http://127.0.0.1:8000/v2/models/{name}/infer \
         -H 'content-type: application/json' -d @request.json\n\
         \nThen make src/lib.rs yours; {shown}/README.md says what each file is."
    ))
}

/// A name cargo takes as a package name, and the config as a section key.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        return Ok(());
    }
    Err(format!(
        "`{}` cannot name a plugin: use up to {MAX_NAME} ASCII letters, digits, `-` and `_`, \
         starting with a letter (e.g. `my-model`)",
        crate::printable::escape_except(name, |_| false)
    ))
}

/// The SDK folder to build against, as an absolute path.
fn sdk_folder(given: Option<&Path>) -> Result<PathBuf, String> {
    let (path, source) = match given {
        Some(path) => (path.to_path_buf(), "--sdk"),
        None => (
            PathBuf::from(BUILT_SDK),
            "the checkout this aimass was built from",
        ),
    };
    let path = std::fs::canonicalize(&path).map_err(|e| {
        format!(
            "no aimass SDK at {} ({source}): {e}; pass --sdk PATH, the `sdk/` folder of an \
             aimass checkout",
            path.display()
        )
    })?;
    if !path.join("Cargo.toml").is_file() {
        return Err(format!(
            "{} ({source}) holds no Cargo.toml: pass --sdk PATH, the `sdk/` folder of an \
             aimass checkout",
            path.display()
        ));
    }
    Ok(path)
}

/// Each file of the folder, by path relative to it.
fn files(name: &str, sdk: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let sdk = sdk
        .to_str()
        .ok_or_else(|| format!("the SDK's path {} is not UTF-8", sdk.display()))?;
    // A TOML string, quoted and escaped.
    let sdk = toml::Value::String(sdk.to_string()).to_string();
    let wasm = name.replace('-', "_");
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: so that `cargo test` tests the logic.
crate-type = ["cdylib", "rlib"]

[dependencies]
aimass-sdk = {{ path = {sdk} }}

# A workspace of its own, wherever this folder is.
[workspace]
"#
    );
    let config = format!(
        r#"# Serves the plugin in this folder as model `{name}`:
#   aimass serve --build aimass.toml
# `--build` runs each plugin's `build` command in this file's folder, and
# every relative path here is relative to this file's folder too.

[plugins.{name}]
# Where `build` leaves the component (dashes in the crate's name become
# underscores). `--target-dir` keeps it here even when CARGO_TARGET_DIR is set.
path = "target/wasm32-wasip2/release/{wasm}.wasm"
build = "cargo build --release --target wasm32-wasip2 --target-dir target"

[nodes.{name}]
plugin = "{name}"
# What `init` reads (src/lib.rs refuses any other key).
params = {{ threshold = 0.5 }}

# Compose it with other models: see the README's "Configuration" section,
# e.g. [sequence.pipeline] steps = [{{ model = "{name}" }}, ...].
"#
    );
    let request = r#"{"inputs": [{"name": "score", "shape": [3], "datatype": "FP32", "data": [0.1, 0.5, 0.9]}]}
"#
    .to_string();
    let readme = format!(
        r#"# {name}

An aimass plugin, made by `aimass new {name}`: a binary classifier over one
score per row (`label = 1` when `score >= threshold`) to replace with yours.

- `src/lib.rs`: the plugin. `describe()` says what it takes and returns,
  `init()` reads the node's `params`, `infer()` answers. `cargo test` runs
  its logic natively.
- `Cargo.toml`: the crate; its one dependency is the aimass SDK.
- `aimass.toml`: serves it as model `{name}`. `aimass serve --build aimass.toml`
  builds the plugin first (its `build` command runs in this folder).
- `request.json`: a request for it.

```sh
rustup target add wasm32-wasip2   # once
aimass serve --build aimass.toml
curl -s -X POST http://127.0.0.1:8000/v2/models/{name}/infer -H 'content-type: application/json' -d @request.json
aimass inspect target/wasm32-wasip2/release/{wasm}.wasm
```
"#
    );
    Ok(vec![
        ("Cargo.toml", cargo),
        ("src/lib.rs", TEMPLATE.to_string()),
        ("aimass.toml", config),
        ("request.json", request),
        ("README.md", readme),
        (".gitignore", "/target\n".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cargo_and_the_config_take_pass_others_are_refused() {
        for good in ["my-model", "m", "Model_2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "m".repeat(MAX_NAME + 1);
        for bad in [
            "",
            "2fast",
            "-x",
            "my model",
            "a.b",
            "ü",
            "x\"y",
            long.as_str(),
        ] {
            let error = check_name(bad).unwrap_err();
            assert!(error.contains("cannot name a plugin"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_config_is_one_aimass_reads() {
        let files = files("my-model", Path::new("/opt/aimass/sdk")).unwrap();
        let config = &files.iter().find(|(p, _)| *p == "aimass.toml").unwrap().1;
        let parsed: crate::config::Config = toml::from_str(config).unwrap();
        assert_eq!(
            parsed.plugins["my-model"].path,
            "target/wasm32-wasip2/release/my_model.wasm"
        );
        let cargo = &files.iter().find(|(p, _)| *p == "Cargo.toml").unwrap().1;
        let manifest: toml::Table = toml::from_str(cargo).unwrap();
        assert_eq!(
            manifest["dependencies"]["aimass-sdk"]["path"].as_str(),
            Some("/opt/aimass/sdk")
        );
    }
}
