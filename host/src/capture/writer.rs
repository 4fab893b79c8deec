//! The writer thread of one captured model: it gathers entries from the
//! bounded queue and writes them as whole Parquet files (temp file, fsync,
//! rename: a reader never sees a torn file), then applies the retention
//! limits. It never blocks serving; when it fails, entries are counted as
//! dropped and serving goes on.

use super::columns::{self, Layout};
use super::{Entry, Feedback, Record};
use crate::config::CaptureConfig;
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// The longest the writer sleeps between looks at its queue.
const MAX_TICK: Duration = Duration::from_millis(50);

/// Where a model's two datasets live under its folder.
pub const REQUESTS: &str = "requests";
/// See [`REQUESTS`].
pub const FEEDBACK: &str = "feedback";

/// Entries gathered for the next file of one dataset.
struct Pending<T> {
    entries: Vec<T>,
    bytes: u64,
    since: Option<Instant>,
}

impl<T> Pending<T> {
    fn new() -> Self {
        Pending {
            entries: Vec::new(),
            bytes: 0,
            since: None,
        }
    }

    fn push(&mut self, entry: T, bytes: u64) {
        self.since.get_or_insert_with(Instant::now);
        self.entries.push(entry);
        self.bytes += bytes;
    }

    fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.entries)
    }

    fn due(&self, flush: Duration) -> Option<Instant> {
        self.since.map(|since| since + flush)
    }
}

pub(super) struct Writer {
    model: String,
    dir: PathBuf,
    config: CaptureConfig,
    requests: Pending<Record>,
    layout: Layout,
    feedback: Pending<Feedback>,
    last_retention: Option<Instant>,
    queued_bytes: Arc<AtomicU64>,
}

/// The bytes a feedback entry counts for, queued or pending.
pub fn feedback_bytes(entry: &Feedback) -> u64 {
    64 + entry.id.len() as u64 + entry.label_text.as_ref().map_or(0, |t| t.len() as u64)
}

/// File names are `MILLIS-PID-SEQ`: the sequence is the process's, so two
/// writers of one folder (a capture restarted by a load) never share one.
fn next_sequence() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Writer {
    pub fn new(
        model: &str,
        dir: PathBuf,
        config: CaptureConfig,
        queued_bytes: Arc<AtomicU64>,
    ) -> Writer {
        // A process killed mid-write leaves a hidden temp file; readers
        // skip it, and it goes here.
        for dataset in [REQUESTS, FEEDBACK] {
            if let Ok(entries) = std::fs::read_dir(dir.join(dataset)) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with('.') && name.ends_with(".tmp") {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        Writer {
            model: model.to_string(),
            dir,
            config,
            requests: Pending::new(),
            layout: Layout::new(),
            feedback: Pending::new(),
            last_retention: None,
            queued_bytes,
        }
    }

    /// Runs until every sender is gone, then writes what is left.
    ///
    /// It wakes on a tick and drains the queue, rather than sleeping in
    /// `recv`: a sender then never has a sleeping thread to wake, which
    /// would cost every captured request a system call.
    pub fn run(mut self, queue: Receiver<Entry>) {
        let flush = Duration::from_millis(self.config.flush_ms);
        let tick = flush.min(MAX_TICK);
        loop {
            std::thread::sleep(tick);
            loop {
                match queue.try_recv() {
                    Ok(entry) => self.take(entry),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.write_requests();
                        self.write_feedback();
                        return;
                    }
                }
            }
            let now = Instant::now();
            if self.requests.due(flush).is_some_and(|due| due <= now) {
                self.write_requests();
            }
            if self.feedback.due(flush).is_some_and(|due| due <= now) {
                self.write_feedback();
            }
            if self.config.max_age_s.is_some()
                && self
                    .last_retention
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
            {
                self.retain();
            }
        }
    }

    fn take(&mut self, entry: Entry) {
        match entry {
            Entry::Request(record) => {
                let bytes = columns::record_bytes(&record);
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.add_request(*record, bytes);
            }
            Entry::Feedback(entry) => {
                let bytes = feedback_bytes(&entry);
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.feedback.push(entry, bytes);
                if self.feedback.entries.len() >= self.config.max_file_rows {
                    self.write_feedback();
                }
            }
        }
    }

    fn add_request(&mut self, record: Record, bytes: u64) {
        if !columns::extend_layout(&mut self.layout, &record) {
            // A reload changed a tensor's type: the rest go to a new file.
            self.write_requests();
            columns::extend_layout(&mut self.layout, &record);
        }
        self.requests.push(record, bytes);
        if self.requests.entries.len() >= self.config.max_file_rows
            || self.requests.bytes >= self.config.max_file_bytes
        {
            self.write_requests();
        }
    }

    fn write_requests(&mut self) {
        let records = self.requests.take();
        let layout = std::mem::take(&mut self.layout);
        if records.is_empty() {
            return;
        }
        let batch = columns::requests(&self.model, &records, &layout);
        self.write(REQUESTS, records.len(), batch);
    }

    fn write_feedback(&mut self) {
        let entries = self.feedback.take();
        if entries.is_empty() {
            return;
        }
        let batch = columns::feedback(&entries);
        self.write(FEEDBACK, entries.len(), batch);
    }

    fn write(
        &mut self,
        dataset: &str,
        rows: usize,
        batch: Result<RecordBatch, arrow_schema::ArrowError>,
    ) {
        let rows = rows as u64;
        let dir = self.dir.join(dataset);
        let millis = super::now_us() / 1000;
        // Sorted by name is sorted by time: the retention deletes in that order.
        let name = format!("{millis:013}-{}-{:06}", std::process::id(), next_sequence());
        let outcome = batch
            .map_err(|e| e.to_string())
            .and_then(|batch| encode(&batch))
            .and_then(|bytes| write_atomically(&dir, &name, &bytes));
        match outcome {
            Ok(()) => {
                crate::metrics::capture_written(&self.model, rows);
                self.retain();
            }
            Err(error) => {
                tracing::warn!(model = %self.model, folder = %dir.display(), "capture: {rows} entries lost: {error}");
                crate::metrics::capture_dropped(&self.model, "write_failed", rows);
            }
        }
    }

    /// Deletes the oldest files while the model's files take more than
    /// `max_total_bytes`, and those older than `max_age_s`.
    fn retain(&mut self) {
        self.last_retention = Some(Instant::now());
        let (total_limit, age_limit) = (self.config.max_total_bytes, self.config.max_age_s);
        if total_limit.is_none() && age_limit.is_none() {
            return;
        }
        let mut files = Vec::new();
        for dataset in [REQUESTS, FEEDBACK] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(dataset)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if !name.ends_with(".parquet") || name.starts_with('.') {
                    continue;
                }
                if let Ok(meta) = entry.metadata() {
                    files.push((name, entry.path(), meta.len(), meta.modified().ok()));
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        let mut deleted = 0;
        for (_, path, size, modified) in &files {
            let too_old = age_limit.is_some_and(|limit| {
                modified
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(limit))
            });
            let too_big = total_limit.is_some_and(|limit| total > limit);
            if !(too_old || too_big) {
                continue;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {
                    total -= size;
                    deleted += 1;
                }
                Err(e) => {
                    tracing::warn!(model = %self.model, "capture: cannot delete {}: {e}", path.display())
                }
            }
        }
        if deleted > 0 {
            crate::metrics::capture_deleted(&self.model, deleted);
        }
    }
}

/// One whole Parquet file, in memory.
fn encode(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))
        .map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Writes `NAME.parquet` in `dir` so that it appears whole or not at all.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| fail("create the folder", e))?;
    let temp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail("write a file", e));
    }
    std::fs::rename(&temp, dir.join(format!("{name}.parquet"))).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        fail("rename a file", e)
    })
}
