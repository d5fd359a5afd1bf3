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
//! 5. every other thread of the process is one that cannot wake a goroutine of its own accord
//!    (`crate::wait::census`): a thread of this runtime or a process-wide service thread; a
//!    plain thread waiting in one of the crate's waits with no deadline (the `block_on` caller
//!    among them); a *bystander*, which never used the crate and was created by a thread that
//!    had not either, so holds none of its values; or a thread of another runtime that sleeps
//!    for good itself (conditions 2 and 4 for that runtime).
//!
//! Then nothing can ever run again: a goroutine is woken only by a goroutine, a timer, a
//! poller or a thread holding one of the crate's values, and every one of them is asleep for
//! good or absent; an idle pool thread only runs jobs that a goroutine or a thread submits.
//! The monitor wakes a worker, or starts a spare, only for goroutines queued behind a worker
//! that runs one, and with every worker asleep none runs; it holds no handle of any
//! goroutine. Any thread that may hold a value of the crate and use it (one that used the
//! crate, or was created by one that had: a thread started by a goroutine, or by `main` after
//! it made a channel) keeps the runtime from being declared deadlocked while it exists and is
//! not waiting in the crate, so a program that *might* be woken from outside is never
//! reported. Goroutines blocked in something other than this crate's primitives (a std mutex,
//! a system call) keep their worker awake, so they never count as asleep either.
//!
//! This is what makes detection work under `cargo test`: the harness's own threads never use
//! the crate, the threads of other tests are bystanders, or wait in their own `block_on`, or
//! belong to runtimes that are busy (then the verdict waits for them to end).
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
//! way, by a version that every submitted job and every retiring thread changes; the census of
//! threads by the census's epoch, which every wake of a waiting plain thread and every first
//! use of the crate by a thread changes; and a pool
//! thread that finishes the last running job, or retires, asks the watchers to check again
//! when every worker sleeps (`crate::sched::blocking`), since no worker would.
//!
//! When conditions 1 to 4 hold but some thread outside might still wake the runtime, no
//! worker will tell when that thread ends or starts to wait: the `block_on` caller looks
//! again every [`RECHECK`] while the runtime stays asleep ([`Verdict::AsleepButWatched`]).
//!
//! Spare workers (`super::spare`) add two events. A spare that vacates its slot may have been
//! the last worker awake, so it reports a stall itself when every other worker sleeps for
//! good; the check joins the threads of spares that left before it looks at threads. A spare
//! that starts turns "every worker asleep" false without waking anyone, so its start is
//! counted as a wake; it only takes goroutines already queued, so a verdict reached just
//! before it started was true.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::io;
use super::shared::Shared;
use crate::wait::census::{self, ThreadClass};
use crate::wait::timers;

/// How often a `block_on` caller looks again at a runtime that sleeps while some thread
/// outside it might still wake it ([`Verdict::AsleepButWatched`]).
pub(crate) const RECHECK: Duration = Duration::from_millis(100);

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
        // The `block_on` thread, which the census counts as waiting, goes on.
        census::note_wake();
        self.state.lock().done = true;
        self.changed.notify_all();
    }

    /// Waits until the main goroutine finished (true) or a stall newer than `seen` was
    /// reported (false, and `seen` is updated), or, with `recheck`, until that much time has
    /// passed (false).
    pub(crate) fn wait(&self, seen: &mut u64, recheck: Option<Duration>) -> bool {
        let _waiting = census::waiting();
        let mut state = self.state.lock();
        while !state.done && state.stalls == *seen {
            match recheck {
                None => self.changed.wait(&mut state),
                Some(after) => {
                    self.changed.wait_for(&mut state, after);
                    break;
                }
            }
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

/// What a look at a runtime found (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing can ever wake the runtime's goroutines again.
    Deadlocked,
    /// The runtime is asleep, but some thread outside it may still wake it: look again later
    /// (that thread may end, or start waiting), since no worker will report a new stall.
    AsleepButWatched,
    /// Something runs or will run.
    Running,
}

/// Checks the rule of the module doc. Called by the `block_on` thread.
pub(crate) fn verdict(shared: &Shared) -> Verdict {
    let Some(pool) = shared.blocking.quiet() else {
        return Verdict::Running;
    };
    // The spares that left are joined, so that none of their threads is still on its way out.
    shared.spares.reap();
    if !timers::global_idle() || io::global::started().is_some_and(|p| p.has_waiters()) {
        return Verdict::Running;
    }
    // SeqCst: see the module doc.
    let wakes_before = shared.deadlock.forever_wakes.load(Ordering::SeqCst);
    let asleep = all_asleep(shared) && !shared.has_queued_work() && shared.live() > 0;
    let wakes_after = shared.deadlock.forever_wakes.load(Ordering::SeqCst);
    if !(asleep && wakes_before == wakes_after && shared.blocking.quiet() == Some(pool)) {
        return Verdict::Running;
    }
    if others_asleep(shared) {
        Verdict::Deadlocked
    } else {
        Verdict::AsleepButWatched
    }
}

/// Whether no thread outside `shared` can wake its goroutines (condition 5): every thread of
/// the process is one of `shared`'s, a process-wide service thread, a plain thread waiting in
/// the crate with no deadline, a bystander that never used the crate, or a thread of another
/// runtime that is asleep for good itself.
fn others_asleep(shared: &Shared) -> bool {
    // SeqCst: pairs with the census's counting of wakes and first uses (`census` doc).
    let epoch = census::epoch();
    let Some(threads) = census::look() else {
        return false;
    };
    let me = shared.census_id();
    // The caller, `block_on`'s thread, goes back to its wait after this look.
    let caller = census::gettid();
    let mut others = Vec::new();
    for (tid, class) in threads {
        match class {
            _ if tid == caller => {}
            ThreadClass::Crate(owner) if owner == me || owner == census::SERVICE_THREADS => {}
            ThreadClass::Crate(owner) => {
                if !others.contains(&owner) {
                    others.push(owner);
                }
            }
            ThreadClass::Waiting | ThreadClass::Bystander => {}
            ThreadClass::User => return false,
        }
    }
    others.into_iter().all(|owner| match runtime_of(owner) {
        Some(other) => is_asleep_for_good(&other),
        // Dropped: its threads are on their way out and run no goroutine.
        None => true,
    }) && census::epoch() == epoch
}

/// Whether another runtime sleeps for good: every worker asleep with no deadline, nothing
/// queued, no blocking job. Its goroutines are then woken only by a thread, which the census
/// judges, or by a goroutine of ours, which all sleep.
fn is_asleep_for_good(other: &Shared) -> bool {
    let Some(pool) = other.blocking.quiet() else {
        return false;
    };
    // SeqCst: as in `verdict`.
    let wakes_before = other.deadlock.forever_wakes.load(Ordering::SeqCst);
    let asleep = all_asleep(other) && !other.has_queued_work();
    let wakes_after = other.deadlock.forever_wakes.load(Ordering::SeqCst);
    asleep && wakes_before == wakes_after && other.blocking.quiet() == Some(pool)
}

/// Every runtime of the process, by census id, for judging each other's threads.
static RUNTIMES: parking_lot::Mutex<Vec<Weak<Shared>>> = parking_lot::Mutex::new(Vec::new());

/// Lists a new runtime; forgets those dropped since.
pub(crate) fn register(shared: &Arc<Shared>) {
    let mut runtimes = RUNTIMES.lock();
    runtimes.retain(|runtime| runtime.strong_count() > 0);
    runtimes.push(Arc::downgrade(shared));
}

/// Every live runtime of the process, oldest first.
pub(crate) fn runtimes() -> Vec<Arc<Shared>> {
    RUNTIMES.lock().iter().filter_map(Weak::upgrade).collect()
}

/// The live runtime whose census id is `id`.
fn runtime_of(id: usize) -> Option<Arc<Shared>> {
    RUNTIMES
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .find(|runtime| runtime.census_id() == id)
}
