//! Dynamic batching for one node. Calls from any request, and from inside
//! hierarchies, wait in a bounded queue; once an instance is free, a batch
//! former takes the oldest call and as many more as fit in
//! `max_batch_size` rows (waiting up to `max_queue_delay` for them, or not
//! at all once a preferred size is reached), concatenates their inputs along
//! dimension 0, runs one plugin call and splits the outputs back by rows.
//!
//! Queue → batch former → instance pool, over channels: a caller only sends
//! its call and awaits its answer, so dropping the caller's future (client
//! gone, deadline passed) leaves a call the former skips, never runs.

use super::error::RuntimeError;
use super::pool::NodePool;
use crate::metrics::BatchMetrics;
use crate::tensor::{NamedTensor, concat};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::Instrument;

/// How a node batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Rows in one merged call at most; a call with more runs alone.
    pub max_batch_size: usize,
    /// How long the oldest call waits for others to join it.
    pub max_queue_delay: Duration,
    /// Row counts worth running at once, without waiting for the delay.
    pub preferred_batch_sizes: Vec<usize>,
    /// Calls waiting at most; one more is refused (saturated).
    pub max_queue_size: usize,
}

type Answer = Result<Vec<NamedTensor>, RuntimeError>;

/// A batching node's plugin calls by rows: Triton's `batch_stats`.
#[derive(Debug, Default)]
pub struct BatchLog(Mutex<BTreeMap<usize, (u64, Duration)>>);

impl BatchLog {
    fn record(&self, rows: usize, took: Duration) {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = log.entry(rows).or_default();
        entry.0 += 1;
        entry.1 += took;
    }

    /// Each batch size run, with how many calls had it and their time.
    pub fn snapshot(&self) -> Vec<(usize, u64, Duration)> {
        let log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .map(|(&rows, &(count, took))| (rows, count, took))
            .collect()
    }
}

struct Call {
    inputs: Vec<NamedTensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Answer>,
    /// The caller's span: the plugin's log lines for this call alone go
    /// under it, and a merged batch's span follows from it.
    span: tracing::Span,
    /// The id the caller's log lines carry, for a merged batch's span.
    log_id: Option<String>,
}

/// The batching front of one node's pool.
pub struct Batcher {
    node: String,
    policy: BatchPolicy,
    queue: mpsc::Sender<Call>,
    log: Arc<BatchLog>,
    /// The node, for the idle fast path.
    direct: Node,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("node", &self.node)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batch former of `pool`'s node (on the current tokio
    /// runtime); it stops when the batcher is dropped.
    pub fn start(pool: Arc<NodePool>, policy: BatchPolicy) -> Batcher {
        let node = pool.spec().node.clone();
        let (queue, waiting) = mpsc::channel(policy.max_queue_size.max(1));
        let log = Arc::new(BatchLog::default());
        let instances = Arc::new(Semaphore::new(pool.spec().max_instances.max(1)));
        let metrics = BatchMetrics::new(&node);
        let direct = Node {
            pool,
            log: log.clone(),
            instances: instances.clone(),
            metrics: metrics.clone(),
        };
        let former = Former {
            node: direct.clone(),
            policy: policy.clone(),
            waiting,
            held: None,
        };
        tokio::spawn(former.run());
        Batcher {
            node,
            policy,
            queue,
            log,
            direct,
        }
    }

    /// The plugin calls run so far, by rows.
    pub fn log(&self) -> &BatchLog {
        &self.log
    }

    /// The policy.
    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }

    /// Runs one call, merged with whatever else is queued; `log_id` (the
    /// request's id in the log) names it in a merged batch's log lines.
    pub async fn infer(&self, inputs: Vec<NamedTensor>, log_id: Option<&str>) -> Answer {
        // Without a queue delay, a call finding the node idle (nothing
        // queued, no batch running) runs at once in its caller's task:
        // batching costs nothing at low load, and under load calls go
        // through the queue and merge.
        if self.policy.max_queue_delay.is_zero()
            && self.queue.capacity() == self.queue.max_capacity()
            && self.direct.instances.available_permits()
                == self.direct.pool.spec().max_instances.max(1)
            && let Ok(_instance) = self.direct.instances.clone().try_acquire_owned()
        {
            let rows = inputs.first().map_or(0, |(_, t)| t.rows());
            self.direct.metrics.batch(rows);
            self.direct.metrics.queued(Duration::ZERO);
            return self.direct.infer(inputs, rows).await;
        }
        let (reply, answer) = oneshot::channel();
        let call = Call {
            rows: inputs.first().map_or(0, |(_, t)| t.rows()),
            inputs,
            enqueued: Instant::now(),
            reply,
            span: tracing::Span::current(),
            log_id: log_id.map(str::to_string),
        };
        self.queue.try_send(call).map_err(|e| match e {
            TrySendError::Full(_) => RuntimeError::Saturated {
                node: self.node.clone(),
                reason: format!(
                    "node `{}` has {} calls waiting for a batch, its queue's limit",
                    self.node, self.policy.max_queue_size
                ),
            },
            TrySendError::Closed(_) => self.stopped(),
        })?;
        answer.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    fn stopped(&self) -> RuntimeError {
        RuntimeError::Engine(format!("the batcher of node `{}` has stopped", self.node))
    }
}

struct Former {
    node: Node,
    policy: BatchPolicy,
    waiting: mpsc::Receiver<Call>,
    /// A call that did not fit in the last batch: the next one starts with it.
    held: Option<Call>,
}

impl Former {
    async fn run(mut self) {
        loop {
            let first = match self.held.take() {
                Some(call) => call,
                None => match self.waiting.recv().await {
                    Some(call) => call,
                    None => return,
                },
            };
            // One permit per instance: a batch is formed only when one is
            // free, so calls keep joining the queue while every instance is
            // busy.
            let Ok(instance) = self.node.instances.clone().acquire_owned().await else {
                return;
            };
            // Its caller gave up while it waited (deadline, client gone): it
            // never runs.
            if first.reply.is_closed() {
                continue;
            }
            let batch = self.gather(first).await;
            self.node.metrics.depth(self.waiting.len());
            tokio::spawn(run_batch(self.node.clone(), batch, instance));
        }
    }

    /// `first` and the calls that join it.
    async fn gather(&mut self, first: Call) -> Vec<Call> {
        let flush_at = tokio::time::Instant::from_std(first.enqueued + self.policy.max_queue_delay);
        let mut rows = first.rows;
        let mut batch = vec![first];
        while rows < self.policy.max_batch_size
            && !self.policy.preferred_batch_sizes.contains(&rows)
        {
            let next = match self.waiting.try_recv() {
                Ok(call) => call,
                Err(TryRecvError::Disconnected) => break,
                // Checked here, not by the timer: tokio's timer ticks every
                // millisecond, even for a deadline already past.
                Err(TryRecvError::Empty) if tokio::time::Instant::now() >= flush_at => break,
                Err(TryRecvError::Empty) => {
                    match tokio::time::timeout_at(flush_at, self.waiting.recv()).await {
                        Ok(Some(call)) => call,
                        Ok(None) | Err(_) => break,
                    }
                }
            };
            if next.reply.is_closed() {
                continue;
            }
            if rows + next.rows > self.policy.max_batch_size {
                self.held = Some(next);
                break;
            }
            rows += next.rows;
            batch.push(next);
        }
        batch
    }
}

/// The node a batch runs on, and where its calls are logged.
#[derive(Clone)]
struct Node {
    pool: Arc<NodePool>,
    log: Arc<BatchLog>,
    /// The former's instance permits: a call retried apart takes its own.
    instances: Arc<Semaphore>,
    metrics: BatchMetrics,
}

impl Node {
    async fn infer(&self, inputs: Vec<NamedTensor>, rows: usize) -> Answer {
        let started = Instant::now();
        let answer = self.pool.infer(inputs).await;
        self.log.record(rows, started.elapsed());
        answer
    }
}

/// Runs one batch on the node and answers each of its calls.
async fn run_batch(node: Node, batch: Vec<Call>, instance: OwnedSemaphorePermit) {
    // Callers that gave up while the batch formed are left out.
    let batch: Vec<Call> = batch.into_iter().filter(|c| !c.reply.is_closed()).collect();
    if batch.is_empty() {
        return;
    }
    let rows: usize = batch.iter().map(|c| c.rows).sum();
    node.metrics.batch(rows);
    for call in &batch {
        node.metrics.queued(call.enqueued.elapsed());
    }
    run_group(node, batch, instance).await;
}

/// Runs `calls` as one merged call (or alone, for one call); when that
/// fails for something a row may have caused, runs them apart.
fn run_group(
    node: Node,
    mut calls: Vec<Call>,
    instance: OwnedSemaphorePermit,
) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        calls.retain(|c| !c.reply.is_closed());
        if let [call] = calls.as_mut_slice() {
            // Alone, the call's answer is its own, error included; it stops
            // when its caller gives up, so a retry never outlives the
            // request's own deadline.
            let inputs = std::mem::take(&mut call.inputs);
            let answer = tokio::select! {
                answer = node.infer(inputs, call.rows).instrument(call.span.clone()) => answer,
                () = call.reply.closed() => return,
            };
            drop(instance);
            let _ = calls.remove(0).reply.send(answer);
            return;
        }
        // Shapes beyond the rows may differ between calls (a dynamic second
        // dimension): such calls cannot merge and run apart.
        let Some(merged) = merge(&calls) else {
            let singles = calls.into_iter().map(|c| vec![c]).collect();
            return run_apart(node, singles, instance).await;
        };
        let rows: usize = calls.iter().map(|c| c.rows).sum();
        let counts: Vec<usize> = calls.iter().map(|c| c.rows).collect();
        let span = batch_span(&node, &calls);
        let failure = match node.infer(merged, rows).instrument(span).await {
            Ok(outputs) => match split(&node.pool, outputs, &counts) {
                Ok(parts) => {
                    for (call, part) in calls.into_iter().zip(parts) {
                        let _ = call.reply.send(Ok(part));
                    }
                    return;
                }
                Err(error) => error,
            },
            Err(error) => error,
        };
        if !row_may_cause(&failure) {
            return fail_all(calls, failure);
        }
        node.metrics.split_apart(calls.len());
        // A failure that ran into the time limit is not repeated on halves:
        // a bystander sharing a half with the culprit would sit through
        // the limit twice. Each call runs alone instead; quicker failures
        // are found by halving, in 2·log2(n) calls rather than n.
        let groups: Vec<Vec<Call>> = if matches!(failure, RuntimeError::Timeout { .. }) {
            calls.into_iter().map(|c| vec![c]).collect()
        } else {
            let second = calls.split_off(calls.len() / 2);
            vec![calls, second]
        };
        run_apart(node, groups, instance).await;
    })
}

/// The span a merged call runs in: it names the node and the requests
/// merged (at most [`NAMED_REQUESTS`] of them by id, then a count), and
/// follows from each caller's span.
fn batch_span(node: &Node, calls: &[Call]) -> tracing::Span {
    let mut ids: Vec<&str> = calls
        .iter()
        .take(NAMED_REQUESTS)
        .map(|c| c.log_id.as_deref().unwrap_or("-"))
        .collect();
    let more = calls.len().saturating_sub(NAMED_REQUESTS);
    let more = format!("+{more}");
    if calls.len() > NAMED_REQUESTS {
        ids.push(&more);
    }
    let span = tracing::info_span!(
        parent: None,
        "batch",
        node = %node.pool.spec().node,
        requests = ?ids,
    );
    for call in calls {
        span.follows_from(&call.span);
    }
    span
}

/// The most request ids a merged call's span names.
const NAMED_REQUESTS: usize = 16;

/// Runs each group on its own instance as soon as one is free (the first on
/// `instance`), all at once where the node has instances to spare.
async fn run_apart(node: Node, groups: Vec<Vec<Call>>, instance: OwnedSemaphorePermit) {
    let mut held = Some(instance);
    let mut running = Vec::with_capacity(groups.len());
    for group in groups {
        let node = node.clone();
        let held = held.take();
        running.push(tokio::spawn(async move {
            let instance = match held {
                Some(instance) => instance,
                None => match node.instances.clone().acquire_owned().await {
                    Ok(instance) => instance,
                    Err(_) => return,
                },
            };
            run_group(node, group, instance).await;
        }));
    }
    for task in running {
        let _ = task.await;
    }
}

/// Whether one call's rows may be what made a merged call fail: anything
/// the plugin did. Missing capacity and a stopping engine are the host's,
/// and running apart would not help.
fn row_may_cause(error: &RuntimeError) -> bool {
    !matches!(
        error,
        RuntimeError::Saturated { .. } | RuntimeError::Capacity { .. } | RuntimeError::Engine(_)
    )
}

/// Answers every call with a failure of the host's (it quotes no input).
fn fail_all(batch: Vec<Call>, error: RuntimeError) {
    let requests = batch.len();
    let source = Arc::new(error);
    for call in batch {
        let _ = call.reply.send(Err(RuntimeError::Batched {
            requests,
            source: source.clone(),
        }));
    }
}

/// Each input, the calls' rows one after the other (in the first call's
/// order of inputs); `None` when they do not line up.
fn merge(batch: &[Call]) -> Option<Vec<NamedTensor>> {
    let first = batch.first()?;
    first
        .inputs
        .iter()
        .map(|(name, _)| {
            let parts: Option<Vec<_>> = batch
                .iter()
                .map(|call| {
                    call.inputs
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| t.clone())
                })
                .collect();
            Some((name.clone(), concat(&parts?).ok()?))
        })
        .collect()
}

/// The merged call's outputs cut back into each call's rows.
fn split(
    pool: &NodePool,
    outputs: Vec<NamedTensor>,
    counts: &[usize],
) -> Result<Vec<Vec<NamedTensor>>, RuntimeError> {
    let mut parts: Vec<Vec<NamedTensor>> = vec![Vec::with_capacity(outputs.len()); counts.len()];
    for (name, tensor) in outputs {
        let pieces = tensor.split(counts).map_err(|e| RuntimeError::Contract {
            plugin: pool.info().name.clone(),
            call: "infer",
            message: format!("its batched output `{name}` does not split by rows: {e}"),
        })?;
        for (part, piece) in parts.iter_mut().zip(pieces) {
            part.push((name.clone(), piece));
        }
    }
    Ok(parts)
}
