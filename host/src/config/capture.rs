//! `[capture.MODEL]`: what of a model's traffic is kept on disk, how much
//! and for how long.

use schemars::JsonSchema;
use serde::Deserialize;

/// Keeps a share of a model's requests, with what it answered (and what
/// named inner models answered), as Parquet files under `folder`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// The folder the datasets go under (relative to this file): the
    /// model's requests in `FOLDER/MODEL/requests/`, its feedback in
    /// `FOLDER/MODEL/feedback/`.
    pub folder: String,
    /// The share of requests kept, from 0 to 1 (sticky by request id).
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// Keep the request's input tensors.
    #[serde(default = "default_true")]
    pub inputs: bool,
    /// Keep the model's output tensors.
    #[serde(default = "default_true")]
    pub outputs: bool,
    /// Models inside this hierarchy whose outputs are kept too (by name).
    #[serde(default)]
    pub inner: Vec<String>,
    /// The longest a kept request waits in memory before it is in a whole
    /// file on disk, in milliseconds: what a crash can lose.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// A file is closed at this many requests.
    #[serde(default = "default_file_rows")]
    pub max_file_rows: usize,
    /// A file is closed once its tensors reach this many bytes.
    #[serde(default = "default_file_bytes")]
    pub max_file_bytes: u64,
    /// The model's files (requests and feedback) are kept under this many
    /// bytes in all; the oldest are deleted first.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
    /// Files older than this many seconds are deleted.
    #[serde(default)]
    pub max_age_s: Option<u64>,
    /// Requests waiting for the writer (which drains them every 50 ms at
    /// most, and not while it writes a file); past it new ones are dropped
    /// and counted (`aimass_capture_dropped_total`), never queued.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// The most bytes of tensors capture holds in memory: requests waiting
    /// in the queue, those gathered for the file being built until it is
    /// written, and the two copies encoding makes of one row group (an
    /// eighth of this or 8 MiB, or one request, whichever is larger: room
    /// for them is kept); past it new ones are dropped and counted too, and
    /// a request with over a third of this in tensors is never kept.
    #[serde(default = "default_queue_bytes")]
    pub max_queue_bytes: u64,
}

/// The most bytes one file may be asked to hold: a file is built in memory
/// before it is written.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

fn default_sample() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_flush_ms() -> u64 {
    1000
}
fn default_file_rows() -> usize {
    100_000
}
fn default_file_bytes() -> u64 {
    64 << 20
}
fn default_queue() -> usize {
    65536
}
fn default_queue_bytes() -> u64 {
    256 << 20
}
