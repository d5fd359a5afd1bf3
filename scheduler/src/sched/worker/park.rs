//! A worker's sleep: the final look before it parks, the short watch of its parker, the sleep
//! itself (on its parker, or in its readiness poller while one of its goroutines waits for
//! I/O), and the wake-up (the protocol, and why no wakeup is lost, is in
//! [`super::super::idle`]).

use std::time::{Duration, Instant};

use super::WorkerLocal;
use crate::sched::deadlock;
use crate::sched::parker::Parker;
use crate::sched::shared::Phase;
use crate::sched::trace::RawKind;

impl WorkerLocal {
    /// Sleeps until there may be work (the protocol is in [`crate::sched::idle`]). Returns
    /// false if this is a spare worker that retired instead: it has no started goroutine left
    /// to wait for, and found no work in its final look (see [`crate::sched::spare`]).
    // Out of line: the worker loop around it is the hot path of every yield and wake, and
    // parking is the slow path that follows a fruitless search anyway.
    #[inline(never)]
    pub(super) fn park(&self) -> bool {
        let shared = &*self.shared;
        // Tell the monitor this worker runs nothing now.
        self.activity.parking(self.epoch.get());
        let was_searching = self.searching.replace(false);
        let retiring = self.index >= shared.procs && self.started.is_empty();
        if retiring {
            shared.idle.retire_spare(was_searching);
        } else {
            shared.idle.before_park(self.index, was_searching);
        }
        let remote = &shared.remotes[self.index];
        // The final look: after publishing that we park, every queue once more.
        let work_left = !remote.inbox.is_empty()
            || !self.queues.local().is_empty()
            || shared.has_stealable_work()
            || (shared.phase() >= Phase::Cancelling && !self.cancel_seen.get())
            || shared.phase() == Phase::Stopping;
        if retiring {
            if !work_left {
                return false;
            }
            // Work came after all: count ourselves back in and go on, searching on if we were
            // a searcher (as below, for a cancelled park).
            shared.idle.add_spare();
            shared.monitor.worker_awake();
            if was_searching && shared.idle.try_start_searching() {
                self.searching.set(true);
            }
            return true;
        }
        if !work_left {
            // Before a sleep: the goroutines of this worker's shard of the registry that
            // finished elsewhere leave it (`sched::registry`).
            shared.registry.drain(self.index);
            if self.tracing() {
                self.trace(RawKind::Sleep);
            }
            let next_timer = self.timers.borrow().next_deadline();
            let busy = self
                .stats
                .asleep(self.awake_since.get(), self.busy_ns.get(), true);
            self.busy_ns.set(busy);
            match remote.poller.get() {
                // A goroutine of ours waits for I/O: sleep in the poller, which its readiness
                // (or an unpark) ends. Not forever: the peer may still write. No spin: the
                // event is the likelier wake, and the poller sees it at once.
                Some(poller) if poller.has_waiters() => {
                    remote.parker.park_polling(|| {
                        let timeout =
                            next_timer.map(|t| t.saturating_duration_since(Instant::now()));
                        poller.poll(timeout);
                    });
                }
                _ => {
                    spin_until_notified(&remote.parker);
                    remote.parker.park(next_timer, || {
                        if deadlock::all_asleep(shared) {
                            shared.deadlock.stalled();
                        }
                    });
                }
            }
            self.awake_since.set(self.stats.awake(busy));
            // The monitor may have slept as long as we did: stamp parks with a fresh clock.
            shared.clock.refresh();
            if self.tracing() {
                self.trace(RawKind::Woke);
            }
        }
        let woken_as_searcher = shared.idle.after_wake(self.index);
        // Counted as unparked again (by `after_wake` or by the producer that woke us): a
        // monitor asleep because every worker was parked has work to watch again.
        shared.monitor.worker_awake();
        if woken_as_searcher {
            self.searching.set(true);
        } else if work_left && was_searching && shared.idle.try_start_searching() {
            // The final look cancelled the sleep of a searcher. A producer may have skipped
            // waking anyone because it saw us searching, for more goroutines than we will
            // take: search on, so that taking one makes us the last searcher who wakes
            // another worker for the rest (Go's findrunnable does the same). If the search is
            // refused, half the workers search already and the same holds for them.
            self.searching.set(true);
        }
        true
    }
}

/// How long a worker with nothing to do watches its parker before it goes to sleep.
const PARK_SPIN: Duration = Duration::from_micros(50);

/// Spins for up to [`PARK_SPIN`] until `parker` is notified (a wake of one of this worker's
/// goroutines from another thread, or work for it to take), so that a wake arriving soon
/// after the worker ran out of work costs the waker a store instead of a futex wake, and the
/// worker the tens of microseconds it takes a sleeping thread to run again. Goroutines that
/// talk across two workers (each started goroutine stays on its thread) wake each other that
/// way at every hand-off. The worker is already counted as parked (it made its final look),
/// so the spin changes nothing the idle protocol relies on.
fn spin_until_notified(parker: &Parker) {
    let until = Instant::now() + PARK_SPIN;
    loop {
        for _ in 0..64 {
            if parker.is_notified() {
                return;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= until {
            return;
        }
    }
}
