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

    /// Triton's statistics of one model version; `batches` are a batching
    /// node's plugin calls by rows (each row count, its calls and time).
    pub fn snapshot(
        &self,
        name: &str,
        version: u64,
        batches: &[(usize, u64, Duration)],
    ) -> ModelStatistics {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let successes = get(&self.success_count);
        // A batching node runs fewer plugin calls than it answers requests.
        let executions = if batches.is_empty() {
            successes
        } else {
            batches.iter().map(|(_, count, _)| count).sum()
        };
        let spent = |count: u64, ns: u64| StatisticDuration { count, ns };
        ModelStatistics {
            name: name.to_string(),
            version: version.to_string(),
            last_inference: get(&self.last_inference_ms),
            inference_count: get(&self.inference_count),
            execution_count: executions,
            inference_stats: InferStatistics {
                success: spent(successes, get(&self.success_ns)),
                fail: spent(get(&self.fail_count), get(&self.fail_ns)),
                // aimass never queues a request at the server: over the
                // concurrency limit it answers 503 at once. Waits for a
                // node's instance are in /metrics.
                queue: spent(successes, 0),
                compute_input: spent(successes, get(&self.input_ns)),
                compute_infer: spent(successes, get(&self.infer_ns)),
                compute_output: spent(successes, get(&self.output_ns)),
                cache_hit: spent(0, 0),
                cache_miss: spent(0, 0),
            },
            batch_stats: batches
                .iter()
                .map(|&(rows, count, took)| BatchStatistics {
                    batch_size: rows as u64,
                    compute_input: spent(count, 0),
                    compute_infer: spent(count, nanos(took)),
                    compute_output: spent(count, 0),
                })
                .collect(),
        }
    }
}

/// One model version's statistics, as Triton's statistics extension names
/// them: REST sends this as JSON, gRPC as its message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelStatistics {
    /// The model.
    pub name: String,
    /// Its version.
    pub version: String,
    /// When it last answered, in milliseconds since the Unix epoch.
    pub last_inference: u64,
    /// Rows answered.
    pub inference_count: u64,
    /// Plugin calls run (fewer than requests where calls were merged).
    pub execution_count: u64,
    /// Requests by outcome and phase.
    pub inference_stats: InferStatistics,
    /// A batching node's plugin calls by rows.
    pub batch_stats: Vec<BatchStatistics>,
}

/// Requests by outcome and phase.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InferStatistics {
    /// Requests answered.
    pub success: StatisticDuration,
    /// Requests that failed.
    pub fail: StatisticDuration,
    /// Time queued at the server (none: see [`ModelStats::snapshot`]).
    pub queue: StatisticDuration,
    /// Parsing and checking inputs.
    pub compute_input: StatisticDuration,
    /// Running the model.
    pub compute_infer: StatisticDuration,
    /// Encoding outputs.
    pub compute_output: StatisticDuration,
    /// Response cache hits (no cache: zero).
    pub cache_hit: StatisticDuration,
    /// Response cache misses (no cache: zero).
    pub cache_miss: StatisticDuration,
}

/// A batching node's plugin calls of one row count.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchStatistics {
    /// The rows of each call.
    pub batch_size: u64,
    /// Preparing inputs (merged in the batcher: zero).
    pub compute_input: StatisticDuration,
    /// Running the plugin.
    pub compute_infer: StatisticDuration,
    /// Splitting outputs (zero).
    pub compute_output: StatisticDuration,
}

/// How many, and how long in all.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StatisticDuration {
    /// How many.
    pub count: u64,
    /// Their time, in nanoseconds.
    pub ns: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
