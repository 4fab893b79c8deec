//! Stopping a native compute whose call is over. A compute runs on a
//! blocking thread the plugin's call waits for; when the call ends first
//! (its deadline passed, its request was dropped), nothing can interrupt
//! native code from outside, so the compute would run on, holding its
//! memory, until done. Backends that run op by op (tract) ask [`is_due`]
//! between ops and stop there.
//!
//! The token travels in a thread-local because the backends are reached
//! through `wasmtime-wasi-nn`'s `compute` trait, which takes no extra
//! argument; it is set only around one compute on one thread.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// When one compute must stop: at its call's deadline, or once abandoned.
#[derive(Debug, Clone)]
pub struct Cancel {
    deadline: Instant,
    /// Set only for a compute on another thread, which can be abandoned
    /// (inline computes, the many small ones, allocate nothing).
    abandoned: Option<Arc<AtomicBool>>,
}

impl Cancel {
    /// A compute that must end by `deadline`.
    pub fn new(deadline: Instant) -> Self {
        Cancel {
            deadline,
            abandoned: None,
        }
    }

    /// Whether the compute should stop now.
    pub fn is_due(&self) -> bool {
        self.abandoned
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
            || Instant::now() >= self.deadline
    }

    /// A guard that abandons the compute when dropped, unless disarmed: the
    /// waiting call's future holds it, so dropping that future (a request
    /// given up) stops the compute too.
    pub fn abandon_on_drop(&mut self) -> AbandonGuard {
        let flag = self
            .abandoned
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)));
        AbandonGuard(Some(flag.clone()))
    }

    /// Runs `work` on this thread with this token current.
    pub fn run<R>(&self, work: impl FnOnce() -> R) -> R {
        let previous = CURRENT.with(|current| current.replace(Some(self.clone())));
        let result = work();
        CURRENT.with(|current| *current.borrow_mut() = previous);
        result
    }
}

/// Abandons its compute when dropped, unless disarmed.
#[derive(Debug)]
pub struct AbandonGuard(Option<Arc<AtomicBool>>);

impl AbandonGuard {
    /// The compute ended normally: dropping the guard changes nothing.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Cancel>> = const { RefCell::new(None) };
}

/// Whether the compute running on this thread should stop (false outside
/// [`Cancel::run`]).
pub fn is_due() -> bool {
    CURRENT.with(|current| current.borrow().as_ref().is_some_and(Cancel::is_due))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_at_the_deadline_or_once_abandoned_and_only_inside_run() {
        let mut later = Cancel::new(Instant::now() + Duration::from_secs(60));
        assert!(!later.run(is_due));
        let guard = later.abandon_on_drop();
        drop(guard);
        assert!(later.run(is_due));
        assert!(!is_due(), "outside run, nothing is due");
        let mut disarmed = Cancel::new(Instant::now() + Duration::from_secs(60));
        disarmed.abandon_on_drop().disarm();
        assert!(!disarmed.run(is_due));
        let past = Cancel::new(Instant::now());
        assert!(past.run(is_due));
    }
}
