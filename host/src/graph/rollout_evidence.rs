//! What a rollout judges by: each version's answers (counts and recent
//! latencies), which requests go to the new version, and whether two
//! versions' labels agree.

use crate::tensor::NamedTensor;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latencies kept per side: the most recent, enough for a p99.
const LATENCY_SAMPLES: usize = 2048;
/// One version's answers: counts and recent latencies.
#[derive(Default)]
pub(super) struct Window {
    pub(super) requests: u64,
    pub(super) errors: u64,
    latencies: Vec<f64>,
    pub(super) compared: u64,
    pub(super) agreed: u64,
}

impl Window {
    pub(super) fn record(&mut self, took: Duration, ok: bool) {
        self.requests += 1;
        if !ok {
            self.errors += 1;
            return;
        }
        let micros = took.as_secs_f64() * 1e6;
        if self.latencies.len() < LATENCY_SAMPLES {
            self.latencies.push(micros);
        } else {
            let at = (self.requests as usize) % LATENCY_SAMPLES;
            self.latencies[at] = micros;
        }
    }

    pub(super) fn error_rate(&self) -> f64 {
        self.errors as f64 / self.requests.max(1) as f64
    }

    pub(super) fn p99(&self) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let at = ((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1);
        sorted.get(at.min(sorted.len() - 1)).copied()
    }
}

/// A number in [0, 1) for a request: from its id (sticky), else fresh.
pub(super) fn draw(id: Option<&str>, salt: u64) -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let hash = match id {
        Some(id) => {
            let mut hasher = std::hash::DefaultHasher::new();
            (id, salt).hash(&mut hasher);
            hasher.finish()
        }
        None => std::hash::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed)),
    };
    hash as f64 / (u64::MAX as f64 + 1.0)
}

/// Rows whose `label` is the same in both answers, of the rows compared.
pub(super) fn agreement(a: &[NamedTensor], b: &[NamedTensor]) -> Option<(u64, u64)> {
    let label = |outputs: &[NamedTensor]| {
        outputs
            .iter()
            .find(|(n, _)| n == "label")
            .and_then(|(_, t)| t.i64s().ok())
    };
    let (a, b) = (label(a)?, label(b)?);
    if a.len() != b.len() {
        return None;
    }
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    Some((a.len() as u64, same as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_keep_the_most_recent_and_their_p99() {
        let mut w = Window::default();
        assert_eq!(w.p99(), None);
        for i in 1..=100u64 {
            w.record(Duration::from_micros(i), true);
        }
        w.record(Duration::from_micros(1), false);
        assert_eq!((w.requests, w.errors, w.p99()), (101, 1, Some(99.0)));
        for _ in 0..LATENCY_SAMPLES * 2 {
            w.record(Duration::from_micros(7), true);
        }
        assert_eq!((w.latencies.len(), w.p99()), (LATENCY_SAMPLES, Some(7.0)));
    }
}
