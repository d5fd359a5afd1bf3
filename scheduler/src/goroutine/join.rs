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
    /// Written by the joiner before it sets `WAITING`, with the token to notify it with (a
    /// `select` arm's index; 0 for a plain join); taken by whichever side the protocol above
    /// gives it to.
    waiter: UnsafeCell<Option<(Arc<Waiter>, usize)>>,
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
            if let Some((waiter, token)) = waiter {
                waiter.notify(token);
            }
        }
    }

    /// The joiner's slow path: stores `waiter` (made for the joiner) and announces it, so that
    /// [`complete`](Self::complete) will notify it. Returns false if the goroutine completed
    /// before the announcement: then nobody will notify the waiter, and the joiner must not
    /// wait on it.
    pub(crate) fn announce(&self, waiter: &Arc<Waiter>) -> bool {
        self.announce_with(waiter, 0)
    }

    /// [`announce`](Self::announce), to be notified with `token`.
    pub(crate) fn announce_with(&self, waiter: &Arc<Waiter>, token: usize) -> bool {
        // SAFETY: only the joiner (the JoinHandle is unique) writes here, and before WAITING is
        // set nobody else reads it (a withdrawn announcement cleared WAITING first).
        unsafe { *self.waiter.get() = Some((waiter.clone(), token)) };
        if self.state.fetch_or(WAITING, Ordering::AcqRel) & COMPLETE != 0 {
            // Completed before we announced ourselves: nobody will take the waiter.
            // SAFETY: the completer saw no WAITING, so it does not touch the slot.
            drop(unsafe { (*self.waiter.get()).take() });
            return false;
        }
        true
    }
}

impl JoinState {
    /// The joiner gives up waiting (its time ran out, its context ended): takes its
    /// announcement back, so that it may announce again later. Returns false if the goroutine
    /// completed meanwhile: the completer has the waiter then (it will find the wait over),
    /// and the result is there to take.
    pub(crate) fn withdraw(&self) -> bool {
        // AcqRel: on success, nobody will take the slot, and the joiner's next write to it is
        // ordered after its own earlier one; on failure, Acquire takes the result's write.
        match self
            .state
            .compare_exchange(WAITING, 0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: WAITING is cleared and COMPLETE was not set: the completer will not
                // look at the slot, and only the joiner writes it.
                drop(unsafe { (*self.waiter.get()).take() });
                true
            }
            Err(_) => false,
        }
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
