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
    pub(crate) fn park(&self, deadline: Option<Instant>) {
        // Acquire: what the notifier published before its Release swap is visible on return.
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        if self
            .state
            // Relaxed: PARKED publishes nothing; the notifier's swap and the Acquire CAS
            // after waking carry the data.
            .compare_exchange(EMPTY, PARKED, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Raced with an unpark: the state is NOTIFIED now; consume it.
            self.state.swap(EMPTY, Ordering::Acquire);
            return;
        }
        loop {
            // SAFETY: the key is this parker's address, unique while it lives (it lives as
            // long as its worker); the callbacks neither panic nor call into parking_lot.
            let result = unsafe {
                parking_lot_core::park(
                    self.key(),
                    || self.state.load(Ordering::Relaxed) == PARKED,
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

    /// Wakes the owner if it sleeps in [`park`](Self::park), or makes its next `park` return.
    pub(crate) fn unpark(&self) {
        // Release: publishes the work handed over before this call (pairs with park's Acquire).
        if self.state.swap(NOTIFIED, Ordering::Release) == PARKED {
            // SAFETY: same key as park; the callback does not call into parking_lot.
            unsafe {
                parking_lot_core::unpark_one(self.key(), |_| DEFAULT_UNPARK_TOKEN);
            }
        }
    }
}
