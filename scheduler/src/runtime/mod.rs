//! The [`Runtime`] handle: starting workers, entering the runtime, and shutting it down.

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker;

mod observe;
mod shutdown_error;

use shutdown_error::DROP_WARNING_AFTER;
pub use shutdown_error::ShutdownError;

use crate::builder::{BuildError, Builder};
use crate::dump::GoroutineDump;
use crate::goroutine::overflow::{self, AltStack};
use crate::goroutine::task::{Origin, TaskRef};
use crate::sched::blocking;
use crate::sched::config::Config;
use crate::sched::current;
use crate::sched::deadlock::{self, DEADLOCK_MESSAGE, FinishOnDrop, Verdict};
use crate::sched::join_handle::JoinHandle;
use crate::sched::monitor;
use crate::sched::panic_note;
use crate::sched::scoped::{self, Slot, Tally, WaitAllOnDrop};
use crate::sched::shared::{Phase, Shared};
use crate::sched::spawn_error::{SpawnError, spawned_or_panic};
use crate::sched::worker;
use crate::sigquit;
use crate::time::{self, AfterFunc};
use crate::wait::census;

/// A pool of worker threads ("procs") running goroutines: Go's runtime, as a value.
///
/// Goroutines are stackful coroutines. A goroutine that blocks on something of this crate
/// (`join`, a [`WaitGroup`](crate::WaitGroup), ...) parks, and its worker runs another one. A
/// goroutine that has started always runs on the same worker thread, so thread-locals and
/// `!Send` values held across a blocking call stay on their thread; goroutines that have not
/// started yet are balanced between workers by work stealing.
///
/// # Integrity
///
/// No goroutine and no worker thread outlives its runtime. Dropping a `Runtime` waits, without
/// a time limit, until every goroutine has finished, then joins the workers.
/// [`shutdown_timeout`](Self::shutdown_timeout) bounds that wait.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let answer = rt.block_on(|| {
///     let h = scheduler::spawn(|| 6 * 7);
///     h.join().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A runtime with default settings: procs from the `SCHEDULER_PROCS` environment
    /// variable, else the number of CPUs this process may use.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> Result<Runtime, BuildError> {
        Builder::new().build()
    }

    /// A [`Builder`] to choose procs and stack size.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn start(config: &Config) -> io::Result<Runtime> {
        let Config {
            procs,
            max_spare_workers,
            ..
        } = *config;
        let mut locals: Vec<Worker<TaskRef>> = (0..procs + max_spare_workers)
            .map(|_| Worker::new_lifo())
            .collect();
        let stealers = locals.iter().map(Worker::stealer).collect();
        let spare_locals = locals.split_off(procs);
        let shared = Arc::new(Shared::new(config, stealers, spare_locals));
        deadlock::register(&shared);
        let mut runtime = Runtime {
            shared: shared.clone(),
            threads: Vec::with_capacity(procs + 1),
        };
        // A goroutine that overflows its stack is reported by this handler, which runs on each
        // worker's own signal stack.
        overflow::install_handler();
        // A goroutine's panic message names the goroutine; SIGQUIT may print the dump.
        panic_note::install();
        sigquit::install_if_asked();
        for (index, local) in locals.into_iter().enumerate() {
            let shared = shared.clone();
            let signal_stack = AltStack::new()?;
            let thread = thread::Builder::new()
                .name(format!("scheduler-worker-{index}"))
                .spawn(move || {
                    let _signal_stack = signal_stack.enter(shared.stacks.usable());
                    worker::thread_main(index, shared, local);
                })?;
            // On error, `runtime` drops here and stops the workers started so far.
            runtime.threads.push(thread);
        }
        // The monitor exits when the phase reaches STOPPING, so it is joined with the workers.
        let monitor_shared = shared.clone();
        let thread = thread::Builder::new()
            .name("scheduler-monitor".to_owned())
            .spawn(move || monitor::run(monitor_shared))?;
        runtime.threads.push(thread);
        Ok(runtime)
    }

    /// Runs `f` as the main goroutine and blocks the calling thread until it returns.
    ///
    /// Returns `f`'s value. If `f` panics, the panic resumes here. May be called again after
    /// it returns, and from several threads at once; goroutines `f` spawned and did not wait
    /// for keep running after it returns.
    ///
    /// # Panics
    ///
    /// With `scheduler: all goroutines are asleep - deadlock!`, as Go does, when the main
    /// goroutine can never finish: every goroutine of the runtime is blocked in this crate's
    /// primitives, no timer is pending, and no thread exists that could wake one. The exact
    /// rule: called from a plain thread (not from a goroutine), `block_on` reports a deadlock
    /// when every worker sleeps with nothing queued and no timer pending, the process-wide
    /// timer thread (if any) has no live timer, no [`spawn_blocking`](Self::spawn_blocking)
    /// job runs or waits, and every other thread of the process is one that cannot wake a
    /// goroutine: a thread waiting in this crate with no deadline (a `recv`, a `join`, another
    /// `block_on`), a thread of another runtime that is itself asleep for good, or a thread
    /// that never used this crate (made no channel, `WaitGroup` or `Context`, called no
    /// `block_on` or `spawn`) and was started by a thread that had not either, so holds none
    /// of its values: the test harness's threads, a logger started before the program's
    /// first channel. A thread that may hold a value of the crate (it used the crate, or was
    /// started by one that had, such as a thread a goroutine started) keeps detection off
    /// while it lives, so a goroutine waiting for a plain thread that will send is never
    /// reported. This works under `cargo test`, tests in parallel included.
    ///
    /// The panic message goes on with the dump of the goroutines ([`GoroutineDump`]): who
    /// waits on what, and where. Before the panic, the runtime is shut down as by
    /// [`shutdown_timeout`](Self::shutdown_timeout) at its deadline: every goroutine is
    /// cancelled and unwound, and the runtime runs nothing more.
    ///
    /// ```should_panic
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let (_tx, rx) = scheduler::chan::bounded::<u32>(0);
    ///     rx.recv() // nobody will ever send
    /// });
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// assert_eq!(rt.block_on(|| scheduler::procs()), 1);
    /// assert_eq!(rt.block_on(|| "again"), "again");
    /// ```
    ///
    /// The closure may borrow from the caller, since `block_on` returns only once it is gone
    /// (docs/design.md, "Borrowing goroutines"):
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let mut words = vec!["go", "routines"];
    /// let total = rt.block_on(|| {
    ///     words.push("borrowed");
    ///     words.iter().map(|w| w.len()).sum::<usize>()
    /// });
    /// assert_eq!(total, 18);
    /// assert_eq!(words.len(), 3);
    /// ```
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        census::note_use();
        let site = Location::caller();
        let origin = Origin {
            site,
            name: Some(Arc::from("main")),
        };
        // The main goroutine may borrow from this frame: this call returns (or unwinds) only
        // once the tally says its closure is gone (`crate::sched::scoped`).
        let tally = Arc::new(Tally::default());
        tally.add();
        if current::on_worker() {
            // A goroutine: the join parks it. No deadlock detection (a goroutine of this
            // runtime would be one of the sleepers; one of another runtime brings other
            // threads anyway).
            // SAFETY: the tally is waited for below before this frame ends; a refused spawn
            // drops the closure, counted out, before it panics.
            let (main, slot) = unsafe { scoped::erase(&tally, f) };
            let handle = spawned_or_panic(self.shared.try_spawn(main, true, origin));
            let task = handle.task_ref();
            // Caught: a caller cancelled while it joins must not leave before the goroutine
            // that borrows from it; it cancels it instead, and waits.
            let joined = panic::catch_unwind(AssertUnwindSafe(|| handle.join_at(site)));
            if joined.is_err()
                && let Some(task) = task
            {
                tally.track(task);
                tally.cancel_all();
            }
            tally.wait_all(site);
            current::continue_cancellation();
            return take_main_result(&slot, joined.err());
        }
        let watch = self.shared.deadlock.watch();
        let finish = FinishOnDrop(watch.clone());
        // Should anything below unwind (only a bug or the deadlock panic, after every goroutine
        // ended), the goroutine that borrows from this frame has ended first.
        let wait_on_unwind = WaitAllOnDrop {
            tally: &tally,
            site,
        };
        // SAFETY: as above: `wait_on_unwind` waits for the tally however this frame ends.
        let (main, slot) = unsafe {
            scoped::erase(&tally, move || {
                let _finish = finish;
                f()
            })
        };
        let handle = self.shared.spawn(main, origin);
        let mut seen = 0;
        let mut recheck = None;
        while !watch.wait(&mut seen, recheck) {
            recheck = match deadlock::verdict(&self.shared) {
                Verdict::Running => None,
                // Asleep, but a thread outside may still wake it: no worker will say
                // when that thread ends or starts to wait, so look again in a while.
                Verdict::AsleepButWatched => Some(deadlock::RECHECK),
                Verdict::Deadlocked => {
                    self.shared.deadlock.unwatch(&watch);
                    let dump = GoroutineDump::of(&self.shared);
                    if cfg!(panic = "abort") {
                        // Cancelling the sleepers would unwind them, which aborts without
                        // a word: say why the process ends first (this panic aborts it).
                        panic!("{DEADLOCK_MESSAGE}\n\n{dump}");
                    }
                    self.shared.set_phase(Phase::Cancelling);
                    self.shared.wait_all_done(None);
                    panic!("{DEADLOCK_MESSAGE}\n\n{dump}");
                }
            };
        }
        self.shared.deadlock.unwatch(&watch);
        let joined = handle.join_at(site);
        drop(wait_on_unwind);
        take_main_result(&slot, joined.err())
    }

    /// Spawns a goroutine from anywhere: a plain thread, or a goroutine of any runtime.
    ///
    /// From outside, it goes on the global queue, and a parked worker is woken for it unless
    /// another worker is already looking for work.
    ///
    /// At the [`Builder::max_goroutines`] limit it waits for room, blocking the calling thread
    /// (or parking the calling goroutine).
    ///
    /// # Panics
    ///
    /// When the goroutine is refused, as [`try_spawn`](Self::try_spawn) describes.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        census::note_use();
        self.shared.spawn(f, Origin::here())
    }

    /// Spawns a goroutine from anywhere, or says at once why it was refused: the runtime is
    /// shutting down (a [`shutdown_timeout`](Self::shutdown_timeout) began), it is at its
    /// [`Builder::max_goroutines`] limit, or no stack could be reserved for it (see
    /// [`crate::try_spawn`]).
    ///
    /// # Errors
    ///
    /// [`SpawnError::ShuttingDown`], [`SpawnError::AtCapacity`] or [`SpawnError::Stacks`].
    #[track_caller]
    pub fn try_spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        census::note_use();
        self.shared.try_spawn(f, false, Origin::here())
    }

    /// Runs `f` on the runtime's blocking pool, from anywhere: a plain thread, or a goroutine
    /// of any runtime. See [`crate::spawn_blocking`] for when and why.
    ///
    /// The returned [`JoinHandle`] joins it like a goroutine: a goroutine that joins it
    /// parks, a plain thread blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// // From a plain thread: `join` blocks this thread until the job is done.
    /// let handle = rt.spawn_blocking(|| std::fs::metadata(".").map(|m| m.is_dir()));
    /// assert!(handle.join().unwrap().unwrap());
    /// ```
    ///
    /// # Panics
    ///
    /// When the job is refused, as [`try_spawn_blocking`](Self::try_spawn_blocking)
    /// describes.
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawned_or_panic(self.try_spawn_blocking(f))
    }

    /// Like [`spawn_blocking`](Self::spawn_blocking), but says why a job was refused: the
    /// runtime is shutting down (a [`shutdown_timeout`](Self::shutdown_timeout) began), or
    /// the pool has no thread and cannot start one.
    ///
    /// # Errors
    ///
    /// [`SpawnError::ShuttingDown`] or [`SpawnError::BlockingThread`].
    pub fn try_spawn_blocking<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        census::note_use();
        blocking::spawn(&self.shared, f)
    }

    /// Runs `f` in a new goroutine of this runtime once `duration` has passed, from anywhere:
    /// Go's `time.AfterFunc`. The same as [`time::after_func`](fn@crate::time::after_func) (which
    /// uses the runtime of the calling goroutine); from a plain thread the timer runs on the
    /// process-wide timer thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::chan;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (tx, rx) = chan::bounded(1);
    /// let timer = rt.after_func(Duration::from_millis(1), move || {
    ///     assert!(scheduler::in_goroutine());
    ///     tx.send(42).unwrap();
    /// });
    /// assert_eq!(rx.recv(), Ok(42)); // this thread blocks; the goroutine sends
    /// assert!(!timer.stop(), "it had fired");
    /// ```
    #[track_caller]
    pub fn after_func<F>(&self, duration: Duration, f: F) -> AfterFunc
    where
        F: Fn() + Send + Sync + 'static,
    {
        census::note_use();
        time::after_func_on(&self.shared, duration, f, Location::caller())
    }

    /// The number of worker threads.
    pub fn procs(&self) -> usize {
        self.shared.procs
    }

    /// Goroutines spawned and not yet finished, the main goroutine of `block_on` included.
    pub fn num_goroutines(&self) -> usize {
        self.shared.live()
    }

    /// Waits up to `timeout` for every goroutine to finish, then stops the workers.
    ///
    /// From the call on, the runtime admits no new goroutine: [`try_spawn`](Self::try_spawn)
    /// and [`crate::try_spawn`] return [`SpawnError::ShuttingDown`], and `spawn` panics with
    /// that message, also from the runtime's own goroutines. The goroutines already admitted,
    /// started or not, run on. (Dropping the runtime, by contrast, waits for everything,
    /// goroutines spawned meanwhile included.)
    ///
    /// Goroutines still unfinished at the deadline are cancelled: those that never started are
    /// dropped, and those blocked in this crate's primitives are unwound from their suspension
    /// point (their destructors run; their `join` returns `Err` with a
    /// [`Cancelled`](crate::Cancelled) payload). A goroutine busy in code that never yields or
    /// blocks cannot be interrupted: the call waits for it to reach a suspension point. (A
    /// loop that calls [`checkpoint`](crate::checkpoint) reaches one within about a time
    /// slice, and is unwound there.)
    ///
    /// # Errors
    ///
    /// [`ShutdownError`] with the number of goroutines that had to be cancelled.
    ///
    /// # Panics
    ///
    /// When called from one of this runtime's own goroutines or blocking jobs (it would wait
    /// for itself).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.spawn(|| ());
    /// rt.shutdown_timeout(Duration::from_secs(5)).expect("finished in time");
    /// ```
    #[track_caller]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Result<(), ShutdownError> {
        if !self.threads.is_empty()
            && !self.called_from_own_goroutine()
            && !self.called_from_own_blocking_job()
        {
            // From here on, spawns are refused; the goroutines already admitted run on.
            self.shared.set_phase(Phase::Draining);
        }
        self.shutdown(Instant::now().checked_add(timeout))
    }

    /// The runtime's shared state, for the spawning faces beside this one.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn called_from_own_goroutine(&self) -> bool {
        current::with_worker(|w| w.is_some_and(|w| w.belongs_to(&self.shared)))
    }

    fn called_from_own_blocking_job(&self) -> bool {
        !self.threads.is_empty() && self.shared.blocking.is_current_thread()
    }

    /// Waits for the goroutines until `deadline`, cancels the rest, and stops the workers.
    ///
    /// # Panics
    ///
    /// From one of the runtime's own goroutines or blocking jobs, at the caller's line.
    #[track_caller]
    fn shutdown(&mut self, deadline: Option<Instant>) -> Result<(), ShutdownError> {
        if self.threads.is_empty() {
            return Ok(());
        }
        if self.called_from_own_goroutine() {
            panic!(
                "scheduler: shutdown_timeout called from one of the runtime's own goroutines \
                 (it would wait for itself)"
            );
        }
        if self.called_from_own_blocking_job() {
            panic!(
                "scheduler: shutdown_timeout called from one of the runtime's own blocking \
                 jobs (it would wait for itself)"
            );
        }
        let mut unfinished = GoroutineDump::default();
        let remaining = match deadline {
            Some(_) => self.shared.wait_all_done(deadline),
            None => {
                // Waits for ever, but not in silence: after a while, say who is still live.
                let later = Instant::now().checked_add(DROP_WARNING_AFTER);
                if self.shared.wait_all_done(later) > 0 {
                    let dump = GoroutineDump::of(&self.shared);
                    eprintln!(
                        "scheduler: dropping the runtime has waited {DROP_WARNING_AFTER:?} for \
                         {} goroutine(s) still live; Runtime::drop waits for every goroutine \
                         (Runtime::shutdown_timeout bounds the wait and cancels the rest):\n\n\
                         {dump}",
                        dump.len()
                    );
                }
                self.shared.wait_all_done(None)
            }
        };
        if remaining > 0 {
            unfinished = GoroutineDump::of(&self.shared);
            self.shared.set_phase(Phase::Cancelling);
            self.shared.wait_all_done(None);
        }
        // No goroutine is left to submit blocking jobs: wait for those still running or
        // queued, up to the same deadline, then join the pool's threads.
        let blocking = self.shared.blocking.close_and_join(deadline);
        self.shared.set_phase(Phase::Stopping);
        for thread in self.threads.drain(..) {
            // Workers catch every goroutine panic, so a join error would be a runtime bug that
            // already aborted the process.
            let _ = thread.join();
        }
        // The monitor, which starts spare workers, has exited with the threads above.
        self.shared.spares.join_all();
        match (remaining, blocking) {
            (0, 0) => Ok(()),
            (goroutines, blocking) => Err(ShutdownError {
                remaining: goroutines,
                blocking,
                unfinished,
            }),
        }
    }
}

/// The main goroutine's value, or the resumed panic (or cancellation) of its closure, or of
/// the goroutine itself if its closure never ran (`joined`, its join's error).
fn take_main_result<T>(slot: &Slot<T>, joined: Option<Box<dyn Any + Send>>) -> T {
    match slot.take() {
        Some(Ok(value)) => value,
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => panic::resume_unwind(joined.unwrap_or_else(|| Box::new(crate::wait::Cancelled))),
    }
}

/// `build` sits here, beside what it starts, so that the builder (which only checks and
/// records settings) needs nothing of the runtime.
impl Builder {
    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the bad setting, or the OS error if a thread cannot start.
    pub fn build(self) -> Result<Runtime, BuildError> {
        Runtime::start(&self.config()?).map_err(BuildError::Thread)
    }
}

impl Drop for Runtime {
    /// Waits for every goroutine, then joins the worker threads.
    ///
    /// Dropped by one of its own goroutines or blocking jobs, it cannot wait for itself: the
    /// runtime then winds down on its own, its workers exiting when the last goroutine
    /// finishes and its blocking threads when their last job does.
    fn drop(&mut self) {
        if self.called_from_own_goroutine() {
            self.shared.detach();
            self.threads.clear();
            return;
        }
        if self.called_from_own_blocking_job() {
            self.shared.detach();
            self.threads.clear();
            // No goroutine may be left to notice the detach when it finishes: look now.
            self.shared.note_if_all_done();
            return;
        }
        let _ = self.shutdown(None);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("procs", &self.procs())
            .field("goroutines", &self.num_goroutines())
            .finish()
    }
}
