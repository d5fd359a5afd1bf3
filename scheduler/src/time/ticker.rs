//! [`Ticker`]: Go's `time.NewTicker`, with `Stop` and `Reset`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arming::Arming;
use super::channels::next_tick;
use crate::chan::{self, AsReceiver, Receiver, Sender, TrySendError};
use crate::sched::timers::run_at;
use crate::wait::census;
use crate::wait::timers::TimerAction;

/// A ticker that sends the time on its channel every period: Go's `time.NewTicker`, with
/// [`stop`](Self::stop) and [`reset`](Self::reset). [`tick`](super::tick) is the same without
/// the handle.
///
/// Receive with [`recv`](Self::recv), or through [`c`](Self::c), the channel (Go's `t.C`). In
/// [`select!`](crate::select!), write `recv(ticker.c()) -> at => ..` or `recv(ticker) -> at =>
/// ..`.
///
/// # A slow receiver
///
/// Ticks are due at whole multiples of the period from the start (or the last reset). The
/// channel holds one tick: a tick that finds the previous one still unreceived is dropped,
/// as Go's ticker drops ticks for a slow receiver. Ticks the timer itself fired too late for
/// (its worker was busy) are skipped, not made up. So after a pause of many periods the
/// receiver finds exactly one tick waiting, the oldest, stamped when it was sent; the next
/// comes at the next multiple of the period, sooner than a whole period after the receive.
/// Ticks never pile up.
///
/// # Guarantee
///
/// After `stop` or `reset` returns, no tick from before it is received: a tick waiting in the
/// channel is taken out, and a tick sent at the same moment either came first (and is taken
/// out) or is not sent.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use scheduler::{select, time};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let ticks = rt.block_on(|| {
///     let ticker = time::Ticker::new(Duration::from_millis(2));
///     let done = time::after(Duration::from_millis(30));
///     let mut ticks = 0;
///     loop {
///         select! {
///             recv(ticker) -> _ => ticks += 1,
///             recv(done) -> _ => break,
///         }
///     }
///     ticker.stop();
///     ticks
/// });
/// assert!(ticks >= 1);
/// ```
///
/// # Panics
///
/// [`new`](Self::new) and [`reset`](Self::reset) panic on a zero period.
pub struct Ticker {
    shared: Arc<Shared>,
    /// The ticker's channel, Go's `t.C`.
    rx: Receiver<Instant>,
}

/// What the ticker shares with the callback it set.
struct Shared {
    /// `pending` means running. Ticks are sent under its lock.
    arming: Arming,
    tx: Sender<Instant>,
}

impl Ticker {
    /// A ticker whose first tick comes `period` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Ticker;
    ///
    /// // On a plain thread: it runs on the process-wide timer thread.
    /// let ticker = Ticker::new(Duration::from_millis(1));
    /// let first = ticker.recv();
    /// assert!(ticker.recv() > first);
    /// ```
    ///
    /// # Panics
    ///
    /// If `period` is zero (Go panics on a period of zero or less).
    #[track_caller]
    pub fn new(period: Duration) -> Ticker {
        assert!(
            !period.is_zero(),
            "scheduler: Ticker::new needs a non-zero period"
        );
        census::note_use();
        let (tx, rx) = chan::never_closing(1);
        let ticker = Ticker {
            shared: Arc::new(Shared {
                arming: Arming::new(),
                tx,
            }),
            rx,
        };
        ticker.start(period);
        ticker
    }

    /// Stops the ticker: no tick is sent from now on, and a tick waiting in the channel is
    /// taken out. It does not close the channel, and a receive then blocks until
    /// [`reset`](Self::reset). Stopping a stopped ticker does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Ticker;
    ///
    /// let ticker = Ticker::new(Duration::from_millis(1));
    /// std::thread::sleep(Duration::from_millis(5));
    /// ticker.stop();
    /// assert!(ticker.c().try_recv().is_err(), "the waiting tick went with the stop");
    /// ```
    pub fn stop(&self) {
        let mut armed = self.shared.arming.lock();
        armed.disarm();
        let _ = self.rx.try_recv();
    }

    /// Stops the ticker and starts it again with a new period: the next tick comes `period`
    /// from now, and no tick from before is received (Go's `t.Reset(d)`). Works on a stopped
    /// ticker too.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use scheduler::time::Ticker;
    ///
    /// let ticker = Ticker::new(Duration::from_secs(3600));
    /// let start = Instant::now();
    /// ticker.reset(Duration::from_millis(1));
    /// assert!(ticker.recv() >= start + Duration::from_millis(1));
    /// ```
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    #[track_caller]
    pub fn reset(&self, period: Duration) {
        assert!(
            !period.is_zero(),
            "scheduler: Ticker::reset needs a non-zero period"
        );
        self.start(period);
    }

    /// Ends the current arming, empties the channel, and arms the first tick of `period`.
    fn start(&self, period: Duration) {
        let now = Instant::now();
        let generation = {
            let mut armed = self.shared.arming.lock();
            armed.disarm();
            let _ = self.rx.try_recv();
            armed.arm()
        };
        // Beyond what Instant can represent: running, and never ticking.
        if let Some(first) = now.checked_add(period) {
            run_at(
                first,
                Tick {
                    shared: self.shared.clone(),
                    generation,
                    due: first,
                    period,
                },
            );
        }
    }

    /// Waits for the next tick and returns the time it was sent; at once if one is waiting.
    /// On a stopped ticker this blocks for good (use `ticker.c().recv_timeout(d)` to bound
    /// it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Ticker;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let ticker = Ticker::new(Duration::from_millis(1));
    ///     let (a, b) = (ticker.recv(), ticker.recv());
    ///     assert!(b > a);
    /// });
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Instant {
        self.rx
            .recv()
            .expect("scheduler: internal error: a ticker's channel closed")
    }

    /// The ticker's channel, Go's `t.C`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Ticker;
    ///
    /// let ticker = Ticker::new(Duration::from_secs(3600));
    /// assert!(ticker.c().try_recv().is_err(), "no tick yet");
    /// ```
    pub fn c(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

/// The callback of one arming's next tick: sends, then sets the tick after.
struct Tick {
    shared: Arc<Shared>,
    generation: u64,
    /// When this tick was due: later ticks are multiples of the period from here.
    due: Instant,
    period: Duration,
}

impl TimerAction for Tick {
    fn fire(self: Box<Self>) {
        let now = Instant::now();
        {
            let armed = self.shared.arming.lock();
            if !armed.is_current(self.generation) {
                return; // stopped or reset since
            }
            // Under the lock, so that a stop or reset after this finds the tick. Full: the
            // receiver has not taken the last one; this one is dropped.
            if let Err(TrySendError::Disconnected(_)) = self.shared.tx.try_send(now) {
                return; // every receiver is gone
            }
        }
        let next = next_tick(self.due, self.period, now);
        run_at(next, Tick { due: next, ..*self });
    }

    /// Dead once stopped or reset, or once nobody can receive.
    fn is_live(&self) -> bool {
        self.shared.arming.may_fire(self.generation) && !self.shared.tx.is_closed()
    }
}

/// `recv(ticker) -> at => ..` in [`select!`](crate::select!).
impl AsReceiver<Instant> for Ticker {
    fn as_receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}
