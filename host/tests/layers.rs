//! The module graph of `host/src` has no cycle: at every level (the crate's
//! top modules, and the files inside each folder), a module uses only
//! modules that do not use it back, directly or not. Read from the sources:
//! every `crate::…` and `super::…` path outside the test modules is an edge
//! from the file's module to the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModulePath = Vec<String>;

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `graph/model.rs` → `[graph, model]`; `graph/mod.rs` → `[graph]`.
fn module_of(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: ModulePath = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The code without its test modules (they may use anything).
fn production_code(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod ") && next.contains('{'))
        {
            // A test module runs to the end of the file by this crate's style.
            break;
        }
        if line.trim() == "#[cfg(test)]" {
            // One test-only item or `mod x;`: skip the line it guards.
            lines.next();
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// Every path after `crate::` or `super::`, resolved from `module` and cut
/// at the first `{`-group into its members.
fn referenced_paths(code: &str, module: &ModulePath) -> Vec<ModulePath> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(rest) = code.get(i..) else {
            i += 1;
            continue;
        };
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let (base, start) = if boundary && rest.starts_with("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if boundary && rest.starts_with("super::") {
            // `super` of `a/b.rs` is `a`, and of `a/mod.rs` the root.
            let mut base = module.clone();
            base.pop();
            let mut at = i + "super::".len();
            while code[at..].starts_with("super::") {
                base.pop();
                at += "super::".len();
            }
            (base, at)
        } else {
            i += 1;
            continue;
        };
        let tail: String = code[start..]
            .chars()
            .take_while(|c| {
                c.is_alphanumeric() || matches!(c, '_' | ':' | '{' | '}' | ',' | ' ' | '\n')
            })
            .collect();
        for path in expand(&tail) {
            let mut full = base.clone();
            full.extend(path);
            found.push(full);
        }
        i = start;
    }
    found
}

/// `a::b::{c, d::e}` → `[a, b, c]`, `[a, b, d, e]` (one level of braces is
/// enough to name the modules).
fn expand(tail: &str) -> Vec<ModulePath> {
    let mut prefix = ModulePath::new();
    let mut rest = tail;
    loop {
        let rest_trimmed = rest.trim_start();
        if let Some(inner) = rest_trimmed.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut parts = Vec::new();
            let mut depth = 0;
            let mut current = String::new();
            for c in inner[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(std::mem::take(&mut current));
                        continue;
                    }
                    _ => {}
                }
                current.push(c);
            }
            parts.push(current);
            return parts
                .iter()
                .filter(|p| !p.trim().is_empty())
                .flat_map(|p| expand(p.trim()))
                .map(|p| prefix.iter().cloned().chain(p).collect())
                .collect();
        }
        let ident: String = rest_trimmed
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            return vec![prefix];
        }
        prefix.push(ident.clone());
        let after = &rest_trimmed[ident.len()..];
        match after.strip_prefix("::") {
            Some(next) => rest = next,
            None => return vec![prefix],
        }
    }
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &ModulePath, modules: &BTreeSet<ModulePath>) -> Option<ModulePath> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut state, &mut Vec::new()))
}

/// For each folder (and the crate root), the edges between its children.
fn module_graph(src: &Path) -> BTreeMap<ModulePath, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<ModulePath> = files.iter().map(|f| module_of(src, f)).collect();
    let mut levels: BTreeMap<ModulePath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        if file.file_name().is_some_and(|n| n == "main.rs") {
            continue;
        }
        let module = module_of(src, file);
        let text = std::fs::read_to_string(file).expect("read");
        for path in referenced_paths(&production_code(&text), &module) {
            let Some(target) = resolve(&path, &modules) else {
                continue;
            };
            // The level where the two part: an edge between siblings there.
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (module.get(common), target.get(common)) else {
                continue;
            };
            levels
                .entry(module[..common].to_vec())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    levels
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let levels = module_graph(&src);
    assert!(
        levels
            .get(&Vec::new())
            .is_some_and(|top| top.contains_key("graph")),
        "the scan found no edges at the top level: {levels:?}"
    );
    for (level, edges) in &levels {
        if let Some(cycle) = find_cycle(edges) {
            panic!(
                "modules in `{}` import each other in a circle: {}",
                if level.is_empty() {
                    "crate".to_string()
                } else {
                    level.join("::")
                },
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_scan_sees_a_cycle_when_there_is_one() {
    let dir = std::env::temp_dir().join(format!("aimass-layers-{}", std::process::id()));
    let graph = dir.join("graph");
    std::fs::create_dir_all(&graph).expect("mkdir");
    std::fs::write(dir.join("lib.rs"), "pub mod graph;\n").expect("write");
    std::fs::write(graph.join("mod.rs"), "mod a;\nmod b;\n").expect("write");
    std::fs::write(graph.join("a.rs"), "use super::b::B;\npub struct A;\n").expect("write");
    std::fs::write(
        graph.join("b.rs"),
        "use crate::graph::{a::A, c};\npub struct B;\n#[cfg(test)]\nmod tests {\n use super::super::a;\n}\n",
    )
    .expect("write");
    std::fs::write(graph.join("c.rs"), "use super::{b::B};\n").expect("write");
    let levels = module_graph(&dir);
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let edges = &levels[&vec!["graph".to_string()]];
    assert_eq!(edges["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(
        edges["b"],
        BTreeSet::from(["a".to_string(), "c".to_string()])
    );
    assert!(find_cycle(edges).is_some());
}
