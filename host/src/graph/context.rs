//! One request as the executor sees it: what came in, what goes back, and
//! what every model call of the request shares (parameters, id, trace,
//! dropped members).

use crate::tensor::NamedTensor;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One inference request to a model.
#[derive(Debug, Default)]
pub struct Request {
    /// Named input tensors.
    pub inputs: Vec<NamedTensor>,
    /// Request parameters (switches read these).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The client's request id (splitters stick to it).
    pub id: Option<String>,
    /// The id its log lines carry (its `x-request-id`): a batch merging
    /// it with other requests' calls names it.
    pub log_id: Option<String>,
    /// Record each model's time and outcome.
    pub trace: bool,
    /// Where the request's models capture their calls, when any model is
    /// captured.
    pub capture: Option<crate::capture::Scope>,
}

/// A model's answer.
#[derive(Debug)]
pub struct Response {
    /// Named output tensors.
    pub outputs: Vec<NamedTensor>,
    /// Soft members whose failure was dropped.
    pub dropped: Vec<Dropped>,
    /// Each model's time and outcome, when asked for.
    pub trace: Vec<TraceEntry>,
    /// The version that answered, when a rollout chose it (the first
    /// rollout on the request's path).
    pub version: Option<u64>,
}

/// A soft member that failed and was left out of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The hierarchy it belonged to.
    pub hierarchy: String,
    /// The member.
    pub model: String,
    /// Why it failed.
    pub error: String,
}

/// One model call in a request.
#[derive(Debug, Clone)]
pub struct TraceEntry {
    /// The model.
    pub model: String,
    /// Its kind.
    pub kind: &'static str,
    /// Rows it was given.
    pub rows: usize,
    /// Wall time, in microseconds.
    pub micros: u64,
    /// `ok`, or the error.
    pub outcome: String,
}

/// What every model call of one request shares.
pub(super) struct Context {
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub id: Option<String>,
    pub log_id: Option<String>,
    trace: Option<Mutex<Vec<TraceEntry>>>,
    dropped: Mutex<Vec<Dropped>>,
    version: std::sync::OnceLock<u64>,
    /// Inner models whose outputs the called model's capture keeps (by
    /// name; a version's key or its model's name), and those kept so far,
    /// from the first call of each.
    keep: Vec<String>,
    kept: Mutex<Vec<(String, Vec<NamedTensor>)>>,
    pub capture: Option<crate::capture::Scope>,
}

impl Context {
    pub fn new(
        parameters: BTreeMap<String, serde_json::Value>,
        (id, log_id): (Option<String>, Option<String>),
        trace: bool,
        capture: Option<crate::capture::Scope>,
    ) -> Context {
        let keep = capture
            .as_ref()
            .map(crate::capture::Scope::kept_inner)
            .unwrap_or_default();
        Context {
            parameters,
            id,
            log_id,
            trace: trace.then(|| Mutex::new(Vec::new())),
            dropped: Mutex::new(Vec::new()),
            version: std::sync::OnceLock::new(),
            keep,
            kept: Mutex::new(Vec::new()),
            capture,
        }
    }

    /// True when `model` (a section key) answers a name in `keep`.
    pub fn keeps(&self, model: &str) -> bool {
        !self.keep.is_empty()
            && self
                .keep
                .iter()
                .any(|k| k == model || k == crate::config::split_version(model).0)
    }

    /// Keeps `outputs` of `model` for the capture, unless an earlier call
    /// of it was kept.
    pub fn keep_outputs(&self, model: &str, outputs: &[NamedTensor]) {
        if let Ok(mut kept) = self.kept.lock()
            && !kept.iter().any(|(name, _)| name == model)
        {
            // Tensors share their bytes: this copies no data.
            kept.push((model.to_string(), outputs.to_vec()));
        }
    }

    /// The kept outputs, once the request is done.
    pub fn take_kept(&self) -> Vec<(String, Vec<NamedTensor>)> {
        self.kept
            .lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default()
    }

    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    pub fn record(&self, entry: TraceEntry) {
        if let Some(trace) = &self.trace
            && let Ok(mut trace) = trace.lock()
        {
            trace.push(entry);
        }
    }

    pub fn drop_member(&self, dropped: Dropped) {
        tracing::warn!(hierarchy = %dropped.hierarchy, model = %dropped.model, "soft member dropped: {}", dropped.error);
        crate::metrics::dropped_member(&dropped.hierarchy, &dropped.model);
        if let Ok(mut list) = self.dropped.lock() {
            list.push(dropped);
        }
    }

    /// A rollout chose `version` (only the first choice counts: the
    /// outermost rollout chooses before its members run).
    pub fn chose_version(&self, version: u64) {
        let _ = self.version.set(version);
    }

    /// The version a rollout chose, if one did.
    pub fn chosen_version(&self) -> Option<u64> {
        self.version.get().copied()
    }

    /// The trace and the dropped members, once the request is done.
    pub fn finish(&self) -> (Vec<TraceEntry>, Vec<Dropped>) {
        let trace = self
            .trace
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| t.clone()))
            .unwrap_or_default();
        let dropped = self.dropped.lock().map(|d| d.clone()).unwrap_or_default();
        (trace, dropped)
    }
}
