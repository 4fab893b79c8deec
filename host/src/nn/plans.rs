//! tract plans per concrete input shape, bounded by count and bytes, least
//! recently used first out.
//!
//! A graph with symbolic dimensions runs 5–9× slower on its symbolic plan
//! than on one made for the shapes at hand (v4 OCR recogniser 303 ms vs
//! 34 ms, detector 1164 ms vs ~200 ms), and some graphs (a detector whose
//! output size tract cannot prove from a symbolic input) have no symbolic
//! plan at all. A concrete plan costs an optimisation pass and holds its own
//! packed copy of the weights, so the cache is bounded, and counted in
//! `/metrics`.

use std::sync::{Arc, Mutex};
use tract_onnx::prelude::TypedRunnableModel;

/// The input shapes a plan was made for, in the graph's input order.
pub type ShapeKey = Vec<Vec<usize>>;

/// Bounds of one graph's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// The most plans kept.
    pub max_plans: usize,
    /// The most bytes of plans kept (each counted as its graph's weights).
    pub max_bytes: usize,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_plans: 16,
            max_bytes: 256 << 20,
        }
    }
}

struct Entry {
    key: ShapeKey,
    plan: Arc<TypedRunnableModel>,
    last_used: u64,
}

/// One graph's plans.
pub struct PlanCache {
    limits: PlanLimits,
    /// Bytes one plan is counted as.
    plan_bytes: usize,
    entries: Mutex<(Vec<Entry>, u64)>,
}

impl PlanCache {
    /// An empty cache for plans of `plan_bytes` each.
    pub fn new(limits: PlanLimits, plan_bytes: usize) -> Self {
        PlanCache {
            limits,
            plan_bytes: plan_bytes.max(1),
            entries: Mutex::new((Vec::new(), 0)),
        }
    }

    /// The most plans these limits let this graph keep (at least one: a
    /// graph larger than the byte bound still runs, one shape at a time).
    pub fn capacity(&self) -> usize {
        (self.limits.max_bytes / self.plan_bytes)
            .min(self.limits.max_plans)
            .max(1)
    }

    /// The plan for `key`, marked used.
    pub fn get(&self, key: &ShapeKey) -> Option<Arc<TypedRunnableModel>> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (entries, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        let found = entries.iter_mut().find(|e| e.key == *key).map(|e| {
            e.last_used = now;
            e.plan.clone()
        });
        metrics::counter!(crate::metrics::TRACT_PLANS, "event" => if found.is_some() { "hit" } else { "miss" })
            .increment(1);
        found
    }

    /// Keeps `plan` for `key`, evicting the least recently used past the
    /// bounds; returns the plan kept (an equal one another caller built
    /// first wins).
    pub fn insert(&self, key: ShapeKey, plan: Arc<TypedRunnableModel>) -> Arc<TypedRunnableModel> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (entries, clock) = &mut *guard;
        *clock += 1;
        if let Some(existing) = entries.iter().find(|e| e.key == key) {
            return existing.plan.clone();
        }
        metrics::counter!(crate::metrics::TRACT_PLANS, "event" => "built").increment(1);
        while entries.len() >= self.capacity() {
            let Some(oldest) = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            entries.swap_remove(oldest);
            metrics::counter!(crate::metrics::TRACT_PLANS, "event" => "evicted").increment(1);
            metrics::gauge!(crate::metrics::TRACT_PLAN_BYTES).decrement(self.plan_bytes as f64);
        }
        metrics::gauge!(crate::metrics::TRACT_PLAN_BYTES).increment(self.plan_bytes as f64);
        entries.push(Entry {
            key,
            plan: plan.clone(),
            last_used: *clock,
        });
        plan
    }

    /// Plans held.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |g| g.0.len())
    }

    /// True when no plan is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PlanCache {
    fn drop(&mut self) {
        let held = self.len();
        metrics::gauge!(crate::metrics::TRACT_PLAN_BYTES)
            .decrement((held * self.plan_bytes) as f64);
    }
}
