//! The [`JoinHandle`] a spawner gets: waiting for a goroutine (parking a goroutine, blocking a
//! thread), running it inline if it has not started, and taking its result.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::thread;

use super::current;
use super::wait::WaitHere;
use super::wake::unpark;
use crate::goroutine::home::Owner;
use crate::goroutine::join::JoinState;
use crate::goroutine::task::{Joinable, TaskRef};
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

/// Blocks the current goroutine (or thread) until `state` is complete; a parked goroutine
/// counts as blocked in `kind`, at `site`.
fn wait_complete(state: &JoinState, kind: BlockKind, site: Site) {
    if state.is_complete() {
        return;
    }
    let waiter = Waiter::for_current(kind);
    if state.announce(&waiter) {
        waiter.wait(site);
        debug_assert!(state.is_complete());
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
    /// unwound, and its `join` returns `Err` with a [`Cancelled`](crate::Cancelled) payload.
    #[track_caller]
    pub fn join(self) -> thread::Result<T> {
        self.join_at(Location::caller())
    }

    /// [`join`](Self::join), waiting at `site`: for the crate's own joins on behalf of a
    /// caller (`block_on` inside a goroutine, a name lookup).
    pub(crate) fn join_at(self, site: Site) -> thread::Result<T> {
        self.run_inline_if_unstarted();
        // A blocking job's handle waits for the pool, a goroutine's for the goroutine.
        let kind = if self.task.goroutine().is_none() {
            BlockKind::Blocking
        } else {
            BlockKind::Join
        };
        wait_complete(self.task.completion_state(), kind, site);
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
        let Some(header) = self.task.goroutine() else {
            return; // a blocking job: the pool runs it
        };
        if header.home.owner() != Owner::Unclaimed
            || self.task.completion_state().is_complete()
            || header.is_cancelled()
            || !current::can_run_inline(header.shared)
        {
            return;
        }
        current::with_worker(|worker| {
            let worker = worker.expect("can_run_inline saw a worker");
            // Usually what we join is what we spawned last: take it out of the deque.
            // Otherwise it stays there, stale once claimed, and is dropped when it comes up.
            let task = Arc::as_ptr(&self.task) as *const ();
            let dequeued = worker.take_newest_if(task);
            if header.home.claim(Owner::Inline) {
                worker.count_inline(true);
                let joiner = worker
                    .current_header()
                    .expect("can_run_inline saw a goroutine");
                // SAFETY: the header of the goroutine running right here, the joiner, which
                // outlives this call on its stack (its coroutine owns a reference to it).
                let locals = unsafe { &(*joiner).locals };
                // The inline goroutine may park: we stay on this thread, with this worker. It
                // has goroutine-local values of its own, in the joiner's slot meanwhile, and
                // drops them as it finishes, before its result is published.
                // SAFETY: the joiner's own slot, on its thread, by the joiner; the inline
                // goroutine's values are destroyed once its closure has returned.
                unsafe {
                    locals.run_inline(|| {
                        self.task.run_inline(&|| {
                            locals.destroy();
                            worker.count_finished_now(header);
                        });
                    });
                }
                worker.count_inline(false);
                worker.drop_stale_newest();
            } else {
                // A worker started it (or a thief took it) meanwhile; it cannot have been in
                // our deque then.
                debug_assert!(!dequeued);
            }
        });
        current::continue_cancellation();
    }

    /// Cancels the goroutine, as tokio's `abort` does (Go has no such call): it unwinds with
    /// the crate's [`Cancelled`](crate::Cancelled) payload at its next suspension point (any
    /// wait of this crate, a `yield_now`, a `checkpoint` the monitor asked for), running its
    /// destructors, and [`join`](Self::join) returns `Err` with that payload, which the caller
    /// can tell from a panic's with `payload.is::<scheduler::Cancelled>()`. A goroutine
    /// blocked in a wait is woken for it; one that has not started is dropped unstarted; one
    /// that computes without ever suspending is cancelled when it next suspends, and not
    /// before; one that has finished keeps its result. A wait that was granted before the
    /// cancellation arrived (a lock handed over, a value received) completes, and the unwind
    /// comes at the next one: nothing granted is lost.
    ///
    /// A job of [`spawn_blocking`](crate::spawn_blocking) runs on a thread of its own and is
    /// not interrupted: `cancel` does nothing to it.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (_tx, rx) = scheduler::chan::bounded::<u32>(0);
    /// let handle = rt.spawn(move || rx.recv());
    /// handle.cancel();
    /// let payload = handle.join().unwrap_err();
    /// assert!(payload.is::<scheduler::Cancelled>());
    /// ```
    pub fn cancel(&self) {
        if let Some(task) = self.task.clone().runnable() {
            task.header().set_cancelled();
            // Parked: it wakes, sees the flag and unwinds. Queued or running: it sees the flag
            // at its next wait (or, not started, when a worker picks it up).
            unpark(&task);
        }
    }

    /// The completion flag: for the joins that wait in a `select` (`join_timeout`, `join_ctx`).
    pub(crate) fn completion(&self) -> &JoinState {
        self.task.completion_state()
    }

    /// Whether a join would wait as for a blocking job rather than a goroutine.
    pub(crate) fn block_kind(&self) -> BlockKind {
        if self.task.goroutine().is_none() {
            BlockKind::Blocking
        } else {
            BlockKind::Join
        }
    }

    /// The result of a goroutine whose completion the caller observed (with
    /// [`completion`](Self::completion)`.is_complete()`, or a `select` arm over it).
    pub(crate) fn take_finished(self) -> thread::Result<T> {
        assert!(
            self.task.completion_state().is_complete(),
            "scheduler: internal error: a result taken before completion"
        );
        // SAFETY: completion was observed with Acquire just now; `self` is consumed, so the
        // result is taken once.
        unsafe { self.task.take_result() }
    }

    /// The goroutine as the scheduler sees it (`None` for a blocking job): to cancel it later.
    pub(crate) fn task_ref(&self) -> Option<TaskRef> {
        self.task.clone().runnable()
    }

    /// Whether the goroutine has finished, so that [`join`](Self::join) will not block.
    pub fn is_finished(&self) -> bool {
        self.task.completion_state().is_complete()
    }

    /// The goroutine's id: unique within its runtime, counting from 1 (not in spawn order:
    /// each worker reserves ids in blocks). Blocking jobs take their ids from the same
    /// sequence.
    pub fn id(&self) -> u64 {
        self.task.id()
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
