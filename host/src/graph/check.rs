//! Checks that need no plugin loaded: every reference resolves, nothing
//! cycles, every number is in range (each kind checks its own section).
//! Errors name the file, line and key.

use super::batching;
use super::closure::hierarchy_refs;
use super::kind::{Section, sections};
use super::refs::ModelRef;
use crate::config::{ConfigError, ConfigErrors, ConfigFile};
use std::collections::{BTreeMap, BTreeSet};

/// Hierarchy names, each after every hierarchy it uses.
#[derive(Debug, Clone)]
pub struct HierarchyOrder(pub Vec<String>);

/// Each kind's own checks of its section.
fn check_sections(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    for (name, section) in sections(&file.config) {
        section.check(file, name, errors);
    }
}

/// Checks references, cycles and ranges; returns the build order.
pub fn check_references(file: &ConfigFile) -> Result<HierarchyOrder, ConfigErrors> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let hierarchies = hierarchy_refs(file);
    let models = check_names(file, &hierarchies, &mut errors);
    crate::config::check_versions(file, &mut errors);
    crate::config::check_limits(file, &mut errors);
    check_nodes(file, &mut errors);
    check_graph_refs(file, &mut errors);
    check_model_refs(file, &hierarchies, &models, &mut errors);
    check_sections(file, &mut errors);
    super::capture::check(file, &mut errors);
    let order = build_order(file, &hierarchies, &mut errors);
    if errors.is_empty() {
        Ok(HierarchyOrder(order))
    } else {
        errors.sort_by_key(|e| e.line);
        errors.dedup();
        Err(ConfigErrors(errors))
    }
}

type Hierarchies<'a> = BTreeMap<String, (Section<'a>, Vec<ModelRef>)>;

fn listed(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

/// One namespace for every model: each node and hierarchy its own name.
/// Returns every model's name.
fn check_names<'a>(
    file: &'a ConfigFile,
    hierarchies: &'a Hierarchies<'a>,
    errors: &mut Vec<ConfigError>,
) -> BTreeSet<&'a str> {
    let c = &file.config;
    let mut seen: BTreeMap<&str, &str> = c.nodes.keys().map(|n| (n.as_str(), "nodes")).collect();
    for (name, (section, _)) in hierarchies {
        let section = section.kind().name();
        if let Some(first) = seen.get(name.as_str()) {
            errors.push(
                file.error(
                    file.table_span(section, name),
                    format!("{section}.{name}"),
                    format!("the name `{name}` is already used by [{first}.{name}]"),
                )
                .fix("give every node and hierarchy its own name"),
            );
        }
        seen.insert(name, section);
    }
    seen.keys().copied().collect()
}

/// Each node's plugin exists, and its batching is in range.
fn check_nodes(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    let c = &file.config;
    for (name, node) in &c.nodes {
        batching::check(file, name, node, errors);
        if !c.plugins.contains_key(node.plugin.get_ref()) {
            let plugins: BTreeSet<&str> = c.plugins.keys().map(String::as_str).collect();
            errors.push(
                file.error(
                    node.plugin.span(),
                    format!("nodes.{name}.plugin"),
                    format!("unknown plugin `{}`", node.plugin.get_ref()),
                )
                .fix(format!(
                    "define [plugins.{}] or use one of: {}",
                    node.plugin.get_ref(),
                    listed(&plugins)
                )),
            );
        }
    }
}

/// Every graph a node or plugin is granted is an artifact.
fn check_graph_refs(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    let c = &file.config;
    let artifacts: BTreeSet<&str> = c.artifacts.keys().map(String::as_str).collect();
    let graph_refs = c
        .nodes
        .iter()
        .flat_map(|(n, node)| {
            node.graphs
                .iter()
                .enumerate()
                .map(move |(i, g)| (format!("nodes.{n}.graphs[{i}]"), g))
        })
        .chain(c.plugins.iter().flat_map(|(p, plugin)| {
            plugin
                .graphs
                .iter()
                .enumerate()
                .map(move |(i, g)| (format!("plugins.{p}.graphs[{i}]"), g))
        }));
    for (key, graph) in graph_refs {
        if !artifacts.contains(graph.get_ref().as_str()) {
            errors.push(
                file.error(
                    graph.span(),
                    key,
                    format!("unknown artifact `{}`", graph.get_ref()),
                )
                .fix(format!(
                    "define [artifacts.{}] or use one of: {}",
                    graph.get_ref(),
                    listed(&artifacts)
                )),
            );
        }
    }
}

/// Every model a hierarchy names exists.
fn check_model_refs(
    file: &ConfigFile,
    hierarchies: &Hierarchies<'_>,
    models: &BTreeSet<&str>,
    errors: &mut Vec<ConfigError>,
) {
    for (_, refs) in hierarchies.values() {
        for r in refs {
            if !models.contains(r.name.as_str()) {
                errors.push(
                    file.error(
                        r.span.clone(),
                        &r.key,
                        format!("unknown model `{}`", r.name),
                    )
                    .fix(format!(
                        "define [nodes.{}] or a hierarchy of that name, or use one of: {}",
                        if r.name.contains('@') {
                            format!("\"{}\"", r.name)
                        } else {
                            r.name.clone()
                        },
                        listed(models)
                    )),
                );
            }
        }
    }
}

/// Hierarchies in build order (a depth-first post-order: each after what
/// it uses); a cycle between them is an error.
fn build_order(
    file: &ConfigFile,
    hierarchies: &Hierarchies<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<String> {
    let mut order = Vec::new();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        name: &'a str,
        hierarchies: &'a Hierarchies<'a>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
        order: &mut Vec<String>,
        file: &ConfigFile,
        errors: &mut Vec<ConfigError>,
    ) {
        if state.contains_key(name) {
            return;
        }
        state.insert(name, 1);
        path.push(name);
        if let Some((_, refs)) = hierarchies.get(name) {
            for r in refs {
                if !hierarchies.contains_key(&r.name) {
                    continue;
                }
                if state.get(r.name.as_str()) == Some(&1) {
                    let start = path.iter().position(|p| *p == r.name).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(&r.name);
                    errors.push(
                        file.error(
                            r.span.clone(),
                            &r.key,
                            format!("cycle: {}", cycle.join(" -> ")),
                        )
                        .fix("a hierarchy cannot contain itself; break the cycle"),
                    );
                } else {
                    visit(&r.name, hierarchies, state, path, order, file, errors);
                }
            }
        }
        path.pop();
        state.insert(name, 2);
        order.push(name.to_string());
    }
    for name in hierarchies.keys() {
        visit(
            name,
            hierarchies,
            &mut state,
            &mut Vec::new(),
            &mut order,
            file,
            errors,
        );
    }
    order
}
