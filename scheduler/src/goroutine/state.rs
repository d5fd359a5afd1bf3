//! A goroutine's scheduling state: one byte, and the only transitions it has.
//!
//! `ACTIVE` means the scheduler owns the goroutine: it is queued, or running. Only two
//! transitions leave it: its worker's CAS `ACTIVE -> PARKED` after the goroutine suspended to
//! park ([`TaskState::park`]), and the store of `DONE` when the closure returns
//! ([`TaskState::finish`]). A wake ([`TaskState::wake`]) moves `PARKED -> ACTIVE` (and its
//! caller then queues the goroutine), or sets `NOTIFIED` beside `ACTIVE`; a worker whose park
//! CAS then fails clears the flag with a swap and runs the goroutine again instead of parking
//! it.
//!
//! So running and yielding touch no atomic at all; a park is one CAS, a wake one CAS. Every
//! write to the state after spawn is a read-modify-write (AcqRel), except the final `DONE`: a
//! waker's writes reach the goroutine through that chain. A goroutine that does not see a
//! notification in its wait state yet tries to park, finds `NOTIFIED` (an RMW always reads the
//! latest value), acquires it, and looks again. A `NOTIFIED` left over from a wait that
//! completed without parking costs one extra turn through the run queue, no more.
//!
//! This file imports nothing of the crate but its atomics, so the loom models
//! (`tests/loom`) compile it unchanged under `cfg(loom)`.

#[cfg(loom)]
use crate::shim::{AtomicU8, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};

/// Queued or running: owned by the scheduler.
const ACTIVE: u8 = 1;
/// Set beside `ACTIVE` when a wake arrived meanwhile.
const NOTIFIED: u8 = 2;
/// Suspended and in no queue: only a wake makes it runnable again.
const PARKED: u8 = 4;
/// Finished; will never run again.
const DONE: u8 = 8;

/// The state word of one goroutine (see the module doc). Read and written by any thread.
pub(crate) struct TaskState(AtomicU8);

impl TaskState {
    /// A spawned goroutine's state: `ACTIVE` (queued).
    pub(crate) fn new() -> TaskState {
        TaskState(AtomicU8::new(ACTIVE))
    }

    /// The home worker, after the goroutine suspended to park: marks it `PARKED` and returns
    /// true, or, if a wake came first, clears `NOTIFIED` and returns false: the caller runs
    /// it again.
    #[inline]
    pub(crate) fn park(&self) -> bool {
        // AcqRel: Release publishes the worker's writes (the goroutine's, the put-back
        // coroutine, `home`) to the waker that moves it out of PARKED; on failure, Acquire
        // takes what the waker that set NOTIFIED wrote before.
        if self
            .0
            .compare_exchange(ACTIVE, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return true;
        }
        // Woken before it finished parking: clear the flag with an RMW, keeping the chain of
        // RMWs through which every waker's writes reach the goroutine.
        self.0.swap(ACTIVE, Ordering::AcqRel);
        false
    }

    /// Any thread, after it made the goroutine's wait condition true: true if the goroutine
    /// was parked, so that the caller now owns queuing it on its home worker; false if it is
    /// queued or running (marked, so that its next park returns at once) or finished.
    ///
    /// Whatever the caller wrote before this call is visible to the goroutine when it next
    /// checks after this wake.
    #[inline]
    pub(crate) fn wake(&self) -> bool {
        // Relaxed: only a guess for the CAS below, which reads the real value.
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = match current {
                PARKED => ACTIVE,
                DONE => return false,
                // Owned by the scheduler. The RMW is needed even when the flag is already
                // set: the worker's next RMW on the state reads from it and acquires the
                // caller's writes.
                other => other | NOTIFIED,
            };
            // AcqRel: Release publishes the caller's writes to the worker that runs the
            // goroutine; Acquire pairs with the worker's AcqRel CAS into PARKED, so `home`
            // and the put-back coroutine are visible here.
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return current == PARKED,
                Err(actual) => current = actual,
            }
        }
    }

    /// The goroutine's closure returned (or it was cancelled before it started, or a joiner
    /// ran it inline): it will never run again.
    pub(crate) fn finish(&self) {
        // Release: pairs with a waker's load or CAS that finds DONE and stops there.
        self.0.store(DONE, Ordering::Release);
    }

    /// Whether the goroutine is parked: a snapshot, for the goroutine dump.
    #[cfg(not(loom))]
    pub(crate) fn is_parked(&self) -> bool {
        // Relaxed: a snapshot that orders nothing; the state may change right after.
        self.0.load(Ordering::Relaxed) == PARKED
    }

    /// Whether the goroutine has finished: for the registry of live goroutines, a snapshot
    /// (a finished goroutine stays finished).
    #[cfg(not(loom))]
    pub(crate) fn is_finished(&self) -> bool {
        self.0.load(Ordering::Acquire) == DONE
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_wake_before_the_park_cancels_it_once() {
        let state = TaskState::new();
        assert!(!state.wake(), "running: marked, nothing to queue");
        assert!(!state.park(), "the park finds the mark and clears it");
        assert!(state.park(), "a second park parks");
        assert!(state.wake(), "a parked goroutine is the waker's to queue");
        assert!(!state.wake(), "then it is queued: only marked");
    }

    #[test]
    fn a_finished_goroutine_ignores_wakes() {
        let state = TaskState::new();
        state.finish();
        assert!(!state.wake());
        assert!(state.is_finished());
    }
}
