//! `JoinState`: a goroutine's completion against its joiner's wait, lock-free. Whichever
//! announces itself second sees the other's bit: the completer takes the joiner's waiter and
//! notifies it, or the joiner takes its waiter back and returns.
//!
//! Mirrors `goroutine/join.rs`: `JoinState::complete`, `JoinState::wait` and `is_complete`;
//! and the parts of `goroutine/task.rs` around them: `Task::finish` writes the result before
//! `complete`, `Joinable::take_result` reads it after `wait`. The joiner is a plain thread
//! (`waiter.rs`'s model); a goroutine's wake is the `park_wake` model's.
//!
//! What must hold: the result, the waiter slot and the waiter itself are each touched by one
//! side at a time (loom's `UnsafeCell` reports any access not ordered by the handshake), and
//! the joiner is never left waiting (a deadlock).

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU8, Ordering};
use loom::thread;

use crate::block_kind::BlockKind;
use crate::check;
use crate::waiter::Waiter;

/// The goroutine finished and its result is written.
const COMPLETE: u8 = 1;
/// The joiner stored its waiter and is (about to be) waiting.
const WAITING: u8 = 2;

struct JoinState {
    state: AtomicU8,
    waiter: UnsafeCell<Option<std::sync::Arc<Waiter>>>,
}

impl JoinState {
    fn new() -> JoinState {
        JoinState {
            state: AtomicU8::new(0),
            waiter: UnsafeCell::new(None),
        }
    }

    fn is_complete(&self) -> bool {
        // Acquire as in join.rs: pairs with `complete`'s AcqRel, so the result is visible.
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    fn complete(&self) {
        // AcqRel as in join.rs: Release publishes the result; Acquire takes the waiter the
        // joiner wrote before setting WAITING.
        if self.state.fetch_or(COMPLETE, Ordering::AcqRel) & WAITING != 0 {
            // SAFETY: the joiner stored its waiter before WAITING and will not touch it again.
            let waiter = self.waiter.with_mut(|w| unsafe { (*w).take() });
            if let Some(waiter) = waiter {
                waiter.notify(0);
            }
        }
    }

    fn wait(&self) {
        if self.is_complete() {
            return;
        }
        let waiter = Waiter::for_thread(BlockKind::Other);
        // SAFETY: only the joiner writes here, and before WAITING nobody else reads it.
        self.waiter
            .with_mut(|w| unsafe { *w = Some(waiter.clone()) });
        // AcqRel as in join.rs: Release publishes the waiter to the completer; Acquire takes
        // the result if COMPLETE was set first.
        if self.state.fetch_or(WAITING, Ordering::AcqRel) & COMPLETE != 0 {
            // SAFETY: the completer saw no WAITING, so it does not touch the slot.
            drop(self.waiter.with_mut(|w| unsafe { (*w).take() }));
            return;
        }
        waiter.wait_thread_until(None);
        debug_assert!(self.is_complete());
    }
}

/// A goroutine's cell: its result and its `JoinState`.
struct Task {
    result: UnsafeCell<Option<u32>>,
    join: JoinState,
}

/// `join` on a plain thread against `finish` on the goroutine's worker: the joiner gets the
/// result whichever comes first, and touches nothing the completer still uses.
#[test]
fn join_gets_the_result_whoever_comes_first() {
    check(|| {
        let task = Arc::new(Task {
            result: UnsafeCell::new(None),
            join: JoinState::new(),
        });
        let goroutine = {
            let task = task.clone();
            thread::spawn(move || {
                // `Task::finish`: the result, then `complete`.
                // SAFETY: nobody reads it before `complete` publishes it.
                task.result.with_mut(|r| unsafe { *r = Some(42) });
                task.join.complete();
            })
        };
        task.join.wait();
        // `take_result`.
        // SAFETY: `wait` returned, so completion was seen with Acquire.
        let result = task.result.with_mut(|r| unsafe { (*r).take() });
        assert_eq!(result, Some(42));
        goroutine.join().unwrap();
    });
}
