//! What a spawn hands over and gets back: the closure, then its result, and the completion
//! flag a joiner waits on. One type for goroutines (`super::task::Task`) and blocking jobs
//! (`crate::sched::blocking`), which differ only in who runs the closure.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::thread;

use super::join::JoinState;
use crate::wait::Cancelled;

/// What a goroutine's (or a blocking job's) typed cell holds over its life.
pub(crate) enum Stage<F, T> {
    /// Spawned, not started.
    Pending(F),
    /// Started, or cancelled before it started; the closure is gone.
    Taken,
    /// Returned or panicked; waiting for `join`.
    Finished(thread::Result<T>),
}

impl<F, T> Stage<F, T> {
    /// Takes the closure out, leaving `Taken`; `None` if it was taken already.
    pub(crate) fn take_closure(&mut self) -> Option<F> {
        match std::mem::replace(self, Stage::Taken) {
            Stage::Pending(f) => Some(f),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Takes the result out, leaving `Taken`.
    ///
    /// # Panics
    /// If there is no result (a runtime bug: it is taken once, after completion).
    pub(crate) fn take_result(&mut self) -> thread::Result<T> {
        match std::mem::replace(self, Stage::Taken) {
            Stage::Finished(result) => result,
            _ => unreachable!("scheduler: internal error: result taken twice"),
        }
    }
}

/// A closure `F`, run once, and its result `T`, taken once by the unique joiner.
pub(crate) struct Completion<F, T> {
    /// `Pending` until the one thread that dequeued the work takes the closure (a queue hands
    /// exclusive ownership over); `Finished` is written before `join.complete()` and read only
    /// by the unique `JoinHandle` after it saw the completion (Release/Acquire in
    /// `JoinState`).
    stage: UnsafeCell<Stage<F, T>>,
    join: JoinState,
}

// SAFETY: `stage` is accessed by one thread at a time as its doc describes: the closure by the
// thread that dequeued the work (F: Send moves it there), the result by the JoinHandle after
// the Release/Acquire hand-off (T: Send). The JoinState is Sync.
unsafe impl<F: Send, T: Send> Sync for Completion<F, T> {}

impl<F, T> Completion<F, T>
where
    F: FnOnce() -> T,
{
    pub(crate) fn new(f: F) -> Completion<F, T> {
        Completion {
            stage: UnsafeCell::new(Stage::Pending(f)),
            join: JoinState::new(),
        }
    }

    /// Runs the closure and publishes its result (or its panic's payload: the panic hook has
    /// printed the message already, so work nobody joins still reports its panic).
    /// `finished` runs between the result's write and its publication to the joiner.
    ///
    /// # Safety
    /// Called once, by the thread that owns the work (it dequeued or claimed it).
    pub(crate) unsafe fn run(&self, finished: &dyn Fn()) {
        // SAFETY: the owning thread (caller's contract), before completion.
        let f =
            unsafe { self.take_closure() }.expect("scheduler: internal error: a closure run twice");
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // SAFETY: as above.
        unsafe { self.finish(result, finished) };
    }

    /// Drops the closure unstarted (containing a panic of its captures' destructors) and
    /// publishes [`Cancelled`] as the result; `finished` as for [`run`](Self::run).
    ///
    /// # Safety
    /// As for [`run`](Self::run).
    pub(crate) unsafe fn cancel(&self, finished: &dyn Fn()) {
        // SAFETY: the owning thread (caller's contract), before completion.
        drop_contained(unsafe { self.take_closure() });
        // SAFETY: as above.
        unsafe { self.finish(Err(Box::new(Cancelled)), finished) };
    }

    /// # Safety
    /// The owning thread, before completion.
    unsafe fn take_closure(&self) -> Option<F> {
        // SAFETY: nobody else touches `stage` before completion (caller's contract).
        unsafe { &mut *self.stage.get() }.take_closure()
    }

    /// # Safety
    /// The owning thread, which took the closure, once.
    unsafe fn finish(&self, result: thread::Result<T>, finished: &dyn Fn()) {
        // SAFETY: nobody else touches `stage` until `complete` publishes it (caller's
        // contract).
        unsafe { *self.stage.get() = Stage::Finished(result) };
        // Counted out before the joiner is released.
        finished();
        self.join.complete();
    }
}

impl<F, T> Completion<F, T> {
    /// The completion flag the joiner waits on.
    pub(crate) fn join_state(&self) -> &JoinState {
        &self.join
    }

    /// Takes the result.
    ///
    /// # Safety
    /// Only after `join_state().is_complete()` returned true, and at most once.
    pub(crate) unsafe fn take_result(&self) -> thread::Result<T> {
        // SAFETY: completion was observed with Acquire (caller's contract), so `finish`'s
        // write is visible and no other thread touches `stage` any more.
        unsafe { &mut *self.stage.get() }.take_result()
    }
}

impl<F, T> Drop for Completion<F, T> {
    /// The last reference may go anywhere: on a worker's or pool thread's stack after
    /// detached work finished, in a timer entry, in a queue. What the cell still holds (an
    /// unstarted closure, an unjoined result or panic payload) is user code's to drop, and a
    /// panic there must not unwind through the runtime.
    fn drop(&mut self) {
        let stage = std::mem::replace(self.stage.get_mut(), Stage::Taken);
        if !matches!(stage, Stage::Taken) {
            drop_contained(stage);
        }
    }
}

/// Drops `value`, a user value the runtime holds (a closure, a result, a panic payload),
/// containing a panic of its destructor: the panic hook has printed it already, as it does for
/// a goroutine nobody joins, and the runtime goes on. A payload whose own destructor panics is
/// contained the same way, a few levels deep, then leaked.
///
/// Runtime code that may drop such a value on a worker's or a pool thread's own stack drops
/// it through here: a panic unwinding out of a worker loop would tear down the goroutines
/// suspended on that worker.
pub(crate) fn drop_contained<V>(value: V) {
    let Err(mut payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) else {
        return;
    };
    for _ in 0..4 {
        match panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(next) => payload = next,
        }
    }
    std::mem::forget(payload);
}
