//! Model of one blocked party and its wake.
//!
//! Mirrors `sync/waiter.rs`: `Waiter::notify`, `Waiter::time_out`, `Waiter::try_time_out`,
//! `Waiter::unpark`, `Waiter::is_waiting`, `Waiter::token`, the `Target::Thread` arm of
//! `Waiter::wait_until`, and `WaiterQueue` (`push`, `withdraw`, `take_all`, `notify_all`). A goroutine's wait loop (`while is_waiting() { park_current() }`) is the body
//! the models give [`crate::goroutine::run`].

use std::collections::VecDeque;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread::{self, Thread};

use crate::goroutine::{self, Goroutine};

/// `state` while the wait is open.
const WAITING: usize = 0;
/// `state` after the deadline passed first.
const TIMED_OUT: usize = 1;
/// `state` after `notify(token)`: `NOTIFIED + token`.
const NOTIFIED: usize = 2;

pub(crate) enum Target {
    Goroutine(Arc<Goroutine>),
    Thread(Thread),
}

pub(crate) struct Waiter {
    state: AtomicUsize,
    target: Target,
}

impl Waiter {
    /// `Waiter::for_current` on a plain thread.
    pub(crate) fn for_current_thread() -> Arc<Waiter> {
        Waiter::new(Target::Thread(thread::current()))
    }

    pub(crate) fn new(target: Target) -> Arc<Waiter> {
        Arc::new(Waiter {
            state: AtomicUsize::new(WAITING),
            target,
        })
    }

    /// Ends the wait with `token` and wakes the waiter; false if it had already ended.
    pub(crate) fn notify(&self, token: usize) -> bool {
        let ended = self
            .state
            // AcqRel/Acquire as in waiter.rs: Release publishes what the notifier wrote
            // (pairs with the waiter's Acquire loads); Acquire takes what the time-out wrote.
            .compare_exchange(
                WAITING,
                NOTIFIED + token,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if ended {
            self.unpark();
        }
        ended
    }

    /// Ends the wait as timed out (a timer fired); false if it had already ended.
    pub(crate) fn time_out(&self) -> bool {
        let ended = self.try_time_out();
        if ended {
            self.unpark();
        }
        ended
    }

    pub(crate) fn try_time_out(&self) -> bool {
        self.state
            // AcqRel/Acquire as in waiter.rs: the same CAS out of WAITING as `notify`.
            .compare_exchange(WAITING, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn unpark(&self) {
        match &self.target {
            Target::Goroutine(task) => goroutine::unpark(task),
            Target::Thread(thread) => thread.unpark(),
        }
    }

    pub(crate) fn is_waiting(&self) -> bool {
        // Acquire as in waiter.rs: pairs with the Release of the CAS that ended the wait.
        self.state.load(Ordering::Acquire) == WAITING
    }

    pub(crate) fn token(&self) -> Option<usize> {
        // Acquire as in waiter.rs: as in `is_waiting`.
        self.state.load(Ordering::Acquire).checked_sub(NOTIFIED)
    }

    /// `wait_until` for a thread target: parks until notified or, with a `deadline`, until the
    /// deadline has passed, then times itself out (a notification may still win that race).
    pub(crate) fn wait_until_thread(&self, deadline: Option<&Deadline>) -> Option<usize> {
        debug_assert!(matches!(self.target, Target::Thread(_)));
        while self.is_waiting() {
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    if deadline.passed() {
                        self.try_time_out();
                        break;
                    }
                    // park_timeout: returns when unparked or when the deadline passes, which
                    // the clock thread reports with an unpark.
                    thread::park();
                }
            }
        }
        self.token()
    }
}

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

/// Waiters queued on a primitive, each with its token; kept under the primitive's lock.
#[derive(Default)]
pub(crate) struct WaiterQueue {
    entries: VecDeque<(Arc<Waiter>, usize)>,
}

impl WaiterQueue {
    pub(crate) fn push(&mut self, waiter: &Arc<Waiter>, token: usize) {
        self.entries.push_back((waiter.clone(), token));
    }

    pub(crate) fn withdraw(&mut self, waiter: &Arc<Waiter>) {
        if let Some(pos) = self
            .entries
            .iter()
            .position(|(w, _)| Arc::ptr_eq(w, waiter))
        {
            self.entries.remove(pos);
        }
    }

    pub(crate) fn take_all(&mut self) -> WaiterQueue {
        std::mem::take(self)
    }

    pub(crate) fn notify_all(self) {
        for (waiter, token) in self.entries {
            waiter.notify(token);
        }
    }
}
