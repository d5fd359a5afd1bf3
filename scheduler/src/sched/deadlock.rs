//! Deadlock detection for [`Runtime::block_on`](crate::Runtime::block_on): Go's "all
//! goroutines are asleep - deadlock!".
//!
//! # The rule
//!
//! `block_on`, called from a thread that is not a worker of any runtime, reports a deadlock
//! when all of the following hold at one instant:
//!
//! 1. at least one goroutine of the runtime is unfinished (the main goroutine is);
//! 2. every worker sleeps with no deadline: no goroutine is runnable or queued anywhere (the
//!    global queue, the deques, the inboxes), and no worker has a timer pending;
//! 3. the process-wide timer thread, if it was started, has no live timer pending and is not
//!    firing one, and the process-wide I/O thread, if it was started, has no goroutine
//!    waiting on it (a goroutine waiting on its own worker's poller keeps that worker from
//!    sleeping for good: the peer may write);
//! 4. no job of the runtime's blocking pool runs or waits in its queue;
//! 5. the process has no other thread than the runtime's workers (spare workers included,
//!    while they occupy a slot), its monitor, its blocking pool's (idle) threads, the thread
//!    in `block_on`, the timer thread and the I/O thread.
//!
//! Then nothing can ever run again: a goroutine is woken only by a goroutine, a timer or a
//! thread, and every one of them is asleep for good or absent; an idle pool thread only runs
//! jobs that a goroutine or a thread submits. Condition 5 is what stands in for "nobody
//! outside holds a handle": a handle held outside is held by some thread, and a thread that
//! does not exist cannot use it (only a running thread could start one). The monitor wakes a
//! worker, or starts a spare, only for goroutines queued behind a worker that runs one, and
//! with every worker asleep none runs; it holds no handle of any goroutine. It is
//! conservative: any other thread in the process (another runtime's workers, a thread that
//! only logs) turns detection off, so a program that only *might* be woken from outside is
//! never declared deadlocked. Goroutines blocked in something other than this crate's
//! primitives (a std mutex, a system call) keep their worker awake, so they never count as
//! asleep either.
//!
//! # How it is checked
//!
//! A worker about to sleep with no deadline ([`Parker::park`](super::parker::Parker::park)
//! with `None`) first marks itself, then looks at every worker's parker; if all sleep with no
//! deadline, it tells the `block_on` callers watching this runtime ([`Deadlock::stalled`]).
//! The marking and the looking are SeqCst on both sides, so of several workers going to sleep
//! together at least one sees all the others: a stall is never missed. The `block_on` thread
//! then checks the five conditions ([`is_deadlocked`]). Its look at the workers is not one
//! instant, so it is bracketed by a count of the wake-ups of workers that slept with no
//! deadline ([`Deadlock::count_wake`]): a worker found asleep stays asleep until someone wakes
//! it, and every such wake is counted, so if the count did not change over the look, all the
//! workers were asleep together at its end. The blocking pool's look is bracketed the same
//! way, by a version that every submitted job and every retiring thread changes; and a pool
//! thread that finishes the last running job, or retires, asks the watchers to check again
//! when every worker sleeps (`crate::sched::blocking`), since no worker would.
//!
//! Spare workers (`super::spare`) add two events. A spare that vacates its slot may have been
//! the last worker awake, so it reports a stall itself when every other worker sleeps for
//! good; the check joins the threads of spares that left before it counts threads. A spare
//! that starts turns "every worker asleep" false without waking anyone, so its start is
//! counted as a wake; it only takes goroutines already queued, so a verdict reached just
//! before it started was true.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use super::io;
use super::shared::Shared;
use crate::wait::timers;

/// The message `block_on` panics with.
pub(crate) const DEADLOCK_MESSAGE: &str = "scheduler: all goroutines are asleep - deadlock!";

/// One runtime's deadlock bookkeeping.
#[derive(Default)]
pub(crate) struct Deadlock {
    /// The `block_on` calls waiting on this runtime from plain threads.
    watchers: Mutex<Vec<Arc<Watch>>>,
    /// Wake-ups of workers that slept with no deadline (see the module doc).
    forever_wakes: AtomicU64,
}

impl Deadlock {
    /// Registers a `block_on` caller; it hears of every stall from now on.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch::default());
        self.watchers.lock().push(watch.clone());
        watch
    }

    pub(crate) fn unwatch(&self, watch: &Arc<Watch>) {
        self.watchers.lock().retain(|w| !Arc::ptr_eq(w, watch));
    }

    /// Every worker sleeps with no deadline: tell the watchers to check.
    pub(crate) fn stalled(&self) {
        for watch in self.watchers.lock().iter() {
            let mut state = watch.state.lock();
            state.stalls += 1;
            watch.changed.notify_all();
        }
    }

    /// Counts the wake-up of a worker that slept with no deadline. Called by the waker right
    /// after it changed the worker's parker state, before it does anything else.
    pub(crate) fn count_wake(&self) {
        // SeqCst: read by `is_deadlocked` before and after its look at the parkers; see the
        // module doc.
        self.forever_wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a `block_on` caller waits for: its main goroutine's end, or a stall.
#[derive(Default)]
pub(crate) struct Watch {
    state: Mutex<WatchState>,
    changed: Condvar,
}

#[derive(Default)]
struct WatchState {
    done: bool,
    stalls: u64,
}

impl Watch {
    /// Marks the main goroutine finished.
    pub(crate) fn finish(&self) {
        self.state.lock().done = true;
        self.changed.notify_all();
    }

    /// Waits until the main goroutine finished (true) or a stall newer than `seen` was
    /// reported (false, and `seen` is updated).
    pub(crate) fn wait(&self, seen: &mut u64) -> bool {
        let mut state = self.state.lock();
        while !state.done && state.stalls == *seen {
            self.changed.wait(&mut state);
        }
        *seen = state.stalls;
        state.done
    }
}

/// Marks a [`Watch`] finished when dropped: held by the main goroutine's closure, so the watch
/// ends however the goroutine does (returns, panics, is cancelled, or is dropped unstarted).
pub(crate) struct FinishOnDrop(pub(crate) Arc<Watch>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Whether every worker of `shared` sleeps with no deadline (a vacant spare slot has no
/// worker). Called by a worker that just marked itself so, and by a spare that just left.
pub(crate) fn all_asleep(shared: &Shared) -> bool {
    shared
        .remotes
        .iter()
        .all(|r| !r.is_occupied() || r.parker.is_parked_forever())
}

/// Checks the rule of the module doc. Called by the `block_on` thread.
pub(crate) fn is_deadlocked(shared: &Shared) -> bool {
    let Some(pool) = shared.blocking.quiet() else {
        return false;
    };
    // The workers (spares included, once those that left are joined), the monitor, the
    // caller, the timer and I/O threads if they were started, and the blocking pool's idle
    // threads.
    let spares = shared.spares.reap();
    let io_thread = io::global::started();
    let expected_threads = shared.procs
        + spares
        + 2
        + usize::from(timers::global_started())
        + usize::from(io_thread.is_some())
        + pool.threads;
    if thread_count() != Some(expected_threads)
        || !timers::global_idle()
        || io_thread.is_some_and(|poller| poller.has_waiters())
    {
        return false;
    }
    // SeqCst: see the module doc.
    let wakes_before = shared.deadlock.forever_wakes.load(Ordering::SeqCst);
    let asleep = all_asleep(shared) && !shared.has_queued_work() && shared.live() > 0;
    let wakes_after = shared.deadlock.forever_wakes.load(Ordering::SeqCst);
    asleep && wakes_before == wakes_after && shared.blocking.quiet() == Some(pool)
}

/// The number of threads of this process, if the system tells.
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|entries| entries.count())
}
