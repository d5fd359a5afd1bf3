//! Time for the models: loom has no clock, so a clock thread decides when a deadline passes
//! (at any point of any interleaving) and wakes the waiting thread, as `park_timeout`
//! returning would. A thread's timed wait on the real `Waiter` is then its own operations
//! (`is_waiting`, `try_time_out`, `token`) around `park`, as `Waiter::wait_thread_until` does
//! with a real clock.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread::{self, Thread};

use crate::waiter::Waiter;

/// Time, for a thread's timed wait: loom has no clock, so a clock thread decides when the
/// deadline passes (at any point of any interleaving) and then wakes the waiting thread, as
/// `park_timeout` returning would.
pub(crate) struct Deadline {
    /// Not part of the scheduler: SeqCst keeps the clock out of the orderings under test.
    passed: AtomicBool,
}

impl Deadline {
    pub(crate) fn new() -> Arc<Deadline> {
        Arc::new(Deadline {
            passed: AtomicBool::new(false),
        })
    }

    pub(crate) fn passed(&self) -> bool {
        self.passed.load(Ordering::SeqCst)
    }

    /// The clock thread's body: the deadline passes, and `sleeper`'s `park_timeout` returns.
    pub(crate) fn pass(&self, sleeper: &Thread) {
        self.passed.store(true, Ordering::SeqCst);
        sleeper.unpark();
    }
}

/// `Waiter::wait_thread_until` with `deadline` for its clock: parks until notified or until
/// the deadline has passed, then times itself out (a notification may still win that race).
pub(crate) fn wait_thread_until(waiter: &Waiter, deadline: &Deadline) -> Option<usize> {
    while waiter.is_waiting() {
        if deadline.passed() {
            waiter.try_time_out();
            break;
        }
        // park_timeout: returns when unparked or when the deadline passes, which the clock
        // thread reports with an unpark.
        thread::park();
    }
    waiter.token()
}
