//! [`Timer`]: Go's `time.NewTimer`, with `Stop` and `Reset` as of Go 1.23.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arming::Arming;
use crate::chan::{self, AsReceiver, Receiver, Sender};
use crate::sched::timers::run_at;
use crate::wait::census;
use crate::wait::timers::TimerAction;

/// A timer that sends the time once on its channel when it fires: Go's `time.NewTimer`, with
/// [`stop`](Self::stop) and [`reset`](Self::reset) as Go 1.23 defines them.
///
/// Receive with [`recv`](Self::recv), or through [`c`](Self::c), the channel (Go's `t.C`),
/// which also has `recv_timeout`, `recv_deadline` and `try_recv`. In
/// [`select!`](crate::select!), write `recv(timer.c()) -> at => ..` or just
/// `recv(timer) -> at => ..` (a `Timer` is accepted wherever a receiver is); the arm's value
/// is `Ok(instant)`, never an error.
///
/// Its channel holds one value, the [`Instant`] at which the timer fired, and is never
/// closed: after that value, and on a timer that was stopped and not reset, a receive blocks
/// (in `block_on`'s goroutines, a wait that nothing else can end is reported as a deadlock).
///
/// The timer runs on the worker of the goroutine that armed it (outside a runtime, on the
/// process-wide timer thread). Dropping the `Timer` (and every clone of its channel's
/// receiver) abandons it: it does nothing when it comes due.
///
/// # Guarantee
///
/// After `stop` or `reset` returns, no value from an earlier arming is received: a value the
/// timer had sent but nobody had received yet is taken out of the channel, and a firing that
/// happens at the same moment either came first (and its value is taken out) or does
/// nothing. Each firing is either received or counted by exactly one `stop` or `reset` that
/// returns true.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use scheduler::{chan, select, time::Timer};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let start = Instant::now();
///     let timer = Timer::new(Duration::from_millis(5));
///     let fired = timer.recv();
///     assert!(fired >= start + Duration::from_millis(5));
///
///     // A time-out that is pushed back while work keeps arriving.
///     let (tx, rx) = chan::bounded::<u32>(1);
///     tx.send(1).unwrap();
///     let idle = Timer::new(Duration::from_millis(20));
///     let mut got = 0;
///     loop {
///         select! {
///             recv(rx) -> v => { got += v.unwrap(); idle.reset(Duration::from_millis(20)); }
///             recv(idle.c()) -> _ => break,
///         }
///     }
///     assert_eq!(got, 1);
/// });
/// ```
pub struct Timer {
    shared: Arc<Shared>,
    /// The timer's channel, Go's `t.C`: its only receiver unless the user clones it.
    rx: Receiver<Instant>,
}

/// What the timer shares with the callback it set.
struct Shared {
    arming: Arming,
    /// Sends under `arming`'s lock only, never blocking: the buffer has room for the one value
    /// of an arming, since `stop` and `reset` empty it before they arm again.
    tx: Sender<Instant>,
}

impl Timer {
    /// A timer that sends the time on its channel once, `duration` from now. A zero duration
    /// sends it at once (Go: a timer with a duration of zero or less fires immediately); a
    /// duration beyond what [`Instant`] can represent never fires.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Timer;
    ///
    /// // On a plain thread too: the timer then runs on the process-wide timer thread.
    /// let timer = Timer::new(Duration::ZERO);
    /// assert!(timer.c().try_recv().is_ok(), "a zero timer has fired already");
    /// ```
    pub fn new(duration: Duration) -> Timer {
        census::note_use();
        let (tx, rx) = chan::never_closing(1);
        let timer = Timer {
            shared: Arc::new(Shared {
                arming: Arming::new(),
                tx,
            }),
            rx,
        };
        timer.reset(duration);
        timer
    }

    /// Stops the timer: Go's `t.Stop()` (Go 1.23). Returns true if this call stopped it
    /// before its value was received (it had not fired, or it had fired and its value was
    /// still in the channel, which this takes out); false if it was stopped already, or its
    /// value has been received.
    ///
    /// After `stop`, a receive blocks until the timer is [`reset`](Self::reset).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Timer;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let timer = Timer::new(Duration::from_secs(3600));
    ///     assert!(timer.stop(), "it was pending");
    ///     assert!(!timer.stop(), "stopped already");
    ///
    ///     let timer = Timer::new(Duration::from_millis(1));
    ///     timer.recv();
    ///     assert!(!timer.stop(), "it fired and its value was received");
    /// });
    /// ```
    pub fn stop(&self) -> bool {
        let mut armed = self.shared.arming.lock();
        let pending = armed.disarm();
        // Under the lock: a value sent by the firing of the arming just ended is in the
        // buffer now or was received already; none can come later.
        let drained = self.rx.try_recv().is_ok();
        pending || drained
    }

    /// Stops the timer and arms it again to fire `duration` from now: Go's `t.Reset(d)` (Go
    /// 1.23). Returns what [`stop`](Self::stop) would have: whether the earlier arming was
    /// stopped before its value was received. No value of the earlier arming is received
    /// after this returns; a zero duration sends the time at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Timer;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let timer = Timer::new(Duration::from_millis(1));
    ///     scheduler::time::sleep(Duration::from_millis(5));
    ///     // It fired, but nobody received: the stale value goes, and true says so.
    ///     assert!(timer.reset(Duration::from_secs(3600)));
    ///     assert!(timer.c().try_recv().is_err(), "no stale value");
    ///     assert!(timer.reset(Duration::from_millis(1)), "pending again");
    ///     timer.recv();
    /// });
    /// ```
    pub fn reset(&self, duration: Duration) -> bool {
        let now = Instant::now();
        let mut armed = self.shared.arming.lock();
        let pending = armed.disarm();
        let drained = self.rx.try_recv().is_ok();
        let generation = armed.arm();
        if duration.is_zero() {
            // Fires now, without a trip through the heap.
            armed.fire_once(generation);
            self.shared.send(now);
        } else if let Some(deadline) = now.checked_add(duration) {
            drop(armed);
            run_at(
                deadline,
                Fire {
                    shared: self.shared.clone(),
                    generation,
                },
            );
        }
        // Else: beyond what Instant can represent, it stays pending and never fires.
        pending || drained
    }

    /// Waits until the timer fires and returns the time at which it did; at once if it has
    /// fired and its value was not received yet. Inside a goroutine only the goroutine waits.
    ///
    /// On a timer that has been received from or stopped, and not reset since, this blocks
    /// for good, as receiving from Go's `t.C` would: for a bounded wait use
    /// `timer.c().recv_timeout(d)`, or `recv_ctx`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use scheduler::time::Timer;
    ///
    /// let start = Instant::now();
    /// let timer = Timer::new(Duration::from_millis(2));
    /// assert!(timer.recv() >= start + Duration::from_millis(2));
    /// // Received: a second receive would block; bound it.
    /// assert!(timer.c().recv_timeout(Duration::from_millis(5)).is_err());
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Instant {
        // `Receiver::recv` takes the caller's line too (`#[track_caller]` on both): the wait
        // shows at the line that called this.
        self.rx
            .recv()
            .expect("scheduler: internal error: a timer's channel closed")
    }

    /// The timer's channel, Go's `t.C`: for [`select!`](crate::select!), and for
    /// `recv_timeout`, `recv_deadline`, `recv_ctx` and `try_recv`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::time::Timer;
    ///
    /// let timer = Timer::new(Duration::from_secs(3600));
    /// assert!(timer.c().recv_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn c(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

impl Shared {
    /// Sends the time of a firing. Called under `arming`'s lock.
    fn send(&self, at: Instant) {
        // Never full (see `tx`); disconnected when every receiver is gone: nobody to tell.
        let _ = self.tx.try_send(at);
    }
}

/// The callback of one arming.
struct Fire {
    shared: Arc<Shared>,
    generation: u64,
}

impl TimerAction for Fire {
    fn fire(self: Box<Self>) {
        let now = Instant::now();
        let mut armed = self.shared.arming.lock();
        if armed.fire_once(self.generation) {
            // Still under the lock: a `stop` or `reset` after this finds the value.
            self.shared.send(now);
        }
    }

    /// Dead once stopped or reset, or once nobody can receive.
    fn is_live(&self) -> bool {
        self.shared.arming.may_fire(self.generation) && !self.shared.tx.is_closed()
    }
}

/// `recv(timer) -> at => ..` in [`select!`](crate::select!).
impl AsReceiver<Instant> for Timer {
    fn as_receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}
