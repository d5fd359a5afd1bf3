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

    /// Whether the owner sleeps with no deadline, and no unpark has come since.
    #[cfg_attr(loom, allow(dead_code))] // only the deadlock check uses it; not modelled
    pub(crate) fn is_parked_forever(&self) -> bool {
        // SeqCst: see `park`.
        self.state.load(Ordering::SeqCst) == PARKED_FOREVER
    }

    /// Wakes the owner if it sleeps in [`park`](Self::park), or makes its next `park` return.
    /// Returns true if the owner slept with no deadline: the caller counts that wake for the
    /// deadlock check ([`Deadlock::count_wake`](super::deadlock::Deadlock::count_wake)).
    #[must_use = "a wake of a worker asleep for good must be counted"]
    pub(crate) fn unpark(&self) -> bool {
        // SeqCst: Release publishes the work handed over before this call (pairs with park's
        // Acquire); the deadlock check needs the total order (see `park`).
        let previous = self.state.swap(NOTIFIED, Ordering::SeqCst);
        if previous == PARKED || previous == PARKED_FOREVER {
            // SAFETY: same key as park; the callback does not call into parking_lot.
            unsafe {
                parking_lot_core::unpark_one(self.key(), |_| DEFAULT_UNPARK_TOKEN);
            }
        }
        previous == PARKED_FOREVER
    }
}
