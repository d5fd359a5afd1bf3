//! How "whoever calls" waits on a [`Waiter`]: a goroutine parks, a plain thread blocks.
//!
//! The kernel (`crate::wait`) holds the protocol that ends a wait exactly once; this is the
//! goroutine's side of it, which needs the scheduler: making a waiter whose target is the
//! running goroutine, parking it until the wait ends, arming its time-out on the worker's
//! timers, and unwinding it if it is cancelled. The primitives call these as methods of
//! [`Waiter`], through [`WaitHere`].

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::current;
use super::timers::arm_timeout;
use crate::wait::waiter::{EndOnUnwind, Target, Waiter};
use crate::wait::{BlockKind, Site};

/// Waiting on a [`Waiter`] from wherever the caller runs.
pub(crate) trait WaitHere {
    /// A waiter for the calling goroutine, or for the calling thread outside a goroutine. A
    /// goroutine parked on it counts as blocked on `kind` in the runtime's metrics.
    ///
    /// A goroutine that is unwinding a panic waits as a thread: it blocks its worker rather
    /// than suspend mid-unwind (see [`current::can_suspend`]).
    fn for_current(kind: BlockKind) -> Arc<Waiter>;

    /// Blocks the current goroutine or thread (the one this waiter was made for) until
    /// notified (returning the token) or until `deadline` (returning `None`). A parked
    /// goroutine shows in the goroutine dump as waiting at `site`.
    ///
    /// A deadline in the past still checks for a notification that already arrived; a
    /// goroutine whose wait times out that way, without parking, yields once all the same, so
    /// that a loop of waits with tiny deadlines (a `sleep` of a nanosecond) lets the others
    /// run, as Go's `Sleep(d > 0)` always parks.
    ///
    /// # Cancellation
    ///
    /// A goroutine cancelled by a forced shutdown (before it waits, or while it is parked)
    /// ends the wait as timed out and unwinds with [`Cancelled`](crate::Cancelled), so that
    /// notifiers skip it. If a notification ended the wait first, its grant (a lock handed
    /// over, a permit, a value) is the goroutine's: the wait returns the token normally, and
    /// the goroutine unwinds at its next wait instead. Nothing granted is lost.
    fn wait_until(self: &Arc<Self>, deadline: Option<Instant>, site: Site) -> Option<usize>;

    /// [`wait_until`](Self::wait_until) without a deadline: returns the token.
    fn wait(self: &Arc<Self>, site: Site) -> usize {
        self.wait_until(None, site)
            .expect("a wait without deadline cannot time out")
    }
}

impl WaitHere for Waiter {
    fn for_current(kind: BlockKind) -> Arc<Waiter> {
        match current::current_task() {
            Some(task) if !thread::panicking() => Waiter::new(Target::Goroutine(task), kind),
            _ => Waiter::for_thread(kind),
        }
    }

    fn wait_until(self: &Arc<Self>, deadline: Option<Instant>, site: Site) -> Option<usize> {
        if self.is_goroutine() {
            park_until(self, deadline, site);
            self.token()
        } else {
            self.wait_thread_until(deadline)
        }
    }
}

/// [`WaitHere::wait_until`] for the running goroutine, the waiter's target.
fn park_until(waiter: &Arc<Waiter>, deadline: Option<Instant>, site: Site) {
    // SAFETY: we run inside the goroutine the waiter was made for (`for_current`), whose
    // header lives as long as it runs.
    let header = unsafe { &*current::running_header() };
    let mut passed = false;
    match deadline {
        Some(deadline) if deadline <= Instant::now() => passed = waiter.try_time_out(),
        // If notified first, the armed timer is dead once the wait ends (it holds the waiter
        // weakly, so the wait's end frees what the waiter holds at once).
        Some(deadline) => arm_timeout(deadline, waiter),
        None => {}
    }
    // If the goroutine's stack is torn down while it is parked here (a worker dropped with its
    // suspended coroutines), the guard ends the wait, so that notifiers skip it and its timer
    // is dead.
    let guard = EndOnUnwind(waiter);
    while waiter.is_waiting() {
        if header.is_cancelled() {
            if waiter.try_time_out() {
                current::unwind_cancelled();
            }
            // Notified meanwhile: the grant is ours; unwind at the next wait.
            break;
        }
        current::park_current(waiter.kind(), site);
    }
    std::mem::forget(guard);
    if passed {
        current::yield_current();
    }
}
