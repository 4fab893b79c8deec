//! A plugin's stdout and stderr, sent to the host log line by line, tagged
//! with the node, and rate limited so a chatty plugin cannot flood it.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Lines a node may log per [`WINDOW`]; the rest are counted and dropped.
const LINES_PER_WINDOW: u32 = 100;
const WINDOW: Duration = Duration::from_secs(1);
/// A line longer than this is cut, so one write cannot hold memory hostage.
const MAX_LINE: usize = 4096;

/// How many lines one node may still log in the current window; shared by
/// every instance of the node (a node isolated per request makes a fresh
/// instance per call, and must not get a fresh budget with each) and by
/// their stdout, stderr and `log` calls.
#[derive(Debug, Clone)]
pub struct LogBudget(Arc<Mutex<Window>>);

/// Each live node's budget, by node name.
#[derive(Debug, Default)]
pub struct LogBudgets(Mutex<HashMap<String, Weak<Mutex<Window>>>>);

impl LogBudgets {
    /// The budget of `node`: the one its pool and live instances share, or
    /// a full one when none is left.
    pub fn for_node(&self, node: &str) -> LogBudget {
        let Ok(mut budgets) = self.0.lock() else {
            return LogBudget::new();
        };
        if let Some(live) = budgets.get(node).and_then(Weak::upgrade) {
            return LogBudget(live);
        }
        // Nodes come and go with reloads: forget those no longer served.
        budgets.retain(|_, budget| budget.strong_count() > 0);
        let budget = LogBudget::new();
        budgets.insert(node.to_string(), Arc::downgrade(&budget.0));
        budget
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    lines: u32,
    dropped: u64,
}

impl LogBudget {
    /// A full budget.
    pub fn new() -> Self {
        LogBudget(Arc::new(Mutex::new(Window {
            start: Instant::now(),
            lines: 0,
            dropped: 0,
        })))
    }

    /// Whether one more line from `node` may be logged now.
    pub fn admit(&self, node: &str) -> bool {
        let Ok(mut window) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        if now.duration_since(window.start) >= WINDOW {
            if window.dropped > 0 {
                tracing::warn!(target: "aimass::plugin", node,
                    "dropped {} log lines over the rate limit", window.dropped);
            }
            *window = Window {
                start: now,
                lines: 0,
                dropped: 0,
            };
        }
        if window.lines >= LINES_PER_WINDOW {
            window.dropped += 1;
            return false;
        }
        window.lines += 1;
        true
    }
}

/// One of a plugin's output streams.
#[derive(Clone)]
pub struct GuestOutput {
    node: Arc<str>,
    stream: &'static str,
    budget: LogBudget,
}

impl GuestOutput {
    /// The stream named `stream` (`stdout` or `stderr`) of `node`.
    pub fn new(node: &str, stream: &'static str, budget: LogBudget) -> Self {
        GuestOutput {
            node: node.into(),
            stream,
            budget,
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if !text.is_empty() && self.budget.admit(&self.node) {
            tracing::info!(target: "aimass::plugin", node = &*self.node, stream = self.stream, "{text}");
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            output: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineWriter {
    output: GuestOutput,
    line: Vec<u8>,
}

impl LineWriter {
    fn absorb(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.output.emit(&self.line);
                self.line.clear();
            } else if self.line.len() < MAX_LINE {
                self.line.push(byte);
            }
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.absorb(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.line.is_empty() {
            this.output.emit(&this.line);
            this.line.clear();
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_admits_a_window_of_lines_then_refuses() {
        let budget = LogBudget::new();
        for _ in 0..LINES_PER_WINDOW {
            assert!(budget.admit("node"));
        }
        assert!(!budget.admit("node"));
        // Shared between a node's streams: a clone sees the same window.
        assert!(!budget.clone().admit("node"));
    }

    #[test]
    fn a_nodes_instances_share_one_budget() {
        let budgets = LogBudgets::default();
        let first = budgets.for_node("node");
        for _ in 0..LINES_PER_WINDOW {
            assert!(first.admit("node"));
        }
        // A fresh instance of the same node: the same spent budget.
        assert!(!budgets.for_node("node").admit("node"));
        assert!(budgets.for_node("other").admit("other"));
        // Once no instance of the node is left, it starts afresh.
        drop(first);
        assert!(budgets.for_node("node").admit("node"));
    }
}
