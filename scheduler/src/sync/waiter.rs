//! One blocked party, goroutine or plain thread, and how to wake it.
//!
//! Every blocking primitive follows the same pattern: make an [`Waiter`] for the current
//! context, register it under the primitive's lock after checking the condition there, then
//! [`Waiter::wait`]. Whoever makes the condition true takes waiters out under the same lock and
//! calls [`Waiter::wake`]. The `notified` flag makes the wait immune to spurious wakeups of the
//! goroutine or thread (a stale wake meant for an earlier wait, `std::thread::park`'s own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, Thread};

use crate::goroutine::task::TaskRef;
use crate::sched::context;

enum Target {
    Goroutine(TaskRef),
    Thread(Thread),
}

/// A goroutine or thread blocked until [`wake`](Waiter::wake) is called once.
pub(crate) struct Waiter {
    /// Set with Release by `wake` after the waker's state changes; read with Acquire by
    /// `wait`, so those changes are visible when `wait` returns.
    notified: AtomicBool,
    target: Target,
}

impl Waiter {
    /// A waiter for the calling goroutine, or for the calling thread outside a goroutine.
    pub(crate) fn for_current() -> Arc<Waiter> {
        let target = match context::current_task() {
            Some(task) => Target::Goroutine(task),
            None => Target::Thread(thread::current()),
        };
        Arc::new(Waiter {
            notified: AtomicBool::new(false),
            target,
        })
    }

    /// Wakes the waiter. Idempotent; callable from any thread.
    pub(crate) fn wake(&self) {
        self.notified.store(true, Ordering::Release);
        match &self.target {
            Target::Goroutine(task) => crate::sched::unpark(task),
            Target::Thread(thread) => thread.unpark(),
        }
    }

    /// Blocks the current goroutine or thread (the one this waiter was made for) until woken.
    pub(crate) fn wait(&self) {
        while !self.notified.load(Ordering::Acquire) {
            match &self.target {
                Target::Goroutine(_) => context::park_current(),
                Target::Thread(_) => thread::park(),
            }
        }
    }
}
