//! Waiting for a goroutine to finish: the completion flag every goroutine carries and the
//! [`JoinHandle`] its spawner gets.

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;

use super::task::{BLOCKING, INLINE, Joinable, NO_HOME};
use crate::sched::context;
use crate::sched::wait::WaitHere;
use crate::wait::BlockKind;
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

    /// Blocks the current goroutine (or thread) until [`complete`](Self::complete); a parked
    /// goroutine counts as blocked in `kind`.
    fn wait(&self, kind: BlockKind) {
        if !self.is_complete() {
            self.announce_and_wait(kind);
        }
    }

    /// The slow path of [`wait`](Self::wait): stores a waiter, announces it, and blocks
    /// unless the goroutine completed meanwhile.
    fn announce_and_wait(&self, kind: BlockKind) {
        let waiter = Waiter::for_current(kind);
        // SAFETY: only the joiner (us: the JoinHandle is unique) writes here, and before
        // WAITING is set nobody else reads it.
        unsafe { *self.waiter.get() = Some(waiter.clone()) };
        if self.state.fetch_or(WAITING, Ordering::AcqRel) & COMPLETE != 0 {
            // Completed before we announced ourselves: nobody will take the waiter.
            // SAFETY: the completer saw no WAITING, so it does not touch the slot.
            drop(unsafe { (*self.waiter.get()).take() });
            return;
        }
        waiter.wait();
        debug_assert!(self.is_complete());
    }
}

/// An owned permission to wait for a goroutine and take its result, like
/// [`std::thread::JoinHandle`]. A job of [`spawn_blocking`](crate::spawn_blocking) is joined
/// the same way: "the goroutine" below stands for it too.
///
/// Dropping the handle detaches the goroutine: it keeps running, and its result is dropped
/// when it finishes. The runtime still waits for it at shutdown.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let sum = rt.block_on(|| {
///     let handles: Vec<_> = (1..=10).map(|i| scheduler::spawn(move || i * i)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
/// });
/// assert_eq!(sum, 385);
/// ```
pub struct JoinHandle<T> {
    task: Arc<dyn Joinable<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Arc<dyn Joinable<T>>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    /// Waits for the goroutine to finish and returns its result: `Ok` with the closure's value,
    /// or `Err` with the panic payload if it panicked.
    ///
    /// Inside a goroutine this parks only the calling goroutine (its worker runs others); on a
    /// plain thread it blocks the thread. Everything the goroutine did happens-before `join`
    /// returns.
    ///
    /// A goroutine that was still blocked when
    /// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) ran out of time is
    /// unwound, and its `join` returns `Err` with a [`Cancelled`](crate::wait::Cancelled) payload.
    pub fn join(self) -> thread::Result<T> {
        self.run_inline_if_unstarted();
        // A blocking job's handle waits for the pool, a goroutine's for the goroutine.
        let kind = if self.task.header().home.load(Ordering::Relaxed) == BLOCKING {
            BlockKind::Blocking
        } else {
            BlockKind::Join
        };
        self.task.join_state().wait(kind);
        // SAFETY: `wait` returned, so completion was observed with Acquire; `self` is consumed,
        // so the result is taken once.
        unsafe { self.task.take_result() }
    }

    /// A goroutine that has not started yet, joined by a goroutine of its runtime that has
    /// stack to spare, runs right here on the joiner's stack, as `rayon::join` does: no stack
    /// to take, no park, no wake. It is claimed first, so no worker starts it too; its queue
    /// entry becomes stale. It runs on the joiner's thread, as it could have anyway (a
    /// goroutine that has not started belongs to no thread), and anything it waits on parks
    /// the joiner, which was about to wait for it in any case.
    fn run_inline_if_unstarted(&self) {
        let header = self.task.header();
        if header.home.load(Ordering::Relaxed) != NO_HOME
            || self.task.join_state().is_complete()
            || !context::can_run_inline(header.shared)
        {
            return;
        }
        let worker = context::current_worker().expect("can_run_inline saw a worker");
        // Usually what we join is what we spawned last: take it out of the deque. Otherwise
        // it stays there, stale once claimed, and is dropped when it comes up.
        let task = Arc::as_ptr(&self.task) as *const ();
        let dequeued = worker.take_newest_if(task);
        if header.claim(INLINE) {
            worker.count_inline(true);
            self.task.run_inline();
            worker.count_inline(false);
            worker.drop_stale_newest();
            context::continue_cancellation();
        } else {
            // A worker started it (or a thief took it) meanwhile; it cannot have been in our
            // deque then.
            debug_assert!(!dequeued);
        }
    }

    /// Whether the goroutine has finished, so that [`join`](Self::join) will not block.
    pub fn is_finished(&self) -> bool {
        self.task.join_state().is_complete()
    }

    /// The goroutine's id: unique within its runtime, counting from 1 (not in spawn order:
    /// each worker reserves ids in blocks). Blocking jobs take their ids from the same
    /// sequence.
    pub fn id(&self) -> u64 {
        self.task.header().id
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The completion flag on plain threads (no runtime), so that Miri can run them: the joiner's
/// waiter has a thread target here.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ROUNDS, Unsynced};
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
            state.wait(BlockKind::Join);
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
        state.wait(BlockKind::Join);
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
        state.announce_and_wait(BlockKind::Join);
        // SAFETY: no other thread uses the state.
        assert!(unsafe { (*state.waiter.get()).is_none() });
    }
}
