//! Rollout: a model's traffic moves from version `from` to version `to` in
//! steps, and the host decides by itself. At each step `to` takes its share
//! of requests (drawn per request, sticky by request id); its error rate
//! and p99 latency are compared with `from`'s on the same live traffic, and
//! for classifiers a share of its requests also run on `from` to compare
//! labels. A step that holds its bounds for `step_ms` (with at least
//! `min_requests` answers from `to`) moves on; after the last step `to` is
//! promoted and takes every request. A bound broken rolls back at once:
//! `from` takes every request again. Each move is logged and counted in
//! `/metrics`; the model's `/config` shows where the rollout stands.
//!
//! The state lives in memory: a restart or reload starts the rollout over,
//! so a finished one is made permanent in the config (drop the
//! `[rollouts]` table, set the version policy).

use super::builder::Builder;
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::Member;
use super::model::{Built, Composition, Kind, Served};
use super::refs::ModelRef;
use super::rollout_evidence::{Window, agreement, draw};
use crate::config::{ConfigError, ConfigFile, RolloutConfig, split_version};
use crate::tensor::NamedTensor;
use crate::tensor::Signature;
use futures::future::{BoxFuture, FutureExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often p99s are compared: sorting the samples on every answer would
/// put that work on the request path.
const P99_EVERY: Duration = Duration::from_millis(100);
/// Compared requests needed before agreement is judged.
const MIN_COMPARED: u64 = 10;

fn key_of(name: &str) -> String {
    format!("rollouts.{}", split_version(name).0)
}

/// The version `v` of the rolled-out model, pinned (a plain name would
/// mean the model's default, which is the rollout itself).
fn version_name(base: &str, v: u64) -> String {
    format!("{base}@{v}")
}

fn refs(name: &str, r: &RolloutConfig) -> Vec<ModelRef> {
    let base = split_version(name).0;
    let key = key_of(name);
    [("from", r.from), ("to", r.to)]
        .into_iter()
        .map(|(field, v)| ModelRef {
            key: format!("{key}.{field}"),
            name: version_name(base, v),
            span: 0..0,
        })
        .collect()
}

fn check(file: &ConfigFile, name: &str, r: &RolloutConfig, errors: &mut Vec<ConfigError>) {
    let base = split_version(name).0;
    let key = key_of(name);
    let at = file.table_span("rollouts", base);
    let mut bad = |field: &str, message: String, fix: &str| {
        errors.push(
            file.error(at.clone(), format!("{key}.{field}"), message)
                .fix(fix),
        );
    };
    if r.from == r.to {
        bad(
            "to",
            format!("a rollout from version {} to itself", r.from),
            "roll out another version",
        );
    }
    if r.steps.is_empty() {
        bad(
            "steps",
            "no steps".into(),
            "give the shares of traffic, e.g. [10, 50, 100]",
        );
    }
    if r.steps
        .iter()
        .any(|s| !(s.is_finite() && *s > 0.0 && *s <= 100.0))
        || r.steps.windows(2).any(|w| w[0] >= w[1])
    {
        bad(
            "steps",
            format!(
                "steps {:?} are not increasing percentages in (0, 100]",
                r.steps
            ),
            "list increasing shares of traffic, e.g. [10, 50, 100]",
        );
    }
    if r.step_ms == 0 || r.step_ms > 86_400_000 {
        bad(
            "step_ms",
            format!("{} ms is outside 1..=86400000", r.step_ms),
            "hold each step for a time within a day",
        );
    }
    if r.min_requests == 0 {
        bad(
            "min_requests",
            "0 requests judges on nothing".into(),
            "ask for at least 1",
        );
    }
    let share = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    if !share(r.max_error_rate_increase) {
        bad(
            "max_error_rate_increase",
            format!("{} is not a share from 0 to 1", r.max_error_rate_increase),
            "e.g. 0.01 for one point",
        );
    }
    if !(r.max_p99_ratio.is_finite() && r.max_p99_ratio >= 1.0) {
        bad(
            "max_p99_ratio",
            format!("{} is not a ratio of 1 or more", r.max_p99_ratio),
            "e.g. 2.0: twice the current version's p99",
        );
    }
    if r.min_agreement.is_some_and(|a| !share(a)) || !share(r.compare_share) {
        bad(
            "min_agreement",
            "`min_agreement` and `compare_share` are shares from 0 to 1".into(),
            "e.g. min_agreement = 0.95, compare_share = 0.1",
        );
    }
}

fn build(b: &Builder, name: &str, r: &RolloutConfig) -> Result<Built, ConfigError> {
    let key = key_of(name);
    let base = split_version(name).0;
    let member = |field: &str, v: u64| {
        let r = ModelRef {
            key: format!("{key}.{field}"),
            name: version_name(base, v),
            span: b.file.table_span("rollouts", base),
        };
        b.plain_member(&r, None)
    };
    let (from_member, to_member) = (member("from", r.from)?, member("to", r.to)?);
    let both = [&from_member, &to_member];
    let span = b.file.table_span("rollouts", split_version(name).0);
    let inputs = b.union_inputs(&both, span.clone(), &key)?;
    let outputs = b.same_outputs(&both, span, &key)?;
    let compares_labels = r.min_agreement.is_some()
        && outputs
            .iter()
            .any(|o| o.name == "label" && o.dtype == crate::tensor::Dtype::Int64);
    let rollout = Rollout {
        model: split_version(name).0.to_string(),
        from: (r.from, from_member),
        to: (r.to, to_member),
        bounds: Bounds {
            steps: r.steps.clone(),
            step: Duration::from_millis(r.step_ms),
            min_requests: r.min_requests,
            max_error_rate_increase: r.max_error_rate_increase,
            max_p99_ratio: r.max_p99_ratio,
            min_agreement: r.min_agreement.filter(|_| compares_labels),
            compare_share: r.compare_share,
        },
        progress: Mutex::new(Progress::new()),
    };
    rollout.announce(0);
    Ok((Signature { inputs, outputs }, Box::new(rollout)))
}

struct Bounds {
    steps: Vec<f64>,
    step: Duration,
    min_requests: u64,
    max_error_rate_increase: f64,
    max_p99_ratio: f64,
    min_agreement: Option<f64>,
    compare_share: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Step(usize),
    Promoted,
    RolledBack(String),
}

/// Where a running rollout stands: what the model's config reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RolloutStatus {
    /// The version rolled from.
    pub from: u64,
    /// The version rolled to.
    pub to: u64,
    /// `step I of N`, `promoted` or `rolled back: WHY`.
    pub state: String,
    /// The share of requests `to` answers now.
    pub share_to: f64,
    /// Requests `to` answered in this step.
    pub to_requests_this_step: u64,
    /// Of them, failed.
    pub to_errors_this_step: u64,
    /// Their p99, in microseconds.
    pub to_p99_us: Option<f64>,
    /// Requests `from` answered in this step.
    pub from_requests: u64,
    /// Of them, failed.
    pub from_errors: u64,
    /// Their p99, in microseconds.
    pub from_p99_us: Option<f64>,
    /// Rows both versions answered (shadowed), compared.
    pub compared_rows: u64,
    /// Of them, where they agreed.
    pub agreeing_rows: u64,
}

struct Progress {
    phase: Phase,
    step_started: Instant,
    /// `from` over the whole rollout: the baseline.
    from: Window,
    /// `to` in the current step.
    to: Window,
    /// When the p99s were last compared (`None`: not yet this step).
    p99_compared: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            phase: Phase::Step(0),
            step_started: Instant::now(),
            from: Window::default(),
            to: Window::default(),
            p99_compared: None,
        }
    }
}

struct Rollout {
    model: String,
    from: (u64, Member),
    to: (u64, Member),
    bounds: Bounds,
    progress: Mutex<Progress>,
}

impl Rollout {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Each update leaves the progress whole, so a poisoned lock is usable.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The share of requests `to` takes now.
    fn share(&self) -> f64 {
        match &self.lock().phase {
            Phase::Step(i) => self.bounds.steps.get(*i).copied().unwrap_or(100.0) / 100.0,
            Phase::Promoted => 1.0,
            Phase::RolledBack(_) => 0.0,
        }
    }

    fn announce(&self, step: usize) {
        let share = self.bounds.steps.get(step).copied().unwrap_or(100.0);
        tracing::info!(
            model = %self.model,
            "rollout: step {} of {}: {share}% of requests to version {} (from version {})",
            step + 1,
            self.bounds.steps.len(),
            self.to.0,
            self.from.0
        );
        crate::metrics::rollout(&self.model, share / 100.0, "step");
    }

    /// Records one answer and moves the rollout on when a step is done or
    /// a bound is broken.
    fn record(&self, to: bool, took: Duration, ok: bool, agreed: Option<(u64, u64)>) {
        let mut p = self.lock();
        let Phase::Step(step) = p.phase else {
            return;
        };
        if to {
            p.to.record(took, ok);
            if let Some((compared, same)) = agreed {
                p.to.compared += compared;
                p.to.agreed += same;
            }
        } else {
            p.from.record(took, ok);
        }
        if p.to.requests < self.bounds.min_requests {
            return;
        }
        let step_done = p.step_started.elapsed() >= self.bounds.step;
        let compare_p99 = step_done || p.p99_compared.is_none_or(|at| at.elapsed() >= P99_EVERY);
        if compare_p99 {
            p.p99_compared = Some(Instant::now());
        }
        if let Some(broken) = self.broken(&p, compare_p99) {
            tracing::warn!(model = %self.model, "rollout: version {} rolled back: {broken}", self.to.0);
            crate::metrics::rollout(&self.model, 0.0, "rolled_back");
            p.phase = Phase::RolledBack(broken);
            return;
        }
        if !step_done {
            return;
        }
        if step + 1 < self.bounds.steps.len() {
            p.phase = Phase::Step(step + 1);
            p.step_started = Instant::now();
            p.to = Window::default();
            p.p99_compared = None;
            drop(p);
            self.announce(step + 1);
        } else {
            tracing::info!(model = %self.model, "rollout: version {} promoted", self.to.0);
            crate::metrics::rollout(&self.model, 1.0, "promoted");
            p.phase = Phase::Promoted;
        }
    }

    /// The bound `to` breaks, if any; p99s only when `compare_p99`.
    fn broken(&self, p: &Progress, compare_p99: bool) -> Option<String> {
        let b = &self.bounds;
        let (to_rate, from_rate) = (p.to.error_rate(), p.from.error_rate());
        if to_rate - from_rate > b.max_error_rate_increase {
            return Some(format!(
                "error rate {:.1}% against {:.1}% for version {} (allowed: {:.1} points more)",
                to_rate * 100.0,
                from_rate * 100.0,
                self.from.0,
                b.max_error_rate_increase * 100.0
            ));
        }
        if compare_p99
            && let (Some(to_p99), Some(from_p99)) = (p.to.p99(), p.from.p99())
            && to_p99 > b.max_p99_ratio * from_p99
        {
            return Some(format!(
                "p99 {to_p99:.0} µs against {from_p99:.0} µs for version {} (allowed: {}×)",
                self.from.0, b.max_p99_ratio
            ));
        }
        if let Some(min) = b.min_agreement
            && p.to.compared >= MIN_COMPARED
        {
            let agreement = p.to.agreed as f64 / p.to.compared as f64;
            if agreement < min {
                return Some(format!(
                    "labels agree with version {} on {:.1}% of {} compared rows (needed: {:.1}%)",
                    self.from.0,
                    agreement * 100.0,
                    p.to.compared,
                    min * 100.0
                ));
            }
        }
        None
    }
}

impl Composition for Rollout {
    fn members(&self) -> Vec<Arc<Served>> {
        vec![self.from.1.model.clone(), self.to.1.model.clone()]
    }

    fn status(&self) -> Option<RolloutStatus> {
        let p = self.lock();
        let state = match &p.phase {
            Phase::Step(i) => format!("step {} of {}", i + 1, self.bounds.steps.len()),
            Phase::Promoted => "promoted".into(),
            Phase::RolledBack(why) => format!("rolled back: {why}"),
        };
        drop(p);
        let share = self.share();
        let p = self.lock();
        Some(RolloutStatus {
            from: self.from.0,
            to: self.to.0,
            state,
            share_to: share,
            to_requests_this_step: p.to.requests,
            to_errors_this_step: p.to.errors,
            to_p99_us: p.to.p99(),
            from_requests: p.from.requests,
            from_errors: p.from.errors,
            from_p99_us: p.from.p99(),
            compared_rows: p.to.compared,
            agreeing_rows: p.to.agreed,
        })
    }

    fn run<'a>(
        &'a self,
        _name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            let to = draw(context.id.as_deref(), 0) < self.share();
            let (version, member) = if to { &self.to } else { &self.from };
            context.chose_version(*version);
            let started = Instant::now();
            let compare = to
                && self.bounds.min_agreement.is_some()
                && draw(context.id.as_deref(), 1) < self.bounds.compare_share;
            if compare {
                let baseline = &self.from.1;
                let (answer, other) = futures::join!(
                    async {
                        let answer = member.call(context, member.bind(&inputs)?).await;
                        Ok::<_, ExecError>((answer, started.elapsed()))
                    },
                    async { baseline.call(context, baseline.bind(&inputs)?).await }
                );
                let (answer, took) = answer?;
                let agreed = match (&answer, &other) {
                    (Ok(a), Ok(b)) => agreement(a, b),
                    _ => None,
                };
                self.record(true, took, answer.is_ok(), agreed);
                return answer;
            }
            let answer = member.call(context, member.take_bound(inputs)?).await;
            self.record(to, started.elapsed(), answer.is_ok(), None);
            answer
        }
        .boxed()
    }
}

impl HierarchySection for RolloutConfig {
    fn kind(&self) -> Kind {
        Kind::Rollout
    }

    fn key(&self, name: &str) -> String {
        key_of(name)
    }

    fn max_batch_rows(&self) -> Option<u32> {
        None
    }

    fn refs(&self, name: &str) -> Vec<ModelRef> {
        refs(name, self)
    }

    fn check(&self, file: &ConfigFile, name: &str, errors: &mut Vec<ConfigError>) {
        check(file, name, self, errors)
    }

    fn build(&self, b: &Builder, name: &str) -> Result<Built, ConfigError> {
        build(b, name, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn rollout(min_agreement: Option<f64>) -> Rollout {
        let member = |name: &str| Member {
            model: Arc::new(super::super::model::with_signature(
                name,
                Signature {
                    inputs: vec![],
                    outputs: vec![],
                },
            )),
            inputs: vec![],
            timeout: None,
        };
        Rollout {
            model: "m".into(),
            from: (1, member("m")),
            to: (2, member("m@2")),
            bounds: Bounds {
                steps: vec![50.0, 100.0],
                step: Duration::from_secs(3600),
                min_requests: 10,
                max_error_rate_increase: 0.05,
                max_p99_ratio: 2.0,
                min_agreement,
                compare_share: 1.0,
            },
            progress: Mutex::new(Progress::new()),
        }
    }

    fn labels(values: &[i64]) -> Vec<NamedTensor> {
        let t = Tensor::from_i64(vec![values.len() as u32], values).unwrap();
        vec![("label".to_string(), t)]
    }

    #[test]
    fn a_slow_new_version_is_rolled_back_naming_both_p99s() {
        let r = rollout(None);
        for _ in 0..20 {
            r.record(false, Duration::from_micros(100), true, None);
        }
        for _ in 0..9 {
            r.record(true, Duration::from_micros(150), true, None);
        }
        assert_eq!(r.share(), 0.5, "within 2× and under min_requests");
        r.record(true, Duration::from_micros(500), true, None);
        assert_eq!(r.share(), 0.0);
        let state = r.status().unwrap().state;
        assert!(
            state.contains("p99 500 µs against 100 µs for version 1"),
            "{state}"
        );
    }

    #[test]
    fn disagreeing_labels_roll_back_and_agreeing_ones_do_not() {
        let same = agreement(&labels(&[1, 2, 3]), &labels(&[1, 2, 3]));
        assert_eq!(same, Some((3, 3)));
        assert_eq!(agreement(&labels(&[1, 2]), &labels(&[1, 2, 3])), None);
        let r = rollout(Some(0.9));
        for _ in 0..10 {
            r.record(true, Duration::from_micros(100), true, same);
        }
        assert_eq!(r.share(), 0.5);
        let half = agreement(&labels(&[1, 2, 3, 4]), &labels(&[1, 2, 0, 0]));
        for _ in 0..10 {
            r.record(true, Duration::from_micros(100), true, half);
        }
        assert_eq!(r.share(), 0.0);
        let state = r.status().unwrap().state;
        assert!(
            state.contains("labels agree with version 1 on 89.5% of 38"),
            "rolled back at once: {state}"
        );
    }
}
