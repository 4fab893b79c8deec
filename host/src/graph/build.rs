//! Building every hierarchy, in dependency order, once its nodes run: each
//! kind's file builds its own and checks its members fit together.

use super::batching;
use super::builder::{Builder, Models};
use super::check::HierarchyOrder;
use super::kind::sections;
use super::model::Served;
use crate::config::{ConfigErrors, ConfigFile, Versions};
use crate::runtime::NodePool;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The nodes started in `nodes` and the hierarchies in `order`, as servable
/// models, type-checked; members not built here are taken from `serving`
/// (a reload rebuilds a model's users around the models already running).
/// Returns only what it built.
pub fn build_models(
    file: &ConfigFile,
    order: &HierarchyOrder,
    nodes: BTreeMap<String, Arc<NodePool>>,
    serving: &Models,
) -> Result<Models, ConfigErrors> {
    let mut errors = Vec::new();
    let mut models = serving.clone();
    let mut started = std::collections::BTreeSet::new();
    for (name, pool) in nodes {
        let max_rows = file.config.nodes.get(&name).and_then(|n| n.max_batch_rows);
        let served = Served::node(&name, pool.clone(), max_rows);
        // A node refused its batching still serves its hierarchies' checks,
        // so that the error is the batching's alone.
        let batcher = batching::start(file, &name, &served, &pool).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        started.insert(name.clone());
        models.insert(name.clone(), Arc::new(served.batched_by(batcher)));
    }
    // Those in the order (all, or what one model needs), members before
    // the hierarchies that use them.
    let mut hierarchies: Vec<_> = sections(&file.config)
        .into_iter()
        .filter_map(|(name, section)| {
            let at = order.0.iter().position(|n| n == name)?;
            Some((at, name, section))
        })
        .collect();
    hierarchies.sort_by_key(|(at, _, _)| *at);
    let versions = Versions::of(&file.config);
    for (_, name, section) in hierarchies {
        let b = Builder {
            file,
            models: &models,
            versions: &versions,
        };
        let built = section.build(&b, name);
        match built {
            Ok((signature, composition)) => {
                let served = Served::hierarchy(
                    name,
                    section.kind(),
                    signature,
                    section.max_batch_rows(),
                    composition,
                );
                started.insert(name.clone());
                models.insert(name.clone(), Arc::new(served));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        models.retain(|name, _| started.contains(name));
        Ok(models)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(errors))
    }
}
