//! Putting the caller to sleep.

use std::panic::Location;
use std::time::{Duration, Instant};

use crate::chan::RecvOp;
use crate::context::{Context, ContextError};
use crate::sched::current;
use crate::sched::wait::WaitHere;
use crate::select::{Mode, select_one};
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

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
#[track_caller]
pub fn sleep(duration: Duration) {
    let site = Location::caller();
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until_at(deadline, site),
        // Beyond what Instant can represent: forever, for practical purposes.
        None => loop {
            let year = Duration::from_secs(60 * 60 * 24 * 365);
            sleep_until_at(Instant::now() + year, site);
        },
    }
}

/// Sleeps until `deadline`; returns at once if it has passed.
#[track_caller]
pub fn sleep_until(deadline: Instant) {
    sleep_until_at(deadline, Location::caller());
}

/// [`sleep_until`], called at `site`.
fn sleep_until_at(deadline: Instant, site: Site) {
    if current::can_suspend() {
        let waiter = Waiter::for_current(BlockKind::Timer);
        // Nobody else knows this waiter, so only the deadline ends the wait.
        waiter.wait_until(Some(deadline), site);
    } else {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// Sleeps for `duration` unless `ctx` ends first.
///
/// # Errors
///
/// The context's error if it ended before the time was up (or had ended already).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use scheduler::context::{Context, ContextError};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let (ctx, cancel) = Context::background().with_cancel();
///     cancel.cancel();
///     let err = scheduler::time::sleep_ctx(Duration::from_secs(3600), &ctx);
///     assert_eq!(err, Err(ContextError::Canceled));
/// });
/// ```
#[track_caller]
pub fn sleep_ctx(duration: Duration, ctx: &Context) -> Result<(), ContextError> {
    if let Some(err) = ctx.err() {
        return Err(err);
    }
    let done = ctx.done();
    let mut cancelled = RecvOp::new(&done);
    let mode = Mode::after(duration);
    if select_one(&mut cancelled, mode, BlockKind::Timer, Location::caller()) {
        Err(ctx.err_or_canceled())
    } else {
        Ok(())
    }
}
