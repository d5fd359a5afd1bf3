//! [`after_func`] and [`AfterFunc`]: Go's `time.AfterFunc`.

use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::arming::Arming;
use crate::goroutine::task::Origin;
use crate::sched::blocking;
use crate::sched::current;
use crate::sched::shared::Shared as Runtime;
use crate::sched::spawn_error::SpawnError;
use crate::sched::timers::run_at;
use crate::wait::Site;
use crate::wait::timers::TimerAction;

/// Runs `f` in a new goroutine once `duration` has passed: Go's `time.AfterFunc`. The
/// goroutine belongs to the runtime of the calling goroutine; from outside a runtime, use
/// [`Runtime::after_func`](crate::Runtime::after_func).
///
/// The returned [`AfterFunc`] stops it or sets it again; dropping it does neither (as in Go,
/// where the result of `AfterFunc` is often ignored). The timer runs on the caller's worker,
/// and when it fires it only spawns the goroutine, so `f` may block, sleep and take its time.
/// A zero duration spawns it at once.
///
/// If the runtime is shutting down or gone when the timer fires, `f` does not run. At the
/// runtime's [`max_goroutines`](crate::Builder::max_goroutines) limit, the goroutine waits for
/// room (on a thread of the blocking pool) rather than being dropped. Pending timers do not
/// keep a runtime alive: dropping the `Runtime` waits for its goroutines, not for its
/// `after_func`s.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use scheduler::chan;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let (tx, rx) = chan::bounded(1);
///     scheduler::time::after_func(Duration::from_millis(5), move || {
///         tx.send("fired").unwrap();
///     });
///     assert_eq!(rx.recv(), Ok("fired"));
/// });
/// ```
///
/// # Panics
///
/// Outside a runtime (on a thread that is not one of its workers).
#[track_caller]
pub fn after_func<F>(duration: Duration, f: F) -> AfterFunc
where
    F: Fn() + Send + Sync + 'static,
{
    let site = Location::caller();
    let runtime = current::with_worker(|worker| worker.map(|w| Arc::downgrade(w.shared())));
    // Raised here, not in a closure, so that it names the caller's line.
    let Some(runtime) = runtime else {
        panic!(
            "scheduler: time::after_func called outside a runtime; call it inside a \
             goroutine, or use Runtime::after_func"
        );
    };
    AfterFunc::start(runtime, duration, Box::new(f), site)
}

/// [`after_func`] on `runtime`, from anywhere (for `Runtime::after_func`).
pub(crate) fn after_func_on<F>(
    runtime: &Arc<Runtime>,
    duration: Duration,
    f: F,
    site: Site,
) -> AfterFunc
where
    F: Fn() + Send + Sync + 'static,
{
    AfterFunc::start(Arc::downgrade(runtime), duration, Box::new(f), site)
}

/// A function set to run in a goroutine after a time: what [`after_func`] returns, Go's
/// `*time.Timer` of `time.AfterFunc`. Clones control the same timer.
///
/// # Guarantee
///
/// [`stop`](Self::stop) and [`reset`](Self::reset) decide against a firing at the same moment
/// under one lock: either the call returns true and that firing spawns nothing, or the
/// firing's goroutine is (or is about to be) spawned and the call returns false. So a true
/// from `stop` means `f` will not run for that arming.
pub struct AfterFunc {
    shared: Arc<Shared>,
}

/// What an [`AfterFunc`] shares with its callback and its goroutines.
struct Shared {
    arming: Arming,
    f: Box<dyn Fn() + Send + Sync>,
    /// Weak: a pending timer neither keeps a stopped runtime's memory (its stacks) nor runs
    /// `f` after it is gone.
    runtime: Weak<Runtime>,
    /// The line that called `after_func`: the goroutine's spawn site in the dump.
    site: Site,
}

impl AfterFunc {
    fn start(
        runtime: Weak<Runtime>,
        duration: Duration,
        f: Box<dyn Fn() + Send + Sync>,
        site: Site,
    ) -> AfterFunc {
        let timer = AfterFunc {
            shared: Arc::new(Shared {
                arming: Arming::new(),
                f,
                runtime,
                site,
            }),
        };
        timer.reset(duration);
        timer
    }

    /// Stops the timer: Go's `t.Stop()`. Returns true if this call stopped it before it
    /// fired (so `f` will not run for it); false if it had fired (its goroutine is spawned,
    /// or about to be) or was stopped already. It does not wait for `f` to finish.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let ran = Arc::new(AtomicBool::new(false));
    ///     let flag = ran.clone();
    ///     let timer = scheduler::time::after_func(Duration::from_millis(5), move || {
    ///         flag.store(true, Ordering::SeqCst);
    ///     });
    ///     assert!(timer.stop());
    ///     scheduler::time::sleep(Duration::from_millis(20));
    ///     assert!(!ran.load(Ordering::SeqCst));
    /// });
    /// ```
    pub fn stop(&self) -> bool {
        self.shared.arming.lock().disarm()
    }

    /// Stops the timer and sets it to run `f` again `duration` from now (Go's `t.Reset(d)`),
    /// also after it fired: `f` then runs once more. Returns what [`stop`](Self::stop) would
    /// have. The goroutine goes to the runtime given at the start, whoever calls this.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::chan;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let (tx, rx) = chan::unbounded();
    ///     let timer = scheduler::time::after_func(Duration::from_millis(1), move || {
    ///         tx.send(()).unwrap();
    ///     });
    ///     rx.recv().unwrap();
    ///     assert!(!timer.reset(Duration::from_millis(1)), "it had fired");
    ///     rx.recv().unwrap(); // and runs again
    /// });
    /// ```
    pub fn reset(&self, duration: Duration) -> bool {
        let now = Instant::now();
        let (pending, generation) = {
            let mut armed = self.shared.arming.lock();
            let pending = armed.disarm();
            let generation = armed.arm();
            if duration.is_zero() {
                armed.fire_once(generation);
            }
            (pending, generation)
        };
        if duration.is_zero() {
            self.shared.spawn();
        } else if let Some(deadline) = now.checked_add(duration) {
            run_at(
                deadline,
                Call {
                    shared: self.shared.clone(),
                    generation,
                },
            );
        }
        // Else: beyond what Instant can represent, it stays pending and never fires.
        pending
    }
}

impl Shared {
    /// Starts `f`'s goroutine, for a firing that won against `stop` and `reset`. Never
    /// blocks: it runs in a timer callback.
    fn spawn(self: &Arc<Shared>) {
        let Some(runtime) = self.runtime.upgrade() else {
            return; // the runtime is gone: nowhere to run `f`
        };
        let job = || {
            let shared = self.clone();
            move || (shared.f)()
        };
        let origin = || Origin {
            site: self.site,
            name: None,
        };
        let refused = match runtime.try_spawn(job(), false, origin()) {
            Ok(_) => return,
            Err(SpawnError::ShuttingDown) => return, // as Go's timers, when `main` returns
            Err(SpawnError::AtCapacity) => {
                // Wait for room on a pool thread, which may block.
                let (job, origin, waiting, site) = (job(), origin(), runtime.clone(), self.site);
                let waited = blocking::spawn(&runtime, move || {
                    if let Err(err) = waiting.try_spawn(job, true, origin) {
                        refused_note(site, &err);
                    }
                });
                match waited {
                    Ok(_) => return,
                    Err(err) => err,
                }
            }
            Err(err) => err,
        };
        refused_note(self.site, &refused);
    }
}

/// Says on stderr that an `after_func` could not start its goroutine (no stack, no pool
/// thread): there is nobody to return the error to.
fn refused_note(site: Site, err: &SpawnError) {
    eprintln!("scheduler: the time::after_func set at {site} could not start its goroutine: {err}");
}

/// The callback of one arming.
struct Call {
    shared: Arc<Shared>,
    generation: u64,
}

impl TimerAction for Call {
    fn fire(self: Box<Self>) {
        // Decided under the lock; the spawn after it (a `stop` from now on returns false).
        let fired = self.shared.arming.lock().fire_once(self.generation);
        if fired {
            self.shared.spawn();
        }
    }

    /// Dead once stopped or reset, or once its runtime is gone.
    fn is_live(&self) -> bool {
        self.shared.arming.may_fire(self.generation) && self.shared.runtime.strong_count() > 0
    }
}

impl Clone for AfterFunc {
    fn clone(&self) -> AfterFunc {
        AfterFunc {
            shared: self.shared.clone(),
        }
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterFunc")
            .field("site", &self.shared.site)
            .finish_non_exhaustive()
    }
}
