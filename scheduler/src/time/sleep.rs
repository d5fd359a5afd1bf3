//! Putting the caller to sleep.

use std::time::{Duration, Instant};

use crate::sched::context;
use crate::sync::waiter::Waiter;

/// Sleeps for `duration`, Go's `time.Sleep`.
///
/// Inside a goroutine only the goroutine sleeps: its worker runs others, and an idle worker
/// sleeps in the kernel exactly until the earliest timer is due. Outside, the thread sleeps.
/// Lateness on an idle machine is the OS's wakeup latency, well under a millisecond; a worker
/// busy with a goroutine that does not yield fires its timers only when that goroutine yields
/// or blocks.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let slept = rt.block_on(|| {
///     let start = Instant::now();
///     scheduler::time::sleep(Duration::from_millis(5));
///     start.elapsed()
/// });
/// assert!(slept >= Duration::from_millis(5));
/// ```
pub fn sleep(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline),
        // Beyond what Instant can represent: forever, for practical purposes.
        None => loop {
            sleep(Duration::from_secs(60 * 60 * 24 * 365));
        },
    }
}

/// Sleeps until `deadline`; returns at once if it has passed.
pub fn sleep_until(deadline: Instant) {
    if context::in_goroutine() {
        let waiter = Waiter::for_current();
        // Nobody else knows this waiter, so only the deadline ends the wait.
        waiter.wait_until(Some(deadline));
    } else {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}
