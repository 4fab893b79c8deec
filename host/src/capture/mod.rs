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

pub use columns::{DTYPE_KEY, column_part, input_column, output_column};
pub use writer::{FEEDBACK, REQUESTS, request_datasets};

use crate::config::{CaptureConfig, ConfigFile};
use crate::tensor::NamedTensor;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The tensors a captured model declares, by name and element type (the
/// union over its served versions): its inputs, its outputs, and the
/// outputs of each inner model its capture keeps. They fix the columns of
/// its files, so that every file of one model's dataset has the same
/// schema and a reader of the whole folder sees every column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    /// The model's inputs.
    pub inputs: Vec<(String, crate::tensor::Dtype)>,
    /// The model's outputs.
    pub outputs: Vec<(String, crate::tensor::Dtype)>,
    /// Each kept inner model's outputs, by model.
    pub inner: Vec<(String, Vec<(String, crate::tensor::Dtype)>)>,
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
    declared: Declared,
    /// Bytes of tensors queued for the writer or held by it for the file it
    /// builds (it subtracts them once that file is written): what capture
    /// holds in memory, bounded by `max_queue_bytes`.
    held_bytes: Arc<AtomicU64>,
    /// The bytes of the largest entry taken: encoding copies a row group
    /// of at least that much twice, and room for that is kept.
    largest: AtomicU64,
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
    /// Starts the writer of `model`'s capture into `folder/model/`, its
    /// columns those of `declared`. It cannot fail: a folder that cannot be
    /// written loses entries, counted.
    pub fn start(model: &str, config: &CaptureConfig, folder: PathBuf, declared: Declared) -> Sink {
        let (queue, entries) = std::sync::mpsc::sync_channel(config.queue);
        let dir = folder.join(model);
        let held_bytes = Arc::new(AtomicU64::new(0));
        let layout = columns::declared_layout(&declared, config);
        let writer = writer::Writer::new(model, dir, config.clone(), layout, held_bytes.clone());
        let thread = std::thread::Builder::new()
            // Escaped: a quoted TOML key may hold a NUL, which a thread
            // name may not.
            .name(format!("aimass-capture-{}", model.escape_default()))
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
            declared,
            held_bytes,
            largest: AtomicU64::new(0),
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
    /// is behind; true when it was taken.
    pub fn offer(&self, record: Record) -> bool {
        let bytes = columns::record_bytes(&record);
        self.send(Entry::Request(Box::new(record)), bytes)
    }

    /// Hands a feedback entry to the writer, or drops it (counted).
    pub fn offer_feedback(&self, feedback: Feedback) -> bool {
        let bytes = writer::feedback_bytes(&feedback);
        self.send(Entry::Feedback(feedback), bytes)
    }

    fn send(&self, entry: Entry, bytes: u64) -> bool {
        let limit = self.config.max_queue_bytes;
        // Room is kept for the two copies encoding makes of one row group
        // (the writer charges them while it encodes), so that everything
        // capture holds stays within the bound.
        let group = writer::row_group_bytes(limit);
        let reserve = |largest: u64| 2 * group.max(largest);
        let largest = self.largest.load(Ordering::Relaxed).max(bytes);
        let queued = self.held_bytes.fetch_add(bytes, Ordering::Relaxed);
        let reason = if bytes.saturating_add(reserve(bytes)) > limit {
            "too_large"
        } else if queued
            .saturating_add(bytes)
            .saturating_add(reserve(largest))
            > limit
        {
            "queue_full"
        } else {
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            match queue.as_ref().map(|q| q.try_send(entry)) {
                Some(Ok(())) => {
                    self.largest.fetch_max(bytes, Ordering::Relaxed);
                    return true;
                }
                Some(Err(TrySendError::Full(_))) => "queue_full",
                Some(Err(TrySendError::Disconnected(_))) | None => "closed",
            }
        };
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
        crate::metrics::capture_dropped(&self.model, reason, 1);
        false
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

/// What the models of one request need to capture their own calls: the
/// sinks, the request's id, and the model the client called.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Every captured model's sink.
    pub captures: Arc<Captures>,
    /// The request's id.
    pub id: String,
    /// The model the client called.
    pub top: String,
}

impl Scope {
    /// The sink of `model` (a model's name) when its calls in this request
    /// are captured: it is captured and the request is in its sample.
    pub fn sink(&self, model: &str) -> Option<&Arc<Sink>> {
        self.captures
            .sink(model)
            .filter(|sink| sink.sampled(&self.id))
    }

    /// The sink of `model` for a call of it inside the request: as
    /// [`Scope::sink`], except the model the client called, which is
    /// captured once for the whole request (not again for each of its
    /// versions a rollout calls).
    pub fn inner_sink(&self, model: &str) -> Option<&Arc<Sink>> {
        if model == self.top {
            return None;
        }
        self.sink(model)
    }

    /// The inner models whose outputs the called model's record keeps.
    pub fn kept_inner(&self) -> Vec<String> {
        self.sink(&self.top)
            .map(|sink| sink.config().inner.clone())
            .unwrap_or_default()
    }
}

/// One call on its way to its model's capture: started before the call
/// runs (its inputs shared, not copied), offered when it ends.
pub struct Pending {
    sink: Arc<Sink>,
    time_us: i64,
    started: std::time::Instant,
    inputs: Vec<NamedTensor>,
}

impl Pending {
    /// A call of the model `sink` captures, with these inputs.
    pub fn start(sink: &Arc<Sink>, inputs: &[NamedTensor]) -> Pending {
        Pending {
            sink: sink.clone(),
            time_us: now_us(),
            started: std::time::Instant::now(),
            inputs: if sink.config().inputs {
                inputs.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Offers the call's record: answered by `version` of the model, with
    /// its outputs or its error, and the kept `inner` models' outputs.
    pub fn finish<E: std::fmt::Display>(
        self,
        id: &str,
        version: u64,
        result: Result<&[NamedTensor], &E>,
        inner: Vec<(String, Vec<NamedTensor>)>,
    ) {
        let outputs = match result {
            Ok(outputs) if self.sink.config().outputs => outputs.to_vec(),
            _ => Vec::new(),
        };
        self.sink.offer(Record {
            id: id.to_string(),
            time_us: self.time_us,
            version,
            latency_us: self.started.elapsed().as_micros() as u64,
            error: result.err().map(|e| error_text(e)),
            inputs: self.inputs,
            outputs,
            inner,
        });
    }
}

/// An error as a capture keeps it: its text, at most 1 KiB.
pub fn error_text(error: &impl std::fmt::Display) -> String {
    const MAX_ERROR: usize = 1024;
    let mut text = error.to_string();
    if text.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Every captured model's sink, by model name.
#[derive(Debug, Default)]
pub struct Captures {
    sinks: BTreeMap<String, Arc<Sink>>,
}

impl Captures {
    /// Starts a sink for each `[capture.MODEL]` of `file`, its columns what
    /// `declared` gives for the model and its settings; a sink whose
    /// settings and tensors are unchanged in `previous` is kept as it is.
    pub fn start(
        file: &ConfigFile,
        previous: Option<&Captures>,
        declared: impl Fn(&str, &CaptureConfig) -> Declared,
    ) -> Captures {
        let sinks = file
            .config
            .capture
            .iter()
            .map(|(model, config)| {
                let folder = file.resolve(&config.folder);
                let declared = declared(model, config);
                let kept = previous.and_then(|p| p.sinks.get(model)).filter(|sink| {
                    sink.config == *config && sink.folder == folder && sink.declared == declared
                });
                let sink = match kept {
                    Some(sink) => sink.clone(),
                    None => Arc::new(Sink::start(model, config, folder, declared)),
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

    /// True when no model is captured.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Closes every sink (see [`Sink::close`]).
    pub fn close(&self) {
        for sink in self.sinks.values() {
            sink.close();
        }
    }
}

#[cfg(test)]
mod tests;
