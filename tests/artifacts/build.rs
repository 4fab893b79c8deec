//! Compiles every plugin under `plugins/`, `tests/plugins/` and `examples/` to a
//! `wasm32-wasip2` component with a nested cargo, and generates constants
//! with their paths plus a `foreach_plugin!` macro over their names.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("tests/artifacts sits two levels below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let target_dir = out_dir.join("plugins-target");

    let plugins: Vec<String> = ["plugins", "tests/plugins", "examples"]
        .iter()
        .flat_map(|dir| plugin_dirs(&root.join(dir)))
        .collect();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Settings meant for the outer (native) build must not leak into
        // the guest build; clippy's wrapper in particular would run on it.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET");
    for plugin in &plugins {
        cmd.args(["-p", plugin]);
    }
    let status = cmd.status().expect("failed to run cargo for the plugins");
    if !status.success() {
        panic!(
            "building the plugins for {TARGET} failed (see above). If the target is missing, \
             run `rustup target add {TARGET}`."
        );
    }

    let release = target_dir.join(TARGET).join("release");
    let mut generated = String::new();
    for plugin in &plugins {
        let file_stem = plugin.replace('-', "_");
        let wasm = release.join(format!("{file_stem}.wasm"));
        assert!(wasm.exists(), "cargo did not produce {}", wasm.display());
        rerun_for_sources(&release.join(format!("{file_stem}.d")));
        writeln!(
            generated,
            "/// The `{plugin}` component.\npub const {}: &str = {:?};",
            file_stem.to_uppercase(),
            wasm.display().to_string()
        )
        .expect("writing to a String");
    }
    let names: Vec<String> = plugins.iter().map(|p| p.replace('-', "_")).collect();
    writeln!(
        generated,
        "/// Invokes `$mac!(name)` for every plugin, so that a test suite can\n\
         /// require a test per plugin.\n\
         #[macro_export]\nmacro_rules! foreach_plugin {{\n    ($mac:ident) => {{\n{}    }};\n}}",
        names
            .iter()
            .map(|n| format!("        $mac!({n});\n"))
            .collect::<String>()
    )
    .expect("writing to a String");
    fs::write(out_dir.join("plugins.rs"), generated).expect("writing plugins.rs");

    for dir in ["plugins", "tests/plugins", "examples", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
}

/// The package names of the plugin crates directly under `dir`; each
/// folder must be named after its package.
fn plugin_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Re-runs this script when any source file a plugin was built from changes,
/// as listed in cargo's dep-info file (`target: dep dep ...`).
fn rerun_for_sources(dep_info: &Path) {
    let Ok(text) = fs::read_to_string(dep_info) else {
        return;
    };
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        // Paths with spaces are escaped as `\ `.
        let deps = deps.replace("\\ ", "\u{0}");
        for dep in deps.split_whitespace() {
            println!("cargo:rerun-if-changed={}", dep.replace('\u{0}', " "));
        }
    }
}
