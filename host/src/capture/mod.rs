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

/// What the models inside one request need to capture their own calls:
/// the sinks, the request's id, and the model the client called (captured
/// by the service, not again inside).
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
    /// The sink of `model` (a model's name), when a call of it inside the
    /// request is to be captured: it is captured, sampled, and not the
    /// model the client called.
    pub fn inner_sink(&self, model: &str) -> Option<&Arc<Sink>> {
        if model == self.top {
            return None;
        }
        self.captures
            .sink(model)
            .filter(|sink| sink.sampled(&self.id))
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
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn config(text: &str) -> CaptureConfig {
        toml::from_str(&format!("folder = \"capture\"\n{text}")).unwrap()
    }

    fn record(id: &str, values: usize) -> Record {
        let x = Tensor::from_f32(vec![1, values as u32], &vec![1.0; values]).unwrap();
        Record {
            id: id.into(),
            time_us: now_us(),
            version: 1,
            latency_us: 5,
            error: None,
            inputs: vec![("x".into(), x)],
            outputs: vec![],
            inner: vec![],
        }
    }

    fn parquet_rows(dir: &std::path::Path) -> Vec<usize> {
        let mut rows = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for path in files {
            assert!(
                path.extension().is_some_and(|e| e == "parquet"),
                "{}",
                path.display()
            );
            let file = std::fs::File::open(&path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            rows.push(reader.map(|b| b.unwrap().num_rows()).sum());
        }
        rows
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("aimass-capture-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_hold_at_most_their_rows_and_closing_writes_the_rest() {
        let folder = temp("rows");
        let sink = Sink::start(
            "m",
            &config("max_file_rows = 4\nflush_ms = 60000"),
            folder.clone(),
            Declared::default(),
        );
        for i in 0..10 {
            assert!(sink.offer(record(&format!("r{i}"), 3)));
        }
        assert!(sink.offer_feedback(Feedback {
            id: "r1".into(),
            time_us: now_us(),
            label: Some(2),
            label_text: None,
            reward: None,
        }));
        sink.close();
        assert_eq!(parquet_rows(&folder.join("m").join(REQUESTS)), [4, 4, 2]);
        assert_eq!(parquet_rows(&folder.join("m").join(FEEDBACK)), [1]);
        // Closed: what comes later is dropped, not queued.
        assert!(!sink.offer(record("late", 3)));
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let folder = temp("bytes");
        let sink = Sink::start(
            "m",
            &config("max_queue_bytes = 1000"),
            folder.clone(),
            Declared::default(),
        );
        // 4 000 bytes of tensors: over the budget on its own.
        assert!(!sink.offer(record("big", 1000)));
        assert!(sink.offer(record("small", 10)));
        sink.close();
        assert_eq!(parquet_rows(&folder.join("m").join(REQUESTS)), [1]);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn what_the_writer_gathers_stays_within_the_bound_until_written() {
        let folder = temp("held");
        // Each record is 4 064 + 64 + id bytes; the writer drains the queue
        // every 50 ms but writes a file only at the flush a minute later.
        let sink = Sink::start(
            "m",
            &config(
                "max_queue_bytes = 100000
flush_ms = 60000",
            ),
            folder.clone(),
            Declared::default(),
        );
        let mut taken = 0;
        for i in 0..100 {
            taken += usize::from(sink.offer(record(&format!("r{i:02}"), 1016)));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Drained into the file being gathered, they still count, beside
        // the room kept for encoding a row group (2 × 12 500 bytes): 18 fit.
        assert_eq!(taken, 18);
        sink.close();
        assert_eq!(parquet_rows(&folder.join("m").join(REQUESTS)), [18]);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn a_file_is_written_a_row_group_at_a_time() {
        let folder = temp("groups");
        // Row groups of at most 1/8 of the bound: 12 500 bytes, 3 records.
        let sink = Sink::start(
            "m",
            &config(
                "max_queue_bytes = 100000
flush_ms = 60000",
            ),
            folder.clone(),
            Declared::default(),
        );
        for i in 0..10 {
            assert!(sink.offer(record(&format!("r{i}"), 1016)));
        }
        sink.close();
        let dir = folder.join("m").join(REQUESTS);
        let path = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        let reader =
            parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
                .unwrap();
        use parquet::file::reader::FileReader;
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [3, 3, 3, 1]);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    fn schemas(dir: &std::path::Path) -> Vec<arrow_schema::SchemaRef> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let file = std::fs::File::open(path).unwrap();
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .schema()
                    .clone()
            })
            .collect()
    }

    fn declared(inner: bool) -> Declared {
        use crate::tensor::Dtype;
        Declared {
            inputs: vec![("x".into(), Dtype::Fp32)],
            outputs: vec![("y".into(), Dtype::Int64)],
            inner: if inner {
                vec![("head".into(), vec![("z".into(), Dtype::Fp32)])]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn every_file_has_the_declared_columns_whatever_its_requests_carried() {
        let folder = temp("declared");
        let sink = Sink::start(
            "m",
            &config("max_file_rows = 2\ninner = [\"head\"]"),
            folder.clone(),
            declared(true),
        );
        for i in 0..6 {
            let mut r = record(&format!("r{i}"), 3);
            if i == 5 {
                // Only the last file's requests reach the inner model.
                let z = r.inputs[0].1.clone();
                r.inner = vec![("head".into(), vec![("z".into(), z)])];
            }
            assert!(sink.offer(r));
        }
        sink.close();
        let found = schemas(&folder.join("m").join(REQUESTS));
        assert_eq!(found.len(), 3);
        for schema in &found {
            assert_eq!(schema.fields(), found[0].fields());
            for column in ["input:x", "output:y", "inner:head:z"] {
                assert!(schema.field_with_name(column).is_ok(), "{column}: {schema}");
            }
        }
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn new_columns_move_the_earlier_files_to_a_folder_of_their_own() {
        let folder = temp("schemas");
        let model = folder.join("m");
        let run = |declared: Declared, records: usize| {
            let sink = Sink::start("m", &config("max_file_rows = 1"), folder.clone(), declared);
            for i in 0..records {
                assert!(sink.offer(record(&format!("r{i}"), 2)));
            }
            sink.close();
        };
        run(declared(false), 3);
        // Restarted with the same columns: the same folder goes on.
        run(declared(false), 1);
        assert_eq!(schemas(&model.join(REQUESTS)).len(), 4);
        assert_eq!(request_datasets(&model), [model.join(REQUESTS)]);
        // An inner model's outputs kept from now on: new columns.
        run(declared(true), 2);
        let datasets = request_datasets(&model);
        assert_eq!(datasets.len(), 2, "{datasets:?}");
        let earlier = schemas(&datasets[0]);
        let now = schemas(&datasets[1]);
        assert_eq!((earlier.len(), now.len()), (4, 2));
        for schema in &earlier {
            assert_eq!(schema.fields(), earlier[0].fields());
            assert!(schema.field_with_name("inner:head:z").is_err());
        }
        for schema in &now {
            assert_eq!(schema.fields(), now[0].fields());
            assert!(schema.field_with_name("inner:head:z").is_ok());
        }
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn retention_keeps_the_newest_files_under_the_limit() {
        let folder = temp("retention");
        let sink = Sink::start(
            "m",
            &config("max_file_rows = 1\nmax_total_bytes = 6000"),
            folder.clone(),
            Declared::default(),
        );
        for i in 0..20 {
            assert!(sink.offer(record(&format!("r{i:02}"), 100)));
        }
        sink.close();
        let dir = folder.join("m").join(REQUESTS);
        let sizes: Vec<u64> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .collect();
        assert!(sizes.iter().sum::<u64>() <= 6000, "{sizes:?}");
        assert!(!sizes.is_empty() && sizes.len() < 20, "{sizes:?}");
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
