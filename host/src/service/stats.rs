//! Each model's statistics in the shape of Triton's statistics extension,
//! kept across reloads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Per-model counters in the shape of Triton's statistics extension.
#[derive(Debug, Default)]
pub struct ModelStats {
    success_count: AtomicU64,
    success_ns: AtomicU64,
    fail_count: AtomicU64,
    fail_ns: AtomicU64,
    input_ns: AtomicU64,
    infer_ns: AtomicU64,
    output_ns: AtomicU64,
    inference_count: AtomicU64,
    last_inference_ms: AtomicU64,
}

/// Where one successful request spent its time.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Parsing and checking the inputs.
    pub input: Duration,
    /// Running the model.
    pub infer: Duration,
    /// Encoding the outputs.
    pub output: Duration,
}

impl ModelStats {
    /// A request answered.
    pub fn success(&self, rows: u64, total: Duration, phases: Phases) {
        self.success_count.fetch_add(1, Ordering::Relaxed);
        self.success_ns.fetch_add(nanos(total), Ordering::Relaxed);
        self.input_ns
            .fetch_add(nanos(phases.input), Ordering::Relaxed);
        self.infer_ns
            .fetch_add(nanos(phases.infer), Ordering::Relaxed);
        self.output_ns
            .fetch_add(nanos(phases.output), Ordering::Relaxed);
        self.inference_count.fetch_add(rows, Ordering::Relaxed);
        self.touch();
    }

    /// A request that failed.
    pub fn failure(&self, total: Duration) {
        self.fail_count.fetch_add(1, Ordering::Relaxed);
        self.fail_ns.fetch_add(nanos(total), Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.store(now, Ordering::Relaxed);
    }

    /// Triton's JSON for one model version; `batches` are a batching
    /// node's plugin calls by rows (each row count, its calls and time).
    pub fn to_json(
        &self,
        name: &str,
        version: u64,
        batches: &[(usize, u64, Duration)],
    ) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let successes = get(&self.success_count);
        // A batching node runs fewer plugin calls than it answers requests.
        let executions = if batches.is_empty() {
            successes
        } else {
            batches.iter().map(|(_, count, _)| count).sum()
        };
        let batch_stats: Vec<serde_json::Value> = batches
            .iter()
            .map(|&(rows, count, took)| {
                serde_json::json!({
                    "batch_size": rows,
                    "compute_input": { "count": count, "ns": 0 },
                    "compute_infer": { "count": count, "ns": nanos(took) },
                    "compute_output": { "count": count, "ns": 0 },
                })
            })
            .collect();
        let duration = |count: u64, ns: u64| serde_json::json!({ "count": count, "ns": ns });
        serde_json::json!({
            "name": name,
            "version": version.to_string(),
            "last_inference": get(&self.last_inference_ms),
            "inference_count": get(&self.inference_count),
            "execution_count": executions,
            "inference_stats": {
                "success": duration(successes, get(&self.success_ns)),
                "fail": duration(get(&self.fail_count), get(&self.fail_ns)),
                // aimass never queues a request at the server: over the
                // concurrency limit it answers 503 at once. Waits for a
                // node's instance are in /metrics.
                "queue": duration(successes, 0),
                "compute_input": duration(successes, get(&self.input_ns)),
                "compute_infer": duration(successes, get(&self.infer_ns)),
                "compute_output": duration(successes, get(&self.output_ns)),
                "cache_hit": duration(0, 0),
                "cache_miss": duration(0, 0),
            },
            "batch_stats": batch_stats,
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
