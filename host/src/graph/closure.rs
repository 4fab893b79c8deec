//! What calls what: every hierarchy's references resolved to versions,
//! and from them the models one model needs (its closure) and the
//! hierarchies that need it (its users).

use super::refs::{ModelRef, Section, sections};
use super::{cascade, dag, ensemble, rollout, sequence, shadow, splitter, switch};
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
            let mut refs = match section {
                Section::Sequence(h) => sequence::refs(name, h),
                Section::Dag(h) => dag::refs(name, h),
                Section::Ensemble(h) => ensemble::refs(name, h),
                Section::Switch(h) => switch::refs(name, h),
                Section::Cascade(h) => cascade::refs(name, h),
                Section::Splitter(h) => splitter::refs(name, h),
                Section::Shadow(h) => shadow::refs(name, h),
                Section::Rollout(h) => rollout::refs(name, h),
            };
            for r in &mut refs {
                if let Some(key) = versions.resolve(&r.name) {
                    r.name = key.clone();
                }
            }
            (name.clone(), (section, refs))
        })
        .collect()
}
