//! Every metric aimass records, in one place: names, labels and histogram
//! buckets. Recording is a no-op until [`install`] sets up the Prometheus
//! recorder, so the library costs nothing when no server scrapes it.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Inference requests per model, by HTTP status.
pub const REQUESTS: &str = "aimass_requests_total";
/// Inference requests that failed, per model and status.
pub const REQUEST_FAILURES: &str = "aimass_request_failures_total";
/// Time from a request's arrival to its answer, per model.
pub const REQUEST_SECONDS: &str = "aimass_request_duration_seconds";
/// Requests refused before reaching a model (overloaded, too large).
pub const REJECTED: &str = "aimass_requests_rejected_total";
/// One call of one node: waiting for an instance excluded.
pub const NODE_SECONDS: &str = "aimass_node_duration_seconds";
/// Time a call waited for a free instance of its node.
pub const QUEUE_SECONDS: &str = "aimass_node_queue_duration_seconds";
/// Instances of a node running a call right now.
pub const INSTANCES_IN_USE: &str = "aimass_node_instances_in_use";
/// Instances of a node alive now, idle or busy: a reload that started a
/// node twice would show here.
pub const INSTANCES: &str = "aimass_node_instances";
/// Failed plugin calls per node, by kind (trap, timeout, out_of_memory,
/// contract, invalid_input, model, internal).
pub const PLUGIN_FAILURES: &str = "aimass_plugin_failures_total";
/// Calls a saturated node turned away (queue full or queue timeout).
pub const NODE_REJECTED: &str = "aimass_node_rejected_total";
/// Model loads through the repository API, by outcome.
pub const RELOADS: &str = "aimass_model_loads_total";
/// Rows in each merged call of a batching node.
pub const BATCH_ROWS: &str = "aimass_batch_rows";
/// Time a call waited in a batching node's queue until its batch ran.
pub const BATCH_QUEUE_SECONDS: &str = "aimass_batch_queue_duration_seconds";
/// Calls waiting in a batching node's queue.
pub const BATCH_QUEUE_DEPTH: &str = "aimass_batch_queue_depth";
/// Calls of a merged call that failed, run apart to find the failing ones.
pub const BATCH_SPLIT_CALLS: &str = "aimass_batch_split_calls_total";
/// Requests whose copy a shadow hierarchy did not send (its slots were busy).
pub const SHADOW_DROPPED: &str = "aimass_shadow_dropped_total";

/// The share of a model's requests its rollout sends to the new version.
pub const ROLLOUT_SHARE: &str = "aimass_rollout_share";
/// A rollout's moves, by what happened (`step`, `promoted`, `rolled_back`).
pub const ROLLOUT_EVENTS: &str = "aimass_rollout_events_total";

/// One call of a hierarchy, wherever it is called from (the top of a
/// request or inside another hierarchy).
pub const HIERARCHY_SECONDS: &str = "aimass_hierarchy_duration_seconds";
/// Rows each stage of a cascade answered, per cascade and stage.
pub const CASCADE_ROWS: &str = "aimass_cascade_rows_total";
/// Soft members an ensemble answered without, per hierarchy and member.
pub const DROPPED_MEMBERS: &str = "aimass_dropped_members_total";

/// Requests (and feedback entries) written to a capture file, per model.
pub const CAPTURE_ROWS: &str = "aimass_capture_rows_total";
/// Captured entries lost, per model and reason (`queue_full`: the writer
/// fell behind; `too_large`: one request's tensors with the copies encoding
/// makes of them are over `max_queue_bytes`; `write_failed`: the disk
/// refused the file).
pub const CAPTURE_DROPPED: &str = "aimass_capture_dropped_total";
/// Capture files written, per model.
pub const CAPTURE_FILES: &str = "aimass_capture_files_total";
/// Capture files deleted by the retention limits, per model.
pub const CAPTURE_DELETED: &str = "aimass_capture_files_deleted_total";

/// One native `wasi:nn` compute, per graph: with the node's own time, it
/// tells the plugin's work (decoding, pre- and post-processing in WASM)
/// from the native kernels'.
pub const NN_COMPUTE_SECONDS: &str = "aimass_nn_compute_duration_seconds";
/// tract's plans per concrete input shape, by event (`hit`, `miss`,
/// `built`, `evicted`), over all graphs.
pub const TRACT_PLANS: &str = "aimass_tract_plans_total";
/// tract computes stopped between two ops because their call was over (the
/// caller timed out or went away), over all graphs.
pub const NN_COMPUTES_STOPPED: &str = "aimass_nn_computes_stopped_total";
/// Bytes of tract plans held (each counted as its graph's weights).
pub const TRACT_PLAN_BYTES: &str = "aimass_tract_plan_bytes";

/// The label for a model name the config does not have: names clients send
/// never become metric series of their own.
pub const UNKNOWN_MODEL: &str = "(unknown)";

/// Seconds: 50 µs to 10 s, enough resolution for a 5 µs node and a slow
/// hierarchy alike.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Rows per merged call: 1 to 8192 in powers of two.
const ROW_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle). `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(BATCH_ROWS.into()), ROW_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Histograms keep every sample until upkeep folds them into buckets, which
/// the exporter does only when scraped: without a scraper, memory would grow
/// with every request. A thread of its own, so it runs with or without a
/// tokio runtime.
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("aimass-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::warn!("cannot start the metrics upkeep thread: {e}");
    }
}

/// A finished inference request.
pub fn request(model: &str, status: u16, elapsed: Duration) {
    if !matches!(HANDLE.get(), Some(Some(_))) {
        // Nothing records yet; a handle kept now would stay a no-op.
        return RequestHandles::new(model, status).record(elapsed);
    }
    // Each worker thread keeps the handles of the (model, status) pairs it
    // has answered, so that a request records without building labels and
    // looking them up in the registry (the server's hottest metric). Model
    // labels are the config's names or `(unknown)`: the cache is bounded.
    REQUEST_HANDLES.with_borrow_mut(|models| {
        let statuses = match models.get_mut(model) {
            Some(statuses) => statuses,
            None => models.entry(model.to_string()).or_default(),
        };
        match statuses.iter().find(|(answered, _)| *answered == status) {
            Some((_, kept)) => kept.record(elapsed),
            None => {
                let kept = RequestHandles::new(model, status);
                kept.record(elapsed);
                statuses.push((status, kept));
            }
        }
    });
}

thread_local! {
    static REQUEST_HANDLES: std::cell::RefCell<RequestMap> = Default::default();
}

/// Per model label, the handles of each status answered.
type RequestMap = std::collections::HashMap<String, Vec<(u16, RequestHandles)>>;

/// The series one (model, status) pair of requests records into.
struct RequestHandles {
    requests: Counter,
    failures: Option<Counter>,
    seconds: Histogram,
}

impl RequestHandles {
    fn new(model: &str, status: u16) -> Self {
        let model = model.to_string();
        RequestHandles {
            requests: counter!(REQUESTS, "model" => model.clone(), "status" => status.to_string()),
            failures: (status >= 400).then(|| {
                counter!(REQUEST_FAILURES, "model" => model.clone(), "status" => status.to_string())
            }),
            seconds: histogram!(REQUEST_SECONDS, "model" => model),
        }
    }

    fn record(&self, elapsed: Duration) {
        self.requests.increment(1);
        if let Some(failures) = &self.failures {
            failures.increment(1);
        }
        self.seconds.record(elapsed.as_secs_f64());
    }
}

/// A request refused before it reached a model.
pub fn rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

/// One node's metrics, registered once when the node starts so that a call
/// (the hot path, a few microseconds) records into ready handles instead of
/// building labels. A node started before [`install`] records nothing.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    node: String,
    queue: Histogram,
    duration: Histogram,
    in_use: Gauge,
}

impl NodeMetrics {
    /// The handles for `node`.
    pub fn new(node: &str) -> Self {
        NodeMetrics {
            node: node.to_string(),
            queue: histogram!(QUEUE_SECONDS, "node" => node.to_string()),
            duration: histogram!(NODE_SECONDS, "node" => node.to_string()),
            in_use: gauge!(INSTANCES_IN_USE, "node" => node.to_string()),
        }
    }

    /// A call's wait for an instance.
    pub fn queued(&self, waited: Duration) {
        self.queue.record(waited.as_secs_f64());
    }

    /// One more instance busy, until the guard drops.
    pub fn busy(&self) -> InUse {
        self.in_use.increment(1.0);
        InUse(self.in_use.clone())
    }

    /// A call the node turned away without running it.
    pub fn rejected(&self) {
        counter!(NODE_REJECTED, "node" => self.node.clone()).increment(1);
    }

    /// A call that ran, and how it ended (`None` for success).
    pub fn call(&self, ran: Duration, failure: Option<&'static str>) {
        self.duration.record(ran.as_secs_f64());
        if let Some(kind) = failure {
            counter!(PLUGIN_FAILURES, "node" => self.node.clone(), "kind" => kind).increment(1);
        }
    }
}

/// One batching node's metrics, registered when its batcher starts.
#[derive(Debug, Clone)]
pub struct BatchMetrics {
    rows: Histogram,
    queued: Histogram,
    depth: Gauge,
    split: Counter,
}

impl BatchMetrics {
    /// The handles for `node`.
    pub fn new(node: &str) -> Self {
        BatchMetrics {
            rows: histogram!(BATCH_ROWS, "node" => node.to_string()),
            queued: histogram!(BATCH_QUEUE_SECONDS, "node" => node.to_string()),
            depth: gauge!(BATCH_QUEUE_DEPTH, "node" => node.to_string()),
            split: counter!(BATCH_SPLIT_CALLS, "node" => node.to_string()),
        }
    }

    /// A merged call of `rows` rows ran.
    pub fn batch(&self, rows: usize) {
        self.rows.record(rows as f64);
    }

    /// A call waited this long for its batch.
    pub fn queued(&self, waited: Duration) {
        self.queued.record(waited.as_secs_f64());
    }

    /// A merged call of `calls` calls failed and its calls run apart.
    pub fn split_apart(&self, calls: usize) {
        self.split.increment(calls as u64);
    }

    /// Calls still waiting.
    pub fn depth(&self, waiting: usize) {
        self.depth.set(waiting as f64);
    }
}

/// A request whose shadow copy was not sent.
pub fn shadow_dropped(shadow: &str) {
    counter!(SHADOW_DROPPED, "shadow" => shadow.to_string()).increment(1);
}

/// A rollout of `model` moved: `to_share` of its requests now go to the
/// new version.
pub fn rollout(model: &str, to_share: f64, event: &'static str) {
    gauge!(ROLLOUT_SHARE, "model" => model.to_string()).set(to_share);
    counter!(ROLLOUT_EVENTS, "model" => model.to_string(), "event" => event).increment(1);
}

/// The histogram of `graph`'s native computes, kept by the granted graph
/// so that a compute records without a lookup.
pub fn compute_timer(graph: &str) -> Histogram {
    histogram!(NN_COMPUTE_SECONDS, "graph" => graph.to_string())
}

/// The histogram of `hierarchy`'s calls, kept by the hierarchy so that a
/// call records without a lookup.
pub fn hierarchy_timer(hierarchy: &str) -> Histogram {
    histogram!(HIERARCHY_SECONDS, "model" => hierarchy.to_string())
}

/// The counter of rows stage `stage` of `cascade` answered, kept by the
/// stage so that a call counts without a lookup.
pub fn cascade_rows(cascade: &str, stage: usize) -> Counter {
    counter!(CASCADE_ROWS, "cascade" => cascade.to_string(), "stage" => stage.to_string())
}

/// A soft member `model` of `hierarchy` failed and was left out.
pub fn dropped_member(hierarchy: &str, model: &str) {
    counter!(DROPPED_MEMBERS, "hierarchy" => hierarchy.to_string(), "model" => model.to_string())
        .increment(1);
}

/// `rows` captured entries of `model` lost, and why.
pub fn capture_dropped(model: &str, reason: &'static str, rows: u64) {
    counter!(CAPTURE_DROPPED, "model" => model.to_string(), "reason" => reason).increment(rows);
}

/// A capture file of `rows` entries written for `model`.
pub fn capture_written(model: &str, rows: u64) {
    counter!(CAPTURE_ROWS, "model" => model.to_string()).increment(rows);
    counter!(CAPTURE_FILES, "model" => model.to_string()).increment(1);
}

/// `files` capture files of `model` deleted by its retention limits.
pub fn capture_deleted(model: &str, files: u64) {
    counter!(CAPTURE_DELETED, "model" => model.to_string()).increment(files);
}

/// A model load through the repository API.
pub fn model_load(model: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(RELOADS, "model" => model.to_string(), "outcome" => outcome).increment(1);
}

/// Counts one live instance of `node` until the guard drops.
pub fn live_instance(node: &str) -> InUse {
    let gauge = gauge!(INSTANCES, "node" => node.to_string());
    gauge.increment(1.0);
    InUse(gauge)
}

/// Counts a node's busy instance for as long as it lives, so a call that
/// is cancelled half-way still gives its instance back on the gauge.
#[derive(Debug)]
pub struct InUse(Gauge);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series whose line starts with `series`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn kept_request_handles_count_each_model_and_status_apart() {
        let handle = install().expect("this test binary installs no other recorder");
        let model = "kept-handles-test";
        let seen_on_another_thread =
            std::thread::spawn(move || request(model, 200, Duration::ZERO));
        for _ in 0..3 {
            request(model, 200, Duration::from_millis(1));
        }
        request(model, 503, Duration::ZERO);
        request(model, 503, Duration::ZERO);
        seen_on_another_thread.join().unwrap();
        let text = handle.render();
        let series = |name: &str, status: &str| {
            value(
                &text,
                &format!("{name}{{model=\"{model}\",status=\"{status}\"}}"),
            )
        };
        assert_eq!(series(REQUESTS, "200"), Some(4.0), "{text}");
        assert_eq!(series(REQUESTS, "503"), Some(2.0), "{text}");
        assert_eq!(series(REQUEST_FAILURES, "503"), Some(2.0), "{text}");
        assert_eq!(series(REQUEST_FAILURES, "200"), None, "{text}");
        let count = value(
            &text,
            &format!("{REQUEST_SECONDS}_count{{model=\"{model}\"}}"),
        );
        assert_eq!(count, Some(6.0), "{text}");
    }
}
