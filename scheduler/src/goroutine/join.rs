//! Waiting for a goroutine to finish: the completion flag every goroutine carries, with the
//! one waiter (its `JoinHandle`'s, `crate::sched::join_handle`) that may wait for it.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::wait::waiter::Waiter;

/// `JoinState::state`: the goroutine finished and its result is written.
const COMPLETE: u8 = 1;
/// `JoinState::state`: the joiner stored its waiter and is (about to be) waiting.
const WAITING: u8 = 2;

/// Completion of one goroutine, and the one waiter (its `JoinHandle`) that may wait for it.
///
/// Each side announces itself with one `fetch_or` on `state`; whichever comes second sees the
/// other's bit. The joiner writes the waiter before setting `WAITING`, so a completer that sees
/// `WAITING` may take it; a joiner that sees `COMPLETE` was not seen, and takes it back.
pub(crate) struct JoinState {
    /// `COMPLETE | WAITING`. AcqRel on both `fetch_or`s: the result (written before
    /// `COMPLETE`) reaches the joiner, and the waiter (written before `WAITING`) the completer.
    state: AtomicU8,
    /// Written by the joiner before it sets `WAITING`; taken by whichever side the protocol
    /// above gives it to.
    waiter: UnsafeCell<Option<Arc<Waiter>>>,
}

// SAFETY: `waiter` is accessed by one side at a time, as the `state` protocol assigns it.
unsafe impl Sync for JoinState {}

impl JoinState {
    pub(crate) fn new() -> JoinState {
        JoinState {
            state: AtomicU8::new(0),
            waiter: UnsafeCell::new(None),
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// Publishes completion and wakes the joiner, if one waits.
    pub(crate) fn complete(&self) {
        if self.state.fetch_or(COMPLETE, Ordering::AcqRel) & WAITING != 0 {
            // SAFETY: the joiner stored its waiter before setting WAITING and will not touch
            // it again (it saw no COMPLETE), so it is ours now.
            let waiter = unsafe { (*self.waiter.get()).take() };
            if let Some(waiter) = waiter {
                waiter.notify(0);
            }
        }
    }

    /// The joiner's slow path: stores `waiter` (made for the joiner) and announces it, so that
    /// [`complete`](Self::complete) will notify it. Returns false if the goroutine completed
    /// before the announcement: then nobody will notify the waiter, and the joiner must not
    /// wait on it.
    pub(crate) fn announce(&self, waiter: &Arc<Waiter>) -> bool {
        // SAFETY: only the joiner (the JoinHandle is unique) writes here, and before WAITING is
        // set nobody else reads it.
        unsafe { *self.waiter.get() = Some(waiter.clone()) };
        if self.state.fetch_or(WAITING, Ordering::AcqRel) & COMPLETE != 0 {
            // Completed before we announced ourselves: nobody will take the waiter.
            // SAFETY: the completer saw no WAITING, so it does not touch the slot.
            drop(unsafe { (*self.waiter.get()).take() });
            return false;
        }
        true
    }
}

/// The completion flag on plain threads (no runtime), so that Miri can run them: the joiner's
/// waiter has a thread target here.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ROUNDS, Unsynced};
    use crate::wait::BlockKind;
    use std::thread;

    /// What a joiner on a plain thread does: announce a waiter unless complete, then block.
    fn wait(state: &JoinState) {
        if !state.is_complete() {
            announce_and_wait(state);
        }
    }

    fn announce_and_wait(state: &JoinState) {
        let waiter = Waiter::for_thread(BlockKind::Join);
        if state.announce(&waiter) {
            waiter.wait_thread_until(None);
        }
    }

    /// Completes `state` on another thread after writing `result`, in the order `order`
    /// picks, and waits for it here; returns what the joiner read.
    fn complete_and_wait(order: Order) -> u32 {
        let state = JoinState::new();
        let result = Unsynced::new(0);
        thread::scope(|s| {
            let completer = s.spawn(|| {
                match order {
                    // Until the joiner has announced itself.
                    Order::WaiterFirst => {
                        while state.state.load(Ordering::Acquire) & WAITING == 0 {
                            thread::yield_now();
                        }
                    }
                    Order::Racing => {}
                }
                // SAFETY: the joiner reads it only after `wait` saw COMPLETE.
                unsafe { result.set(42) };
                state.complete();
            });
            wait(&state);
            assert!(state.is_complete());
            // SAFETY: written before COMPLETE, which `wait` acquired.
            let read = unsafe { result.get() };
            completer.join().unwrap();
            // SAFETY: both sides are done. Whoever ended up with the waiter dropped it.
            assert!(unsafe { (*state.waiter.get()).is_none() });
            read
        })
    }

    #[derive(Clone, Copy)]
    enum Order {
        WaiterFirst,
        Racing,
    }

    #[test]
    fn complete_before_wait_returns_at_once() {
        let state = JoinState::new();
        assert!(!state.is_complete());
        state.complete();
        assert!(state.is_complete());
        wait(&state);
        // SAFETY: no other thread; nothing was stored (the joiner saw COMPLETE first).
        assert!(unsafe { (*state.waiter.get()).is_none() });
    }

    #[test]
    fn complete_after_the_waiter_announced_wakes_it() {
        assert_eq!(complete_and_wait(Order::WaiterFirst), 42);
    }

    #[test]
    fn complete_racing_wait_loses_no_wakeup() {
        for _ in 0..ROUNDS {
            assert_eq!(complete_and_wait(Order::Racing), 42);
        }
    }

    #[test]
    fn completion_just_before_the_announcement_is_seen() {
        let state = JoinState::new();
        state.complete();
        // What `wait` does when the completion comes between its first look and its
        // announcement: it must see COMPLETE and take its waiter back instead of blocking.
        announce_and_wait(&state);
        // SAFETY: no other thread uses the state.
        assert!(unsafe { (*state.waiter.get()).is_none() });
    }
}
