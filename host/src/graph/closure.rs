//! What calls what: every hierarchy's references resolved to versions,
//! and from them the models one model needs (its closure) and the
//! hierarchies that need it (its users).

use super::kind::{Section, sections};
use super::refs::ModelRef;
use crate::config::{ConfigFile, Versions};
use std::collections::{BTreeMap, BTreeSet};

/// `model` and every model it calls, directly or not: what must be started
/// to serve it alone. `None` when the config has no such model.
pub fn model_closure(file: &ConfigFile, model: &str) -> Option<BTreeSet<String>> {
    let hierarchies = hierarchy_refs(file);
    if !hierarchies.contains_key(model) && !file.config.nodes.contains_key(model) {
        return None;
    }
    let mut closure = BTreeSet::new();
    let mut pending = vec![model.to_string()];
    while let Some(name) = pending.pop() {
        if let Some((_, refs)) = hierarchies.get(&name) {
            pending.extend(
                refs.iter()
                    .filter(|r| !closure.contains(&r.name))
                    .map(|r| r.name.clone()),
            );
        }
        closure.insert(name);
    }
    Some(closure)
}

/// Every hierarchy that calls `model`, directly or not: what must be
/// rebuilt when `model` changes, so that none keeps calling the old one.
pub fn model_users(file: &ConfigFile, model: &str) -> BTreeSet<String> {
    let hierarchies = hierarchy_refs(file);
    let mut users = BTreeSet::new();
    let mut pending = vec![model.to_string()];
    while let Some(name) = pending.pop() {
        for (user, (_, refs)) in &hierarchies {
            if !users.contains(user) && refs.iter().any(|r| r.name == name) {
                users.insert(user.clone());
                pending.push(user.clone());
            }
        }
    }
    users
}

/// Every hierarchy with its section and the models it references directly,
/// each reference resolved to the section key of the version it means (a
/// plain name: the model's default version); an unknown one left as written.
pub(super) fn hierarchy_refs(file: &ConfigFile) -> BTreeMap<String, (Section<'_>, Vec<ModelRef>)> {
    let versions = Versions::of(&file.config);
    sections(&file.config)
        .into_iter()
        .map(|(name, section)| {
            let mut refs = section.refs(name);
            for r in &mut refs {
                if let Some(key) = versions.resolve(&r.name) {
                    r.name = key.clone();
                }
            }
            (name.clone(), (section, refs))
        })
        .collect()
}

/// The tree of uses under `model` (a model's name, or a version's key):
/// each use with its name (section key), kind, role in its parent (the
/// config's key, e.g. `stages[0].model`), its section as written, and its
/// members in the config's order. For the web page. `None` when the config
/// has no such model.
pub fn describe(file: &ConfigFile, model: &str) -> Option<serde_json::Value> {
    // Deep enough for any real hierarchy; a file edited into a cycle since
    // it was checked stops here rather than overflowing the stack.
    const MAX_DEPTH: usize = 32;
    let hierarchies = hierarchy_refs(file);
    let key = Versions::of(&file.config).resolve(model)?.clone();
    let table: toml::Table = file.text.parse().ok()?;
    fn walk(
        key: &str,
        role: &str,
        hierarchies: &BTreeMap<String, (Section<'_>, Vec<ModelRef>)>,
        table: &toml::Table,
        depth: usize,
    ) -> serde_json::Value {
        let Some((section, refs)) = hierarchies.get(key).filter(|_| depth < MAX_DEPTH) else {
            return serde_json::json!({ "name": key, "kind": "node", "role": role });
        };
        let kind = section.kind().name();
        let section_key = section.key(key);
        let raw = section_key
            .split_once('.')
            .and_then(|(table_name, name)| table.get(table_name)?.get(name));
        let prefix = format!("{section_key}.");
        let members: Vec<serde_json::Value> = refs
            .iter()
            .map(|r| {
                let role = r.key.strip_prefix(&prefix).unwrap_or(&r.key);
                walk(&r.name, role, hierarchies, table, depth + 1)
            })
            .collect();
        serde_json::json!({
            "name": key,
            "kind": kind,
            "role": role,
            "section": raw.and_then(|v| serde_json::to_value(v).ok()),
            "members": members,
        })
    }
    Some(walk(&key, "", &hierarchies, &table, 0))
}
