//! A coarse clock for stamping parks: milliseconds since the runtime started, refreshed by
//! the monitor at each of its ticks and by a worker when it wakes from a sleep, so that
//! stamping a park costs a load, not a system call.
//!
//! A worker parks goroutines only while it is awake, and while any worker is awake the
//! monitor ticks every quarter time slice; a worker that wakes refreshes the clock itself
//! before the monitor's next tick. So a stamp is late by at most a tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The runtime's coarse clock (module doc).
pub(crate) struct CoarseClock {
    base: Instant,
    millis: AtomicU64,
}

impl CoarseClock {
    pub(crate) fn new() -> CoarseClock {
        CoarseClock {
            base: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    /// The last reading, in milliseconds since the runtime started.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        // Relaxed: a timestamp; it orders nothing.
        self.millis.load(Ordering::Relaxed)
    }

    /// Reads the real clock and publishes it.
    pub(crate) fn refresh(&self) {
        let millis = self.precise();
        // Relaxed: as in `now`. `fetch_max`: two refreshers never move it backwards.
        self.millis.fetch_max(millis, Ordering::Relaxed);
    }

    /// The real clock, in the same milliseconds: for the dump, which is rare.
    pub(crate) fn precise(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long ago the coarse reading `millis` (kept modulo 2^32, as a goroutine's header
    /// keeps it) was, by the real clock.
    pub(crate) fn since(&self, millis: u32) -> Duration {
        Duration::from_millis(u64::from((self.precise() as u32).wrapping_sub(millis)))
    }
}
