//! Which workers are awake and which are searching for work, and the rule for waking one.
//!
//! The protocol (Go's `findrunnable`/`wakep` and tokio's `idle.rs` follow the same rules):
//!
//! * `state` packs the number of *unparked* workers (high half) and of *searching* workers
//!   (low half) into one word, so both are read and changed together.
//! * A producer that makes stealable work (a spawn into a local deque or the global injector)
//!   calls [`Idle::notify_work`]: after a SeqCst fence it reads `state`, and wakes one parked
//!   worker only if nobody is searching and somebody is parked. The woken worker is counted as
//!   unparked *and* searching by the producer, so a burst of spawns wakes one worker, not all.
//! * At most half of the workers search at once ([`Idle::try_start_searching`]); the rest park.
//! * A searcher that finds work stops searching; if it was the last searcher it calls
//!   `notify_work` itself, so that work which may remain is taken up by another worker.
//! * Every worker, after it has published that it is parked ([`Idle::before_park`], a SeqCst
//!   read-modify-write), looks at every queue once more before it sleeps, and takes the work
//!   back (cancelling its park) if it finds any. A searcher whose park is cancelled so searches
//!   on (if half the workers do not search already), as in Go.
//!
//! Why no work is stranded (a sketch). A producer P pushes work W, then fences and reads
//! `state`. Consider any worker X that is about to park. Its park RMW and P's read are ordered
//! by SeqCst. If P's read comes first, then P's push precedes X's final look at the queues, so
//! X sees W. If X's RMW comes first, P sees X parked: if no one searches, P wakes a parked
//! worker; if some worker S searches, S either parks (and, being ordered after P's read, sees
//! W in its final look) or finds work and, if it was the last searcher, calls `notify_work`
//! again with the same argument. So as long as W sits in a queue, some worker is awake and will
//! look at it. The case "S parks and sees W" needs S to stay a searcher: P skipped its wake
//! because of S, perhaps for more goroutines than S takes, so S must end up in the last
//! searcher's `notify_work`. If S stopped searching when its final look cancelled its park, it
//! would take W and wake nobody for the rest (the loom model
//! `last_searcher_wakes_a_worker_for_the_rest` found that); so it searches on. If the search is
//! refused, half the workers search, and each of them is in S's position.

#[cfg(not(loom))]
use parking_lot::Mutex;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering, fence};

// Under `cfg(loom)` this file is not part of this crate: the model checker's package
// (tests/loom) compiles it as it is, with loom's atomics and lock in place of these.
#[cfg(loom)]
use crate::shim::{AtomicUsize, Mutex, Ordering, fence};

const UNPARKED_SHIFT: u32 = 16;
const SEARCHING_MASK: usize = (1 << UNPARKED_SHIFT) - 1;
const ONE_UNPARKED: usize = 1 << UNPARKED_SHIFT;
const ONE_SEARCHING: usize = 1;

fn searching(state: usize) -> usize {
    state & SEARCHING_MASK
}

fn unparked(state: usize) -> usize {
    state >> UNPARKED_SHIFT
}

/// Idle bookkeeping shared by all workers of a runtime.
pub(crate) struct Idle {
    /// Unparked workers (high half) and searching workers (low half). SeqCst throughout: the
    /// argument in the module doc relies on one total order of these RMWs and the producers'
    /// fenced reads.
    state: AtomicUsize,
    /// Indices of the parked workers. A worker is in this list from `before_park` until a
    /// producer pops it (and counts it as unparked and searching) or it removes itself in
    /// `after_wake`.
    sleepers: Mutex<Vec<usize>>,
    procs: usize,
}

impl Idle {
    /// Every worker starts unparked and not searching.
    pub(crate) fn new(procs: usize) -> Idle {
        assert!(procs <= SEARCHING_MASK, "procs is bounded by the builder");
        Idle {
            state: AtomicUsize::new(procs << UNPARKED_SHIFT),
            sleepers: Mutex::new(Vec::with_capacity(procs)),
            procs,
        }
    }

    /// Called after stealable work was published. Returns the index of a worker to unpark.
    #[inline]
    pub(crate) fn notify_work(&self) -> Option<usize> {
        // The fence orders the caller's push before the read of `state` (see the module doc).
        fence(Ordering::SeqCst);
        let state = self.state.load(Ordering::SeqCst);
        if searching(state) > 0 || unparked(state) >= self.procs {
            return None;
        }
        self.notify_slow()
    }

    #[cold]
    fn notify_slow(&self) -> Option<usize> {
        let mut sleepers = self.sleepers.lock();
        // Check again under the lock: another producer may have woken a worker already.
        let state = self.state.load(Ordering::SeqCst);
        if searching(state) > 0 || unparked(state) >= self.procs {
            return None;
        }
        let index = sleepers.pop()?;
        self.state
            .fetch_add(ONE_UNPARKED + ONE_SEARCHING, Ordering::SeqCst);
        Some(index)
    }

    /// Wakes a parked worker for goroutines queued while some worker is blocked in a system
    /// call (called by the monitor). Unlike [`notify_work`](Self::notify_work) it wakes one
    /// even when `procs` workers count as unparked, since the blocked one runs nothing; like
    /// it, it wakes nobody while somebody searches (the searcher will look), and counts the
    /// worker it returns as unparked and searching.
    #[cfg_attr(loom, allow(dead_code))] // only the monitor uses it; not modelled
    pub(crate) fn notify_for_blocked(&self) -> Option<usize> {
        let mut sleepers = self.sleepers.lock();
        if searching(self.state.load(Ordering::SeqCst)) > 0 {
            return None;
        }
        let index = sleepers.pop()?;
        self.state
            .fetch_add(ONE_UNPARKED + ONE_SEARCHING, Ordering::SeqCst);
        Some(index)
    }

    /// Asks to become a searcher; refused when half the workers already search.
    pub(crate) fn try_start_searching(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if 2 * searching(state) >= self.procs.max(2) {
            return false;
        }
        self.state.fetch_add(ONE_SEARCHING, Ordering::SeqCst);
        true
    }

    /// A searcher found work. Returns true if it was the last searcher, in which case the
    /// caller must call [`notify_work`](Self::notify_work).
    pub(crate) fn stop_searching(&self) -> bool {
        let prev = self.state.fetch_sub(ONE_SEARCHING, Ordering::SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// Publishes that worker `index` is about to park (and no longer searches). The caller
    /// must look at every queue afterwards and call [`after_wake`](Self::after_wake) if it
    /// does not sleep after all.
    pub(crate) fn before_park(&self, index: usize, was_searching: bool) {
        let mut sleepers = self.sleepers.lock();
        let delta = ONE_UNPARKED + if was_searching { ONE_SEARCHING } else { 0 };
        let prev = self.state.fetch_sub(delta, Ordering::SeqCst);
        debug_assert!(unparked(prev) > 0);
        sleepers.push(index);
    }

    /// Counts a spare worker (`super::spare`) as unparked and not searching: called before
    /// its thread starts, and by a spare whose retirement the final look cancelled.
    #[cfg_attr(loom, allow(dead_code))] // spares are not modelled
    pub(crate) fn add_spare(&self) {
        self.state.fetch_add(ONE_UNPARKED, Ordering::SeqCst);
    }

    /// Counts a spare worker out for good, as [`before_park`](Self::before_park) does, but
    /// without listing it among the sleepers: no producer can wake it. The caller must look
    /// at every queue afterwards, as before a park, and call [`add_spare`](Self::add_spare)
    /// and go on if it finds work. The same argument as for a park holds (module doc): a
    /// producer that read `state` before this RMW pushed its work before the final look; one
    /// that reads it after sees one unparked worker fewer and wakes a parked one if nobody
    /// searches.
    #[cfg_attr(loom, allow(dead_code))] // spares are not modelled
    pub(crate) fn retire_spare(&self, was_searching: bool) {
        let delta = ONE_UNPARKED + if was_searching { ONE_SEARCHING } else { 0 };
        let prev = self.state.fetch_sub(delta, Ordering::SeqCst);
        debug_assert!(unparked(prev) > 0);
    }

    /// How many workers are unparked (awake, or woken and about to run).
    #[cfg_attr(loom, allow(dead_code))] // only the monitor uses it; not modelled
    pub(crate) fn unparked(&self) -> usize {
        // SeqCst, like every access to `state`; the monitor only uses it as a hint.
        unparked(self.state.load(Ordering::SeqCst))
    }

    /// Whether every worker is parked (or about to park: counted out by `before_park`).
    #[cfg_attr(loom, allow(dead_code))] // only the monitor uses it; not modelled
    pub(crate) fn all_parked(&self) -> bool {
        // SeqCst: the monitor's sleep pairs this load with its own SeqCst store before it, and
        // a waking worker's RMW of `state` with its read of the monitor's flag after it
        // (`sched/monitor.rs`).
        unparked(self.state.load(Ordering::SeqCst)) == 0
    }

    /// Worker `index` is awake again. Returns true if a producer woke it as a searcher (it was
    /// already counted as unparked and searching); otherwise it removes itself from the
    /// sleepers and counts itself as unparked, not searching.
    pub(crate) fn after_wake(&self, index: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.state.fetch_add(ONE_UNPARKED, Ordering::SeqCst);
                false
            }
            None => true,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_do_not_overlap() {
        assert_eq!(ONE_UNPARKED & SEARCHING_MASK, 0);
        assert_eq!(unparked(5 << UNPARKED_SHIFT | 3), 5);
        assert_eq!(searching(5 << UNPARKED_SHIFT | 3), 3);
    }

    #[test]
    fn notify_wakes_one_parked_worker_once() {
        let idle = Idle::new(2);
        idle.before_park(1, false);
        assert_eq!(idle.notify_work(), Some(1));
        // Worker 1 now counts as searching: a second notify wakes nobody.
        assert_eq!(idle.notify_work(), None);
        assert!(idle.after_wake(1), "woken as a searcher");
        assert!(idle.stop_searching());
    }

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
    }

    #[test]
    fn a_blocked_worker_gets_a_parked_one_woken_though_procs_count_as_awake() {
        let idle = Idle::new(1);
        // Worker 0 is blocked (unparked); a spare started, then parked with goroutines of
        // its own to wait for.
        idle.add_spare();
        idle.before_park(1, false);
        assert_eq!(idle.unparked(), 1);
        assert_eq!(idle.notify_work(), None, "procs (1) count as unparked");
        assert_eq!(idle.notify_for_blocked(), Some(1));
        assert_eq!(idle.notify_for_blocked(), None, "the woken one searches");
        assert!(idle.after_wake(1), "woken as a searcher");
        assert_eq!(idle.unparked(), 2);
    }

    #[test]
    fn a_spare_that_retires_leaves_no_sleeper_behind() {
        let idle = Idle::new(1);
        idle.add_spare();
        assert!(idle.try_start_searching());
        idle.retire_spare(true);
        assert_eq!(idle.unparked(), 1);
        // Not a sleeper: nobody can wake it.
        assert_eq!(idle.notify_for_blocked(), None);
        // Its final look found work: counted back in, not searching.
        idle.add_spare();
        assert_eq!(idle.unparked(), 2);
        assert!(idle.try_start_searching(), "nobody searches");
    }

    #[test]
    fn self_wake_restores_count() {
        let idle = Idle::new(1);
        idle.before_park(0, true);
        assert!(!idle.after_wake(0));
        // Back to one unparked, nobody searching: a notify finds no one to wake.
        assert_eq!(idle.notify_work(), None);
    }
}
