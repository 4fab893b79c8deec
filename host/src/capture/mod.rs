//! Capture: a share of a model's requests kept on disk with what the model
//! (and named models inside it) answered, and the feedback clients send
//! later, as Parquet datasets an operator audits, evaluates on and
//! distils from.
//!
//! The request path only samples and offers an entry to a bounded queue
//! (tensors are shared, not copied); a writer thread per captured model
//! does the rest (see [`writer`]). A full queue drops the entry and counts
//! it: capture never slows or fails an inference.

mod columns;
mod writer;

pub use columns::DTYPE_KEY;
pub use writer::{FEEDBACK, REQUESTS};

use crate::config::{CaptureConfig, ConfigFile};
use crate::tensor::NamedTensor;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One captured request.
#[derive(Debug)]
pub struct Record {
    /// The request's id (the body's `id`, else its `x-request-id`).
    pub id: String,
    /// When it arrived, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// The version that answered.
    pub version: u64,
    /// From arrival to answer, in microseconds.
    pub latency_us: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Its input tensors (when kept).
    pub inputs: Vec<NamedTensor>,
    /// The model's outputs (when kept and answered).
    pub outputs: Vec<NamedTensor>,
    /// Inner models' outputs, by model.
    pub inner: Vec<(String, Vec<NamedTensor>)>,
}

/// The truth about an earlier request, sent by a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The request's id.
    pub id: String,
    /// When it was received, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// A class index.
    pub label: Option<i64>,
    /// A label given as text.
    pub label_text: Option<String>,
    /// A reward.
    pub reward: Option<f64>,
}

enum Entry {
    Request(Box<Record>),
    Feedback(Feedback),
}

/// The capture of one model: its settings and its writer's queue.
pub struct Sink {
    model: String,
    config: CaptureConfig,
    folder: PathBuf,
    queue: Mutex<Option<SyncSender<Entry>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("model", &self.model)
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Starts the writer of `model`'s capture into `folder/model/`. It
    /// cannot fail: a folder that cannot be written loses entries, counted.
    pub fn start(model: &str, config: &CaptureConfig, folder: PathBuf) -> Sink {
        let (queue, entries) = std::sync::mpsc::sync_channel(config.queue);
        let dir = folder.join(model);
        let writer = writer::Writer::new(model, dir, config.clone());
        let thread = std::thread::Builder::new()
            .name(format!("aimass-capture-{model}"))
            .spawn(move || writer.run(entries));
        let writer = match thread {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(
                    model,
                    "capture: cannot start its writer: {e}; nothing is kept"
                );
                None
            }
        };
        Sink {
            model: model.to_string(),
            config: config.clone(),
            folder,
            queue: Mutex::new(writer.is_some().then_some(queue)),
            writer: Mutex::new(writer),
        }
    }

    /// The settings it was started with.
    pub fn config(&self) -> &CaptureConfig {
        &self.config
    }

    /// True when the request with `id` is in the sample (sticky by id).
    pub fn sampled(&self, id: &str) -> bool {
        let sample = self.config.sample;
        if sample >= 1.0 {
            return true;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        (id, "capture").hash(&mut hasher);
        // The fixed-key hasher keeps the choice the same across restarts.
        let draw = hasher.finish() as f64 / (u64::MAX as f64 + 1.0);
        draw < sample
    }

    /// Hands `record` to the writer, or drops it (counted) when the writer
    /// is behind.
    pub fn offer(&self, record: Record) {
        self.send(Entry::Request(Box::new(record)));
    }

    /// Hands a feedback entry to the writer, or drops it (counted).
    pub fn offer_feedback(&self, feedback: Feedback) {
        self.send(Entry::Feedback(feedback));
    }

    fn send(&self, entry: Entry) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let reason = match queue.as_ref().map(|q| q.try_send(entry)) {
            Some(Ok(())) => return,
            Some(Err(TrySendError::Full(_))) => "queue_full",
            Some(Err(TrySendError::Disconnected(_))) | None => "closed",
        };
        crate::metrics::capture_dropped(&self.model, reason, 1);
    }

    /// Stops taking entries and waits until the writer has written the
    /// rest (a blocking wait: call it off the async workers).
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            tracing::warn!(model = %self.model, "capture: the writer panicked");
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The writer writes what it holds and ends on its own.
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Every captured model's sink, by model name.
#[derive(Debug, Default)]
pub struct Captures {
    sinks: BTreeMap<String, Arc<Sink>>,
}

impl Captures {
    /// Starts a sink for each `[capture.MODEL]` of `file`; a sink whose
    /// settings are unchanged in `previous` is kept as it is.
    pub fn start(file: &ConfigFile, previous: Option<&Captures>) -> Captures {
        let sinks = file
            .config
            .capture
            .iter()
            .map(|(model, config)| {
                let folder = file.resolve(&config.folder);
                let kept = previous
                    .and_then(|p| p.sinks.get(model))
                    .filter(|sink| sink.config == *config && sink.folder == folder);
                let sink = match kept {
                    Some(sink) => sink.clone(),
                    None => Arc::new(Sink::start(model, config, folder)),
                };
                (model.clone(), sink)
            })
            .collect();
        Captures { sinks }
    }

    /// The sink of `model`, when it is captured.
    pub fn sink(&self, model: &str) -> Option<&Arc<Sink>> {
        self.sinks.get(model)
    }

    /// Closes every sink (see [`Sink::close`]).
    pub fn close(&self) {
        for sink in self.sinks.values() {
            sink.close();
        }
    }
}
