//! A worker's sleep: the final look before it parks, the short watch of its parker, the sleep
//! itself (on its parker, or in its readiness poller while one of its goroutines waits for
//! I/O), and the wake-up (the protocol, and why no wakeup is lost, is in
//! [`super::super::idle`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::WorkerLocal;
use crate::sched::deadlock;
use crate::sched::parker::Parker;
use crate::sched::shared::Phase;
use crate::sched::trace::RawKind;

impl WorkerLocal {
    /// Watches this worker's inbox for up to [`INBOX_WATCH`] before it parks, while one of its
    /// started goroutines is parked and so may be woken from another thread. True if a
    /// goroutine arrived, goroutines to steal appeared, or the runtime began to cancel or to
    /// stop (what park's final look also ends a sleep for); a timer that comes due meanwhile
    /// waits for the end of the watch.
    ///
    /// A goroutine that talks to one on another worker (a started goroutine never moves) is
    /// woken through the inbox at every hand-off. Parking costs the idle protocol's shared
    /// counters twice (park and wake), the final look into every queue and a few clock reads:
    /// on the critical path of every such hand-off, as long again as the hand-off itself. A
    /// worker that watches is still counted awake, so nothing in the idle protocol changes: a
    /// producer of stealable work wakes a parked worker as it would while this one ran a
    /// goroutine, and this one, if it was searching, still is and takes such work too.
    pub(super) fn watch_inbox(&self) -> bool {
        if self.started.is_empty() {
            return false;
        }
        let shared = &*self.shared;
        let inbox = &shared.remotes[self.index].inbox;
        let mut looks = 0u32;
        spin_until(INBOX_WATCH, || {
            looks = looks.wrapping_add(1);
            !inbox.is_empty()
                || (looks.is_multiple_of(64)
                    && (shared.has_stealable_work()
                        || (shared.phase() >= Phase::Cancelling && !self.cancel_seen.get())
                        || shared.phase() == Phase::Stopping))
        })
    }

    /// Sleeps until there may be work (the protocol is in [`crate::sched::idle`]), after a
    /// short watch of its parker if `spin` (see [`SpinPolicy`]). Returns
    /// false if this is a spare worker that retired instead: it has no started goroutine left
    /// to wait for, and found no work in its final look (see [`crate::sched::spare`]).
    // Out of line: the worker loop around it is the hot path of every yield and wake, and
    // parking is the slow path that follows a fruitless search anyway.
    #[inline(never)]
    pub(super) fn park(&self, spin: bool) -> bool {
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
                    if spin {
                        self.spin.ended(spin_until_notified(&remote.parker));
                    }
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

/// How long a worker with nothing to do, and goroutines of its own parked, watches its inbox
/// before it parks ([`WorkerLocal::watch_inbox`]).
const INBOX_WATCH: Duration = Duration::from_micros(20);

/// Spins for up to [`PARK_SPIN`] until `parker` is notified (a wake of one of this worker's
/// goroutines from another thread, or work for it to take), so that a wake arriving soon
/// after the worker ran out of work costs the waker a store instead of a futex wake, and the
/// worker the tens of microseconds it takes a sleeping thread to run again. Goroutines that
/// talk across two workers (each started goroutine stays on its thread) wake each other that
/// way at every hand-off. The worker is already counted as parked (it made its final look),
/// so the spin changes nothing the idle protocol relies on.
fn spin_until_notified(parker: &Parker) -> bool {
    spin_until(PARK_SPIN, || parker.is_notified())
}

/// After this many spins in a row that caught nothing, a worker stops spinning before it
/// sleeps, but for one idle spell in [`PROBE_EVERY`].
const MISSES_TO_STOP: u32 = 2;
/// How often a worker that stopped spinning tries again.
const PROBE_EVERY: u32 = 64;

/// Whether a worker spins before it sleeps ([`WorkerLocal::watch_inbox`], then the watch of
/// its parker), learned from how its last spins went. Owned by the worker's thread.
///
/// A spin pays off when another thread hands this worker work within microseconds, as the
/// two halves of a split pair of goroutines do at every message. It is worse than useless
/// when that other thread cannot run because the spin holds its CPU: a process with fewer
/// CPUs than workers (a cpuset, or busy neighbours and an unlucky placement) then pays the
/// whole spin at every hand-off (a split `select!` pair pinned to one CPU: 56 us per message
/// without the inbox watch, 78 us with it). So a worker whose spins caught nothing
/// [`MISSES_TO_STOP`] times in a row goes to sleep at once, and spins again for one idle
/// spell in [`PROBE_EVERY`] to find out whether things changed; one catch and it spins
/// every time again. A worker that is idle for long (a server's, waiting for clients) stops
/// spinning for the same reason.
#[derive(Default)]
pub(super) struct SpinPolicy {
    misses: Cell<u32>,
    spells: Cell<u32>,
}

impl SpinPolicy {
    /// Whether this idle spell spins; counts it.
    pub(super) fn begin(&self) -> bool {
        let spells = self.spells.get().wrapping_add(1);
        self.spells.set(spells);
        self.misses.get() < MISSES_TO_STOP || spells.is_multiple_of(PROBE_EVERY)
    }

    /// How a spin went: it `caught` work, or ran out.
    pub(super) fn ended(&self, caught: bool) {
        self.misses.set(if caught {
            0
        } else {
            self.misses.get().saturating_add(1)
        });
    }
}

/// Calls `done` until it returns true (then returns true) or `limit` has passed (false).
fn spin_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        let spun = start.elapsed();
        if spun >= limit {
            return false;
        }
    }
}
