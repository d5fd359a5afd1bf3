//! A worker thread's parker: sleep until another thread hands it work.
//!
//! A compare-and-sleep on `parking_lot_core`: `park` sleeps only while the state is still
//! `PARKED` when the bucket lock is held, and `unpark` sets `NOTIFIED` before it looks for a
//! sleeper, so a notification that arrives between a worker's last look at its queues and its
//! sleep is never lost: the worker finds `NOTIFIED` and returns at once. Notifications do not
//! count: several before a park wake it once.

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

// Under `cfg(loom)` this file is not part of this crate: the model checker's package
// (tests/loom) compiles it as it is, with loom's atomics and a model of `parking_lot_core`'s
// park and unpark in place of these.
#[cfg(loom)]
use crate::shim::{AtomicU8, Ordering, parking_lot_core};

use parking_lot_core::{DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN, ParkResult};

const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;
/// Parked with no deadline: only an unpark wakes it (see [`super::deadlock`]).
const PARKED_FOREVER: u8 = 3;
/// Parked in the owner's readiness poller ([`park_polling`](Parker::park_polling)) instead
/// of on the futex: an unpark wakes the poller. Never "forever": the owner sleeps there only
/// while one of its goroutines waits for I/O, which a peer may end.
const PARKED_POLLING: u8 = 4;

/// One worker's sleep/wake word. Parked only by its owner; unparked by anyone.
pub(crate) struct Parker {
    state: AtomicU8,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            state: AtomicU8::new(EMPTY),
        }
    }

    fn key(&self) -> usize {
        self as *const Parker as usize
    }

    /// Sleeps until [`unpark`](Self::unpark) is called or `deadline` passes, or returns at
    /// once if `unpark` was called since the last `park` returned. May also return spuriously.
    /// With no deadline, `on_sleep_forever` runs once the parker shows that it sleeps for good
    /// (before it actually sleeps), unless an unpark came first.
    pub(crate) fn park(&self, deadline: Option<Instant>, on_sleep_forever: impl FnOnce()) {
        // Acquire: what the notifier published before its swap is visible on return.
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let parked = if deadline.is_some() {
            PARKED
        } else {
            PARKED_FOREVER
        };
        if self
            .state
            // SeqCst: PARKED publishes nothing (the notifier's swap and the Acquire CAS after
            // waking carry the data), but PARKED_FOREVER is read by the deadlock check, whose
            // argument needs one total order of these marks, the checks and the counted wakes.
            .compare_exchange(EMPTY, parked, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            // Raced with an unpark: the state is NOTIFIED now; consume it.
            self.state.swap(EMPTY, Ordering::Acquire);
            return;
        }
        if parked == PARKED_FOREVER {
            on_sleep_forever();
        }
        loop {
            // SAFETY: the key is this parker's address, unique while it lives (it lives as
            // long as its worker); the callbacks neither panic nor call into parking_lot.
            let result = unsafe {
                parking_lot_core::park(
                    self.key(),
                    || self.state.load(Ordering::Relaxed) == parked,
                    || {},
                    |_, _| {},
                    DEFAULT_PARK_TOKEN,
                    deadline,
                )
            };
            if result == ParkResult::TimedOut {
                // Back to EMPTY, consuming a notification that raced with the time-out.
                self.state.swap(EMPTY, Ordering::Acquire);
                return;
            }
            if self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// [`park`](Self::park) for an owner that sleeps in a readiness poller: `sleep` blocks
    /// in the poller until its timeout (the caller's deadline), an I/O event, or the poller's
    /// wake, which [`unpark_with`](Self::unpark_with) calls for an owner parked here. Returns
    /// at once if an unpark came since the last park returned. The deadlock check never
    /// counts such an owner asleep for good (`PARKED_POLLING`).
    #[cfg_attr(loom, allow(dead_code))] // the poller is not modelled
    pub(crate) fn park_polling(&self, sleep: impl FnOnce()) {
        // Acquire: as in `park`.
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        if self
            .state
            // SeqCst: as in `park` (the deadlock check reads the mark).
            .compare_exchange(EMPTY, PARKED_POLLING, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            // Raced with an unpark: the state is NOTIFIED now; consume it.
            self.state.swap(EMPTY, Ordering::Acquire);
            return;
        }
        // An unpark from here on wakes the poller (or makes its next wait return at once):
        // the sleep cannot miss it. Whatever ended it, go back to EMPTY, consuming a
        // notification (Acquire: what the notifier published is visible).
        sleep();
        self.state.swap(EMPTY, Ordering::Acquire);
    }

    /// Whether an unpark came since the last `park` returned (the next `park` returns at
    /// once). A hint for the owner's spin before it parks.
    #[cfg_attr(loom, allow(dead_code))] // the spin is not modelled: `park` decides
    #[inline]
    pub(crate) fn is_notified(&self) -> bool {
        // Relaxed: only a hint; `park`'s Acquire CAS takes what the notifier published.
        self.state.load(Ordering::Relaxed) == NOTIFIED
    }

    /// Whether the owner sleeps with no deadline, and no unpark has come since.
    #[cfg_attr(loom, allow(dead_code))] // only the deadlock check uses it; not modelled
    pub(crate) fn is_parked_forever(&self) -> bool {
        // SeqCst: see `park`.
        self.state.load(Ordering::SeqCst) == PARKED_FOREVER
    }

    /// Wakes the owner if it sleeps in [`park`](Self::park), or makes its next `park` return.
    /// Returns true if the owner slept with no deadline: the caller counts that wake for the
    /// deadlock check ([`Deadlock::count_wake`](super::deadlock::Deadlock::count_wake)).
    #[cfg(any(test, loom))]
    #[must_use = "a wake of a worker asleep for good must be counted"]
    pub(crate) fn unpark(&self) -> bool {
        self.unpark_with(|| {})
    }

    /// [`unpark`](Self::unpark), calling `wake_poller` if the owner sleeps in
    /// [`park_polling`](Self::park_polling).
    #[must_use = "a wake of a worker asleep for good must be counted"]
    pub(crate) fn unpark_with(&self, wake_poller: impl FnOnce()) -> bool {
        // SeqCst: Release publishes the work handed over before this call (pairs with park's
        // Acquire); the deadlock check needs the total order (see `park`).
        let previous = self.state.swap(NOTIFIED, Ordering::SeqCst);
        if previous == PARKED_POLLING {
            wake_poller();
        } else if previous == PARKED || previous == PARKED_FOREVER {
            // SAFETY: same key as park; the callback does not call into parking_lot.
            unsafe {
                parking_lot_core::unpark_one(self.key(), |_| DEFAULT_UNPARK_TOKEN);
            }
        }
        previous == PARKED_FOREVER
    }
}

// Not under `cfg(loom)`: the model checker's package compiles this file without the crate's
// test helpers.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::testing::{ROUNDS, Unsynced};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::thread;
    use std::time::Duration;

    fn never() {
        panic!("on_sleep_forever ran, but the parker was not to sleep for good");
    }

    /// Spins until the owner shows `state` (it is about to sleep, or asleep).
    fn until_state(parker: &Parker, state: u8) {
        while parker.state.load(Ordering::SeqCst) != state {
            thread::yield_now();
        }
    }

    #[test]
    fn unpark_before_park_returns_at_once() {
        let parker = Parker::new();
        assert!(!parker.unpark(), "nobody slept");
        assert!(!parker.unpark(), "notifications do not count");
        parker.park(None, never);
        assert!(!parker.is_parked_forever());
        // The two unparks were consumed by one park: the next one sleeps until its deadline.
        let deadline = Instant::now() + Duration::from_millis(5);
        parker.park(Some(deadline), never);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn park_with_a_deadline_times_out() {
        let parker = Parker::new();
        let deadline = Instant::now() + Duration::from_millis(10);
        parker.park(Some(deadline), never);
        assert!(Instant::now() >= deadline);
        assert_eq!(parker.state.load(Ordering::SeqCst), EMPTY);
        assert!(!parker.is_parked_forever());
    }

    #[test]
    fn unpark_wakes_an_owner_parked_forever() {
        for round in 0..ROUNDS {
            let parker = Parker::new();
            let handed_over = Unsynced::new(0);
            let ready = AtomicBool::new(false);
            let slept_forever = AtomicBool::new(false);
            thread::scope(|s| {
                let owner = s.spawn(|| {
                    // Relaxed: `ready` only filters the spurious returns `park` allows; the
                    // data read below is ordered by the parker (every return from a park
                    // without deadline consumes a NOTIFIED with Acquire).
                    while !ready.load(Ordering::Relaxed) {
                        parker.park(None, || slept_forever.store(true, Ordering::Relaxed));
                    }
                    // SAFETY: written before the unpark whose notification `park` consumed.
                    unsafe { handed_over.get() }
                });
                until_state(&parker, PARKED_FOREVER);
                assert!(parker.is_parked_forever());
                // SAFETY: the owner reads it only after the unpark below.
                unsafe { handed_over.set(round + 1) };
                ready.store(true, Ordering::Relaxed);
                assert!(
                    parker.unpark(),
                    "the owner slept for good: the wake is counted"
                );
                assert!(!parker.is_parked_forever());
                assert_eq!(owner.join().unwrap(), round + 1);
            });
            assert!(slept_forever.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn unpark_of_a_timed_park_is_not_counted() {
        let parker = Parker::new();
        // Long enough that only the unpark can end the sleep.
        let deadline = Instant::now() + Duration::from_secs(60);
        thread::scope(|s| {
            let owner = s.spawn(|| {
                parker.park(Some(deadline), never);
                Instant::now() < deadline
            });
            until_state(&parker, PARKED);
            assert!(!parker.is_parked_forever(), "a timed sleep is not for good");
            assert!(!parker.unpark());
            assert!(
                owner.join().unwrap(),
                "woken by the unpark, not the deadline"
            );
        });
    }

    #[test]
    fn unpark_racing_park_is_never_lost() {
        let parker = Parker::new();
        let handed_over = Unsynced::new(0);
        // Rounds the other thread has unparked for (Relaxed: the parker orders the data, as
        // in unpark_wakes_an_owner_parked_forever), and rounds the owner has taken.
        let sent = AtomicUsize::new(0);
        let taken = AtomicUsize::new(0);
        thread::scope(|s| {
            s.spawn(|| {
                for round in 1..=ROUNDS {
                    // Acquire: the owner's read of the previous value is done (pairs with
                    // its Release store).
                    while taken.load(Ordering::Acquire) != round - 1 {
                        thread::yield_now();
                    }
                    // SAFETY: the owner reads it only after the unpark below.
                    unsafe { handed_over.set(round) };
                    sent.store(round, Ordering::Relaxed);
                    let _ = parker.unpark();
                }
            });
            // The owner parks whenever it has nothing new: a lost unpark would leave both
            // threads waiting for each other (Miri reports that as a deadlock).
            let mut seen = 0;
            while seen < ROUNDS {
                parker.park(None, || {});
                if sent.load(Ordering::Relaxed) > seen {
                    seen += 1;
                    // SAFETY: written before the unpark this park consumed.
                    assert_eq!(unsafe { handed_over.get() }, seen);
                    taken.store(seen, Ordering::Release);
                }
            }
        });
    }
}
