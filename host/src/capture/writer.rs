//! The writer thread of one captured model: it gathers entries from the
//! bounded queue and writes them as whole Parquet files (temp file, fsync,
//! rename: a reader never sees a torn file), then applies the retention
//! limits. It never blocks serving; when it fails, entries are counted as
//! dropped and serving goes on.
//!
//! Schema: every file of one dataset folder has the same columns, so that
//! a reader of the whole folder (pyarrow, DuckDB, Spark: they take one
//! file's schema for all) loses none. The columns come from what the model
//! declares, not from what each file's requests carried; when they change
//! (a reload that keeps other tensors), the files already in `requests/`
//! move to a folder of their own, `requests-until-MILLIS/`, before the
//! first file of the new columns goes in.
//!
//! Memory: an entry's bytes stay charged to the capture's `max_queue_bytes`
//! from the moment it is queued until the file holding it is written, so
//! the queue and the file being gathered share that one bound. A file is
//! encoded a row group at a time, each of at most [`ROW_GROUP_BYTES`] of
//! tensors (or one entry), straight into the file: encoding holds one row
//! group's copy, never a copy of the whole file.

use super::columns::{self, Layout};
use super::{Entry, Feedback, Record};
use crate::config::CaptureConfig;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest the writer sleeps between looks at its queue.
const MAX_TICK: Duration = Duration::from_millis(50);

/// The most bytes of tensors one row group holds (fewer when the capture's
/// `max_queue_bytes` is small: an eighth of it).
pub const ROW_GROUP_BYTES: u64 = 8 << 20;

/// The bytes of tensors a row group gathers under a bound of
/// `max_queue_bytes` (one entry bigger than that is a group of its own).
pub fn row_group_bytes(max_queue_bytes: u64) -> u64 {
    ROW_GROUP_BYTES.min(max_queue_bytes / 8).max(1)
}

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
    held_bytes: Arc<AtomicU64>,
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
        layout: Layout,
        held_bytes: Arc<AtomicU64>,
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
            layout,
            feedback: Pending::new(),
            last_retention: None,
            held_bytes,
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
                self.add_request(*record, bytes);
            }
            Entry::Feedback(entry) => {
                let bytes = feedback_bytes(&entry);
                self.feedback.push(entry, bytes);
                if self.feedback.entries.len() >= self.config.max_file_rows {
                    self.write_feedback();
                }
            }
        }
    }

    fn add_request(&mut self, record: Record, bytes: u64) {
        if !columns::extend_layout(&mut self.layout, &record) {
            // A tensor came with another type than declared: the rest go
            // to a new file (and a new folder) with the types they have.
            self.write_requests();
            self.layout.clear();
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
        let bytes = self.requests.bytes;
        let records = self.requests.take();
        let layout = self.layout.clone();
        if !records.is_empty() {
            let group_bytes = row_group_bytes(self.config.max_queue_bytes);
            let model = self.model.clone();
            let groups = row_groups(&records, group_bytes);
            let held = self.held_bytes.clone();
            self.write(REQUESTS, records.len(), |sink| {
                for group in groups {
                    // Encoding copies the group twice over (Arrow columns,
                    // then Parquet pages): charged while it lasts, so that
                    // requests offered meanwhile see that memory in use.
                    let copies = 2 * records[group.clone()]
                        .iter()
                        .map(columns::record_bytes)
                        .sum::<u64>();
                    held.fetch_add(copies, Ordering::Relaxed);
                    let written = columns::requests(&model, &records[group], &layout)
                        .map_err(|e| e.to_string())
                        .and_then(&mut *sink);
                    held.fetch_sub(copies, Ordering::Relaxed);
                    written?;
                }
                Ok(())
            });
        }
        drop(records);
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn write_feedback(&mut self) {
        let bytes = self.feedback.bytes;
        let entries = self.feedback.take();
        if !entries.is_empty() {
            self.write(FEEDBACK, entries.len(), |sink| {
                sink(columns::feedback(&entries).map_err(|e| e.to_string())?)
            });
        }
        drop(entries);
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Writes one file of `rows` entries, whose row groups `batches` hands
    /// to the sink it is given one at a time.
    fn write(&mut self, dataset: &str, rows: usize, batches: impl FnOnce(&mut Sink) -> Written) {
        let rows = rows as u64;
        let dir = self.dir.join(dataset);
        let millis = super::now_us() / 1000;
        // Sorted by name is sorted by time: the retention deletes in that order.
        let name = format!("{millis:013}-{}-{:06}", std::process::id(), next_sequence());
        match write_atomically(&dir, &name, batches) {
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
        let mut folders = request_datasets(&self.dir);
        folders.push(self.dir.join(FEEDBACK));
        for folder in &folders {
            let Ok(entries) = std::fs::read_dir(folder) else {
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
            // An earlier schema's folder emptied by the limits goes too
            // (removing a folder that still holds files fails, harmlessly).
            for folder in &folders[..folders.len().saturating_sub(2)] {
                let _ = std::fs::remove_dir(folder);
            }
        }
    }
}

/// What writing a file's row groups ends with.
type Written = Result<(), String>;

/// Takes one row group: encodes it into the file being written.
type Sink<'a> = dyn FnMut(RecordBatch) -> Written + 'a;

/// The records cut into runs of at most `max_bytes` of tensors each (a
/// record bigger than that is a run of its own).
fn row_groups(records: &[Record], max_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, record) in records.iter().enumerate() {
        let size = columns::record_bytes(record);
        if i > start && bytes + size > max_bytes {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        groups.push(start..records.len());
    }
    groups
}

/// Writes `NAME.parquet` in `dir` so that it appears whole or not at all:
/// the row groups `batches` gives are encoded one by one into a temp file,
/// which is synced and renamed.
fn write_atomically(dir: &Path, name: &str, batches: impl FnOnce(&mut Sink) -> Written) -> Written {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("cannot {what} in {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| fail("create the folder", &e))?;
    let temp = dir.join(format!(".{name}.tmp"));
    let written = (|| -> Result<SchemaRef, String> {
        let file = std::fs::File::create(&temp).map_err(|e| fail("write a file", &e))?;
        // No dictionaries: tensor values rarely repeat, and a dictionary
        // encoder would hold a table of them beside the row group.
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build();
        let mut writer: Option<ArrowWriter<std::io::BufWriter<std::fs::File>>> = None;
        let mut file = Some(std::io::BufWriter::new(file));
        let mut schema = None;
        batches(&mut |batch: RecordBatch| {
            let writer = match (&mut writer, file.take()) {
                (Some(writer), _) => writer,
                (None, Some(file)) => writer.insert(
                    ArrowWriter::try_new(
                        file,
                        schema.insert(batch.schema()).clone(),
                        Some(properties.clone()),
                    )
                    .map_err(|e| e.to_string())?,
                ),
                (None, None) => return Err("the file is already closed".into()),
            };
            writer.write(&batch).map_err(|e| e.to_string())?;
            // Each batch is a row group of its own, encoded and written
            // now rather than buffered.
            writer.flush().map_err(|e| e.to_string())
        })?;
        let (Some(writer), Some(schema)) = (writer, schema) else {
            return Err("no rows to write".into());
        };
        let file = writer.into_inner().map_err(|e| e.to_string())?;
        let file = file
            .into_inner()
            .map_err(|e| fail("write a file", &e.into_error()))?;
        file.sync_all().map_err(|e| fail("write a file", &e))?;
        Ok(schema)
    })();
    let placed = written.and_then(|schema| {
        place(dir, &temp, &dir.join(format!("{name}.parquet")), &schema)
            .map_err(|e| fail("move a file", &e))
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    placed
}

/// The schema of the files in each dataset folder this process writes to
/// (read from the newest file the first time a folder is met).
static FOLDER_SCHEMAS: Mutex<BTreeMap<PathBuf, SchemaRef>> = Mutex::new(BTreeMap::new());

/// Renames the written `temp` to `path` in `dir`, first moving the files
/// already in `dir` to a folder of their own when their schema differs
/// from `schema`. Under one lock: two writers of a folder (a capture
/// restarted by a reload, while the old one writes its last file) never
/// leave two schemas in it.
fn place(dir: &Path, temp: &Path, path: &Path, schema: &SchemaRef) -> std::io::Result<()> {
    let mut schemas = FOLDER_SCHEMAS.lock().unwrap_or_else(|p| p.into_inner());
    let current = match schemas.get(dir) {
        Some(known) => Some(known.clone()),
        None => newest_schema(dir),
    };
    if let Some(current) = current
        && current.fields() != schema.fields()
    {
        archive(dir)?;
    }
    std::fs::rename(temp, path)?;
    schemas.insert(dir.to_path_buf(), schema.clone());
    Ok(())
}

/// The whole files of a dataset folder, oldest first.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".parquet") && !name.starts_with('.')
        })
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

/// The schema of the newest file in `dir`; an unreadable file counts as
/// another schema (the folder is set aside rather than mixed).
fn newest_schema(dir: &Path) -> Option<SchemaRef> {
    let newest = parquet_files(dir).pop()?;
    let read = std::fs::File::open(&newest)
        .map_err(|e| e.to_string())
        .and_then(|file| {
            ParquetRecordBatchReaderBuilder::try_new(file)
                .map(|builder| builder.schema().clone())
                .map_err(|e| e.to_string())
        });
    Some(read.unwrap_or_else(|_| Arc::new(arrow_schema::Schema::empty())))
}

/// Moves every file of the dataset folder `dir` (`…/requests`) to a new
/// sibling, `requests-until-MILLIS`, a dataset of the earlier schema.
fn archive(dir: &Path) -> std::io::Result<()> {
    let files = parquet_files(dir);
    if files.is_empty() {
        return Ok(());
    }
    let dataset = dir
        .file_name()
        .map_or_else(|| "requests".into(), |n| n.to_string_lossy());
    let millis = super::now_us() / 1000;
    let mut target = dir.with_file_name(format!("{dataset}{ARCHIVED}{millis:013}"));
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = dir.with_file_name(format!("{dataset}{ARCHIVED}{millis:013}-{n}"));
    }
    std::fs::create_dir_all(&target)?;
    for file in files {
        if let Some(name) = file.file_name() {
            std::fs::rename(&file, target.join(name))?;
        }
    }
    tracing::info!(
        folder = %dir.display(),
        "capture: the columns changed; the earlier files moved to {}",
        target.display()
    );
    Ok(())
}

/// What joins a dataset's name and the time its schema was superseded in
/// the name of the folder of its earlier files.
const ARCHIVED: &str = "-until-";

/// The folders of a model's request datasets (`dir` is `FOLDER/MODEL`):
/// those of earlier schemas, oldest first, then `requests`.
pub fn request_datasets(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{REQUESTS}{ARCHIVED}");
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect();
    folders.sort();
    folders.push(dir.join(REQUESTS));
    folders
}
