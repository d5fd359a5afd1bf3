//! Timers as channels: [`after`] and [`tick`], ordinary receivers usable in
//! [`select!`](crate::select!).

use std::time::{Duration, Instant};

use super::timers::{self, TimerAction};
use crate::chan::{self, Receiver, Sender, TrySendError};

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
        timers::run_at(deadline, Ticker { tx, period: None });
    }
    rx
}

/// A receiver that gets the time every `period` (Go's `time.Tick`).
///
/// Its buffer holds one tick; a slow receiver misses ticks rather than piling them up, and
/// missed periods are skipped, not made up. The ticker stops when every receiver is dropped.
///
/// # Panics
///
/// If `period` is zero.
pub fn tick(period: Duration) -> Receiver<Instant> {
    assert!(!period.is_zero(), "scheduler: tick period must be non-zero");
    let (tx, rx) = chan::never_closing(1);
    if let Some(first) = Instant::now().checked_add(period) {
        timers::run_at(
            first,
            Ticker {
                tx,
                period: Some((first, period)),
            },
        );
    }
    rx
}

/// Sends the time once (`after`), or every period (`tick`: the due time and the period).
struct Ticker {
    tx: Sender<Instant>,
    period: Option<(Instant, Duration)>,
}

impl TimerAction for Ticker {
    fn fire(self: Box<Self>) {
        let now = Instant::now();
        if let Err(TrySendError::Disconnected(_)) = self.tx.try_send(now) {
            return; // every receiver is gone
        }
        if let Some((due, period)) = self.period {
            let mut next = due + period;
            while next <= now {
                next += period;
            }
            timers::run_at(
                next,
                Ticker {
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
