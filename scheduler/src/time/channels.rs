//! Timers as channels: [`after`] and [`tick`], ordinary receivers usable in
//! [`select!`](crate::select!).

use std::time::{Duration, Instant};

use crate::chan::{self, Receiver, Sender, TrySendError};
use crate::sched::timers::run_at;
use crate::wait::timers::TimerAction;

/// A receiver that gets the time once, `duration` from now (Go's `time.After`).
///
/// The timer runs on the calling goroutine's worker (or on the process-wide timer thread
/// outside a runtime). Like Go's channel, it is never closed: after its value, receiving
/// blocks.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use scheduler::{chan, select, time};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let timed_out = rt.block_on(|| {
///     let (_tx, rx) = chan::bounded::<u32>(0);
///     select! {
///         recv(rx) -> _ => false,
///         recv(time::after(Duration::from_millis(10))) -> _ => true,
///     }
/// });
/// assert!(timed_out);
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    let (tx, rx) = chan::never_closing(1);
    if let Some(deadline) = Instant::now().checked_add(duration) {
        run_at(deadline, SendTime { tx, period: None });
    }
    rx
}

/// A receiver that gets the time every `period` (Go's `time.Tick`); [`Ticker`](super::Ticker)
/// is the same with a handle to stop it or change its period.
///
/// Ticks are due at whole multiples of `period` from now. The buffer holds one tick: a tick
/// that finds the previous one unreceived is dropped, and ticks the timer fired too late for
/// are skipped, not made up. So a receiver that falls behind by many periods finds exactly
/// one tick waiting, the oldest (stamped when it was sent), then the next at the next
/// multiple of the period. The ticker stops when every receiver is dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let tick = scheduler::time::tick(Duration::from_millis(1));
///     let (a, b) = (tick.recv().unwrap(), tick.recv().unwrap());
///     assert!(b > a);
/// });
/// ```
///
/// # Panics
///
/// If `period` is zero.
#[track_caller]
pub fn tick(period: Duration) -> Receiver<Instant> {
    assert!(!period.is_zero(), "scheduler: tick period must be non-zero");
    let (tx, rx) = chan::never_closing(1);
    if let Some(first) = Instant::now().checked_add(period) {
        run_at(
            first,
            SendTime {
                tx,
                period: Some((first, period)),
            },
        );
    }
    rx
}

/// Sends the time once (`after`), or every period (`tick`: the due time and the period).
struct SendTime {
    tx: Sender<Instant>,
    period: Option<(Instant, Duration)>,
}

impl TimerAction for SendTime {
    fn fire(self: Box<Self>) {
        let now = Instant::now();
        if let Err(TrySendError::Disconnected(_)) = self.tx.try_send(now) {
            return; // every receiver is gone
        }
        if let Some((due, period)) = self.period {
            let next = next_tick(due, period, now);
            run_at(
                next,
                SendTime {
                    tx: self.tx,
                    period: Some((next, period)),
                },
            );
        }
    }

    /// Dead once every receiver is gone (dropping the last one closes the channel).
    fn is_live(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// The first tick of a ticker with `period` that is due after `now`, counting from the tick
/// that was due at `due`: the ticks missed in between are dropped, as Go's ticker drops them,
/// and finding the next one takes constant time however many were missed (a period of a
/// nanosecond misses millions between two firings).
pub(super) fn next_tick(due: Instant, period: Duration, now: Instant) -> Instant {
    let late = now.saturating_duration_since(due);
    let period_ns = period.as_nanos();
    // Whole periods from `due` to the first tick after `now`; at least one.
    let step_ns = (late.as_nanos() / period_ns + 1) * period_ns;
    u64::try_from(step_ns / 1_000_000_000)
        .ok()
        .map(|secs| Duration::new(secs, (step_ns % 1_000_000_000) as u32))
        .and_then(|step| due.checked_add(step))
        // Beyond what Instant can represent: the next period from now.
        .unwrap_or(now + period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_skips_missed_periods() {
        let due = Instant::now();
        let ms = Duration::from_millis(1);
        // On time: the next period.
        assert_eq!(next_tick(due, ms, due), due + ms);
        // Half a period late: still the next period.
        assert_eq!(next_tick(due, ms, due + ms / 2), due + ms);
        // Exactly one period late: that tick is due now, so the one after.
        assert_eq!(next_tick(due, ms, due + ms), due + 2 * ms);
        // 2.5 periods late: the third one from `due`.
        assert_eq!(next_tick(due, ms, due + ms * 5 / 2), due + 3 * ms);
    }

    #[test]
    fn next_tick_of_a_tiny_period_far_behind_is_after_now() {
        let due = Instant::now();
        let now = due + Duration::from_secs(3600);
        let next = next_tick(due, Duration::from_nanos(1), now);
        assert_eq!(next, now + Duration::from_nanos(1));
    }
}
