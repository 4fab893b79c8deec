//! Checks that need no plugin loaded: every reference resolves, nothing
//! cycles, every number is in range. Errors name the file, line and key.

use crate::config::{CombineConfig, ConfigError, ConfigErrors, ConfigFile, MemberRef, Ref};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use toml::Spanned;

/// Hierarchy names, each after every hierarchy it uses.
#[derive(Debug, Clone)]
pub struct HierarchyOrder(pub Vec<String>);

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

/// A reference from a hierarchy to a model, with where it is written.
pub(super) struct ModelRef {
    pub key: String,
    pub name: String,
    pub span: Range<usize>,
}

/// The model a member names, and the span to blame.
pub(super) fn member_ref(member: &Spanned<MemberRef>, key: &str) -> ModelRef {
    match member.get_ref() {
        MemberRef::Name(name) => ModelRef {
            key: key.to_string(),
            name: name.clone(),
            span: member.span(),
        },
        MemberRef::Full(full) => model_ref(&full.model, &format!("{key}.model")),
    }
}

pub(super) fn model_ref(model: &Ref, key: &str) -> ModelRef {
    ModelRef {
        key: key.to_string(),
        name: model.get_ref().clone(),
        span: model.span(),
    }
}

/// Every hierarchy with the models it references directly.
pub(super) fn hierarchy_refs(file: &ConfigFile) -> BTreeMap<String, (String, Vec<ModelRef>)> {
    let c = &file.config;
    let mut all = BTreeMap::new();
    let mut add = |section: &str, name: &String, refs: Vec<ModelRef>| {
        all.insert(name.clone(), (section.to_string(), refs));
    };
    for (name, s) in &c.sequence {
        let refs = s
            .steps
            .iter()
            .enumerate()
            .map(|(i, m)| member_ref(m, &format!("sequence.{name}.steps[{i}]")))
            .collect();
        add("sequence", name, refs);
    }
    for (name, d) in &c.dag {
        let refs = d
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| model_ref(&s.model, &format!("dag.{name}.steps[{i}].model")))
            .collect();
        add("dag", name, refs);
    }
    for (name, e) in &c.ensemble {
        let mut refs: Vec<ModelRef> = e
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| member_ref(m, &format!("ensemble.{name}.members[{i}]")))
            .collect();
        if let Some(meta) = &e.meta {
            refs.push(model_ref(meta, &format!("ensemble.{name}.meta")));
        }
        add("ensemble", name, refs);
    }
    for (name, s) in &c.switch {
        let mut refs: Vec<ModelRef> = s
            .branches
            .iter()
            .enumerate()
            .map(|(i, b)| model_ref(&b.model, &format!("switch.{name}.branches[{i}].model")))
            .collect();
        if let Some(default) = &s.default {
            refs.push(model_ref(default, &format!("switch.{name}.default")));
        }
        add("switch", name, refs);
    }
    for (name, s) in &c.cascade {
        let refs = s
            .stages
            .iter()
            .enumerate()
            .map(|(i, st)| model_ref(&st.model, &format!("cascade.{name}.stages[{i}].model")))
            .collect();
        add("cascade", name, refs);
    }
    for (name, s) in &c.splitter {
        let refs = s
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| model_ref(&r.model, &format!("splitter.{name}.routes[{i}].model")))
            .collect();
        add("splitter", name, refs);
    }
    for (name, s) in &c.shadow {
        let refs = vec![
            model_ref(&s.primary, &format!("shadow.{name}.primary")),
            model_ref(&s.shadow, &format!("shadow.{name}.shadow")),
        ];
        add("shadow", name, refs);
    }
    all
}

/// Checks references, cycles and ranges; returns the build order.
pub fn check_references(file: &ConfigFile) -> Result<HierarchyOrder, ConfigErrors> {
    let c = &file.config;
    let mut errors: Vec<ConfigError> = Vec::new();
    let hierarchies = hierarchy_refs(file);

    // One namespace for every model.
    let mut seen: BTreeMap<&str, &str> = c.nodes.keys().map(|n| (n.as_str(), "nodes")).collect();
    for (name, (section, _)) in &hierarchies {
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
    let models: BTreeSet<&str> = seen.keys().copied().collect();
    let listed = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join(", ");

    for (name, node) in &c.nodes {
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
    // wasm32 linear memory tops out at 4 GiB.
    if !(1..=4096).contains(&c.engine.max_memory_mb) {
        errors.push(
            file.error(
                file.table_span("engine", ""),
                "engine.max_memory_mb",
                format!("{} MiB is outside 1..=4096", c.engine.max_memory_mb),
            )
            .fix("a plugin's memory is at most 4096 MiB"),
        );
    }
    for (name, plugin) in &c.plugins {
        if *plugin.memory_mb.get_ref() == 0 || *plugin.memory_mb.get_ref() > c.engine.max_memory_mb
        {
            errors.push(
                file.error(
                    plugin.memory_mb.span(),
                    format!("plugins.{name}.memory_mb"),
                    format!(
                        "{} MiB is outside 1..={}",
                        plugin.memory_mb.get_ref(),
                        c.engine.max_memory_mb
                    ),
                )
                .fix("lower it, or raise engine.max_memory_mb"),
            );
        }
        if *plugin.timeout_ms.get_ref() == 0 {
            errors.push(
                file.error(
                    plugin.timeout_ms.span(),
                    format!("plugins.{name}.timeout_ms"),
                    "a call budget of 0 ms fails every call",
                )
                .fix("give it at least 1"),
            );
        }
    }

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
                        r.name,
                        listed(&models)
                    )),
                );
            }
        }
    }
    check_ranges(file, &mut errors);
    super::dag::check_dag_shapes(file, &mut errors);

    // Cycles between hierarchies; the order is a depth-first post-order.
    let mut order = Vec::new();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        name: &'a str,
        hierarchies: &'a BTreeMap<String, (String, Vec<ModelRef>)>,
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
            &hierarchies,
            &mut state,
            &mut Vec::new(),
            &mut order,
            file,
            &mut errors,
        );
    }

    if errors.is_empty() {
        Ok(HierarchyOrder(order))
    } else {
        errors.sort_by_key(|e| e.line);
        errors.dedup();
        Err(ConfigErrors(errors))
    }
}

fn check_ranges(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    let c = &file.config;
    for (name, e) in &c.ensemble {
        let key = format!("ensemble.{name}");
        let combine = *e.combine.get_ref();
        if e.members.is_empty() {
            errors.push(
                file.error(
                    file.table_span("ensemble", name),
                    format!("{key}.members"),
                    "an ensemble needs members",
                )
                .fix("list at least two models in `members`"),
            );
        }
        let mut total = 0.0;
        for (i, member) in e.members.iter().enumerate() {
            let weight = match member.get_ref() {
                MemberRef::Full(full) => full.weight.as_ref(),
                MemberRef::Name(_) => None,
            };
            match (combine, weight) {
                (CombineConfig::Weighted, None) => errors.push(
                    file.error(
                        member.span(),
                        format!("{key}.members[{i}]"),
                        "a weighted ensemble needs a weight for every member",
                    )
                    .fix("write the member as { model = \"...\", weight = 1.0 }"),
                ),
                (CombineConfig::Weighted, Some(w))
                    if !(w.get_ref().is_finite() && *w.get_ref() >= 0.0) =>
                {
                    errors.push(
                        file.error(
                            w.span(),
                            format!("{key}.members[{i}].weight"),
                            format!("weight {} is not a number >= 0", w.get_ref()),
                        )
                        .fix("use a finite weight of 0 or more"),
                    )
                }
                (CombineConfig::Weighted, Some(w)) => total += w.get_ref(),
                (_, Some(w)) => errors.push(
                    file.error(
                        w.span(),
                        format!("{key}.members[{i}].weight"),
                        "weights only apply to combine = \"weighted\"",
                    )
                    .fix("remove the weight or set combine = \"weighted\""),
                ),
                _ => {}
            }
        }
        if combine == CombineConfig::Weighted && total <= 0.0 && !e.members.is_empty() {
            errors.push(
                file.error(
                    e.combine.span(),
                    format!("{key}.combine"),
                    "the members' weights add up to 0",
                )
                .fix("give at least one member a positive weight"),
            );
        }
        match (combine, &e.meta) {
            (CombineConfig::Stacking, None) => errors.push(
                file.error(
                    e.combine.span(),
                    format!("{key}.meta"),
                    "stacking needs a meta-model",
                )
                .fix("add meta = \"<node that takes the members' probabilities>\""),
            ),
            (c, Some(meta)) if c != CombineConfig::Stacking => errors.push(
                file.error(
                    meta.span(),
                    format!("{key}.meta"),
                    "a meta-model only applies to combine = \"stacking\"",
                )
                .fix("remove `meta` or set combine = \"stacking\""),
            ),
            _ => {}
        }
        if let Some(min) = &e.min_members {
            let n = *min.get_ref() as usize;
            if n == 0 || n > e.members.len() {
                errors.push(
                    file.error(
                        min.span(),
                        format!("{key}.min_members"),
                        format!("{n} is outside 1..={}", e.members.len()),
                    )
                    .fix("use a number between 1 and the number of members"),
                );
            }
        }
    }
    for (name, s) in &c.cascade {
        let key = format!("cascade.{name}");
        if s.stages.len() < 2 {
            errors.push(
                file.error(
                    file.table_span("cascade", name),
                    format!("{key}.stages"),
                    "a cascade needs at least two stages",
                )
                .fix("add the model to escalate to"),
            );
        }
        let last = s.stages.len().saturating_sub(1);
        for (i, stage) in s.stages.iter().enumerate() {
            match &stage.threshold {
                None if i < last => errors.push(
                    file.error(
                        stage.model.span(),
                        format!("{key}.stages[{i}].threshold"),
                        "every stage but the last needs a threshold",
                    )
                    .fix("add threshold = 0.9 (rows at or above it stop here)"),
                ),
                Some(t) if i == last => errors.push(
                    file.error(
                        t.span(),
                        format!("{key}.stages[{i}].threshold"),
                        "the last stage answers every row left",
                    )
                    .fix("remove its threshold"),
                ),
                Some(t) if !(0.0..=1.0).contains(t.get_ref()) => errors.push(
                    file.error(
                        t.span(),
                        format!("{key}.stages[{i}].threshold"),
                        format!("threshold {} is outside 0..=1", t.get_ref()),
                    )
                    .fix("confidence is a probability: use a threshold between 0 and 1"),
                ),
                _ => {}
            }
        }
    }
    for (name, s) in &c.splitter {
        let key = format!("splitter.{name}");
        let mut total = 0.0;
        for (i, route) in s.routes.iter().enumerate() {
            match &route.weight {
                None => errors.push(
                    file.error(
                        route.model.span(),
                        format!("{key}.routes[{i}].weight"),
                        "every route needs a weight",
                    )
                    .fix("add weight = <share of traffic>"),
                ),
                Some(w) if !(w.get_ref().is_finite() && *w.get_ref() >= 0.0) => errors.push(
                    file.error(
                        w.span(),
                        format!("{key}.routes[{i}].weight"),
                        format!("weight {} is not a number >= 0", w.get_ref()),
                    )
                    .fix("use a finite weight of 0 or more"),
                ),
                Some(w) => total += w.get_ref(),
            }
        }
        if total <= 0.0 && s.routes.iter().all(|r| r.weight.is_some()) {
            errors.push(
                file.error(
                    file.table_span("splitter", name),
                    format!("{key}.routes"),
                    "the routes' weights add up to 0",
                )
                .fix("give at least one route a positive weight"),
            );
        }
    }
    for (name, s) in &c.switch {
        let key = format!("switch.{name}");
        for (i, branch) in s.branches.iter().enumerate() {
            let bkey = format!("{key}.branches[{i}]");
            match (&branch.equals, &branch.when) {
                (Some(_), Some(_)) | (None, None) => errors.push(
                    file.error(branch.model.span(), bkey, "a branch needs exactly one of `equals` or `when`")
                        .fix("match a request parameter with equals = \"...\" or a tensor with when = { ... }"),
                ),
                (Some(_), None) if s.parameter.is_none() => errors.push(
                    file.error(branch.model.span(), format!("{bkey}.equals"), "`equals` compares the request parameter named by `parameter`, which is missing")
                        .fix(format!("add parameter = \"<request parameter>\" to [switch.{name}]")),
                ),
                _ => {}
            }
        }
    }
}
