//! A node's `batching`: its numbers checked with the config, its shapes
//! checked once its plugin has described itself, and its batcher started.

use super::model::Served;
use crate::config::{BatchingConfig, ConfigError, ConfigFile, IsolationConfig, NodeConfig};
use crate::runtime::{BatchPolicy, Batcher, NodePool};
use std::sync::Arc;
use std::time::Duration;

/// The numbers of node `name`'s batching, before any plugin is loaded.
pub(super) fn check(
    file: &ConfigFile,
    name: &str,
    node: &NodeConfig,
    errors: &mut Vec<ConfigError>,
) {
    let Some(batching) = &node.batching else {
        return;
    };
    let key = format!("nodes.{name}.batching");
    let per_request = file
        .config
        .plugins
        .get(node.plugin.get_ref())
        .is_some_and(|p| p.isolation == IsolationConfig::PerRequest);
    if per_request {
        // A merged call hands several clients' rows to one instance: the
        // isolation asked for would not hold.
        errors.push(
            file.error(
                batching.span(),
                &key,
                format!(
                    "node `{name}` batches, but its plugin `{}` has `isolation = \"per-request\"`: \
                     a merged call would put several requests' rows in one instance",
                    node.plugin.get_ref()
                ),
            )
            .fix("remove `batching` from the node, or use a plugin with pooled isolation"),
        );
    }
    let b = batching.get_ref();
    if b.max_batch_size == 0 {
        errors.push(
            file.error(
                batching.span(),
                format!("{key}.max_batch_size"),
                "a batch of 0 rows never runs",
            )
            .fix("give it at least 1 (e.g. 64)"),
        );
    }
    if b.max_queue_size == 0 {
        errors.push(
            file.error(
                batching.span(),
                format!("{key}.max_queue_size"),
                "a queue of 0 calls refuses every call",
            )
            .fix("give it at least 1 (default 1024)"),
        );
    }
    if let Some(size) = b
        .preferred_batch_sizes
        .iter()
        .find(|&&s| s == 0 || s > b.max_batch_size)
    {
        errors.push(
            file.error(
                batching.span(),
                format!("{key}.preferred_batch_sizes"),
                format!("{size} is outside 1..={}", b.max_batch_size),
            )
            .fix("list sizes between 1 and max_batch_size"),
        );
    }
    if b.max_queue_delay_us > 10_000_000 {
        errors.push(
            file.error(
                batching.span(),
                format!("{key}.max_queue_delay_us"),
                format!(
                    "{} µs would hold a call for over 10 s",
                    b.max_queue_delay_us
                ),
            )
            .fix("wait at most a few milliseconds (default 500 µs)"),
        );
    }
}

/// The batcher of node `name` when it batches: every input and output must
/// carry a batch (a leading dynamic dimension), and a merged call may not
/// exceed the node's own row limit.
pub(super) fn start(
    file: &ConfigFile,
    name: &str,
    served: &Served,
    pool: &Arc<NodePool>,
) -> Result<Option<Arc<Batcher>>, ConfigError> {
    let Some(batching) = file
        .config
        .nodes
        .get(name)
        .and_then(|n| n.batching.as_ref())
    else {
        return Ok(None);
    };
    let key = format!("nodes.{name}.batching");
    let fixed = served
        .signature
        .inputs
        .iter()
        .map(|s| ("input", s))
        .chain(served.signature.outputs.iter().map(|s| ("output", s)))
        .find(|(_, s)| !s.is_batched());
    if let Some((side, spec)) = fixed {
        return Err(file
            .error(
                batching.span(),
                &key,
                format!(
                    "node `{name}` cannot batch: its {side} `{}` has shape {}, without a leading \
                     dynamic dimension to merge calls along",
                    spec.name,
                    crate::tensor::shape_text(&spec.shape)
                ),
            )
            .fix("remove `batching`, or batch only nodes whose every input and output starts with -1"));
    }
    let BatchingConfig {
        max_batch_size,
        max_queue_delay_us,
        preferred_batch_sizes,
        max_queue_size,
    } = batching.get_ref().clone();
    if let Some(limit) = served.max_rows
        && max_batch_size as usize > limit
    {
        return Err(file
            .error(
                batching.span(),
                format!("{key}.max_batch_size"),
                format!(
                    "a merged call of {max_batch_size} rows is over node `{name}`'s limit of {limit} rows"
                ),
            )
            .fix(format!("lower it to at most {limit}")));
    }
    let policy = BatchPolicy {
        max_batch_size: max_batch_size as usize,
        max_queue_delay: Duration::from_micros(max_queue_delay_us),
        preferred_batch_sizes: preferred_batch_sizes.iter().map(|&s| s as usize).collect(),
        max_queue_size: max_queue_size as usize,
    };
    Ok(Some(Arc::new(Batcher::start(pool.clone(), policy))))
}
