//! Configuring and starting a [`Runtime`](crate::Runtime).

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::goroutine::stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
use crate::sched::blocking;
use crate::sched::config::Config;
use crate::sched::monitor::DEFAULT_TIME_SLICE;
use crate::sched::stall::DEFAULT_STALL_THRESHOLD;

/// The most worker threads a runtime may have.
pub const MAX_PROCS: usize = 4096;

/// The environment variable [`Runtime::new`](crate::Runtime::new) and [`Builder`] read for the number of procs
/// when none is set explicitly (Go's `GOMAXPROCS`).
pub const PROCS_ENV: &str = "SCHEDULER_PROCS";

/// Builds a [`Runtime`](crate::Runtime) with chosen settings.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder()
///     .procs(2)
///     .stack_size(128 * 1024)
///     .build()
///     .expect("valid settings");
/// assert_eq!(rt.procs(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    procs: Option<usize>,
    max_spare_workers: Option<usize>,
    stack_size: usize,
    max_goroutines: Option<usize>,
    blocking: blocking::Config,
    time_slice: Duration,
    stall_warnings: Option<Option<Duration>>,
    trace: bool,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Default settings: procs from `SCHEDULER_PROCS`, else the number of CPUs this process
    /// may use; stacks of [`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE); a time slice of
    /// 10 ms; at most 512 blocking threads, each kept 10 seconds when idle.
    pub fn new() -> Builder {
        Builder {
            procs: None,
            max_spare_workers: None,
            stack_size: DEFAULT_STACK_SIZE,
            max_goroutines: None,
            blocking: blocking::Config::default(),
            time_slice: DEFAULT_TIME_SLICE,
            stall_warnings: None,
            trace: false,
        }
    }

    /// Number of worker threads running goroutines in parallel (Go's `GOMAXPROCS`).
    /// `build` rejects 0 and anything above [`MAX_PROCS`].
    pub fn procs(mut self, procs: usize) -> Builder {
        self.procs = Some(procs);
        self
    }

    /// The most *spare* workers the runtime runs at once: threads its monitor starts when a
    /// worker has been blocked in a system call (or anything else that blocks its thread: a
    /// std lock, `std::thread::sleep`) for a whole time slice while goroutines that have not
    /// started wait in a queue, so that those keep running on `procs` threads (Go hands the
    /// blocked thread's P to another thread the same way). A spare runs goroutines like any
    /// worker and retires as soon as none of the goroutines it started is left. The goroutines
    /// the blocked worker started wait for it regardless: a started goroutine never changes
    /// thread. A goroutine that blocks its thread on purpose should use
    /// [`spawn_blocking`](crate::spawn_blocking) instead; spares are the safety net for the
    /// ones that do not.
    ///
    /// `0` turns spares off. `build` rejects more than [`MAX_PROCS`]. Default: `procs`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let (tx, rx) = mpsc::channel();
    ///     // Queued behind the main goroutine on the only worker...
    ///     let sender = scheduler::spawn(move || tx.send("from a spare worker").unwrap());
    ///     // ...which blocks its thread until that goroutine has run: a spare runs it.
    ///     let got = rx.recv_timeout(Duration::from_secs(30));
    ///     assert_eq!(got, Ok("from a spare worker"));
    ///     sender.join().unwrap();
    /// });
    /// ```
    pub fn max_spare_workers(mut self, n: usize) -> Builder {
        self.max_spare_workers = Some(n);
        self
    }

    /// Usable stack size of each goroutine, in bytes, rounded up to whole pages; a guard page
    /// sits below it. `build` rejects sizes outside
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)..=[`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE).
    ///
    /// A goroutine that overflows its stack aborts the process (SIGABRT) after printing
    /// `scheduler: goroutine <id> overflowed its stack (<size> bytes); raise it with
    /// Builder::stack_size` on stderr. Default: [`DEFAULT_STACK_SIZE`].
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// The most goroutines the runtime holds at once (spawned and not finished, the main
    /// goroutine of `block_on` included): admission control, which Go does not have. At the
    /// limit, [`try_spawn`](crate::try_spawn) fails fast with
    /// [`SpawnError::AtCapacity`](crate::SpawnError::AtCapacity), so a server can reject a
    /// request as early as possible, and [`spawn`](crate::spawn) waits for room: it parks the
    /// spawning goroutine (or blocks the spawning thread) until a goroutine finishes, which is
    /// back pressure on whoever spawns. `build` rejects 0. Default: no limit.
    ///
    /// A program whose goroutines all wait in `spawn` for each other to finish deadlocks;
    /// `block_on` reports it as one.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::SpawnError;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).max_goroutines(2).build().unwrap();
    /// rt.block_on(|| {
    ///     // The main goroutine is one of the two.
    ///     let (tx, rx) = scheduler::chan::bounded::<()>(0);
    ///     let held = scheduler::try_spawn(move || rx.recv()).expect("room for one more");
    ///     assert!(matches!(scheduler::try_spawn(|| ()), Err(SpawnError::AtCapacity)));
    ///     tx.send(()).unwrap();
    ///     held.join().unwrap().unwrap();
    ///     // `spawn` would have waited until the one above finished.
    ///     scheduler::spawn(|| ()).join().unwrap();
    /// });
    /// ```
    pub fn max_goroutines(mut self, n: usize) -> Builder {
        self.max_goroutines = Some(n);
        self
    }

    /// The most threads the runtime starts for [`spawn_blocking`](crate::spawn_blocking) jobs
    /// at once. Jobs beyond that wait in a FIFO queue for a thread to finish its job: a
    /// flood of blocking work then waits rather than exhausting the system's threads.
    /// `build` rejects 0. Default: 512.
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder()
    ///     .procs(1)
    ///     .max_blocking_threads(4)
    ///     .build()
    ///     .unwrap();
    /// let handles: Vec<_> = (0..16).map(|i| rt.spawn_blocking(move || i * 2)).collect();
    /// let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(sum, 240);
    /// ```
    pub fn max_blocking_threads(mut self, threads: usize) -> Builder {
        self.blocking.max_threads = threads;
        self
    }

    /// How long a blocking thread waits for a new job before it exits. Threads are started
    /// as blocking jobs need them and retire after this much idleness, so a runtime that
    /// stopped using [`spawn_blocking`](crate::spawn_blocking) ends up with none. Default: 10
    /// seconds.
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Builder {
        self.blocking.keep_alive = keep_alive;
        self
    }

    /// How long a goroutine may run without suspending before the runtime's monitor asks it
    /// to yield at its next [`checkpoint`](crate::checkpoint) (Go's 10 ms preemption slice).
    /// `build` rejects zero.
    ///
    /// The monitor thread looks at the workers every quarter slice while any of them is awake,
    /// so a goroutine that calls `checkpoint` in its loop yields after one to one and a quarter
    /// slices (later if the OS is slow to run the monitor); when every worker is idle, the
    /// monitor sleeps until one wakes up. The same look notices a worker stuck for a slice
    /// with goroutines that have not started in its queue, and wakes an idle worker to take
    /// them. A shorter slice makes loops with checkpoints share their worker more finely at
    /// the cost of more wake-ups of the monitor; it never interrupts code between checkpoints.
    /// Default: 10 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = scheduler::Runtime::builder()
    ///     .procs(1)
    ///     .time_slice(Duration::from_millis(2))
    ///     .build()
    ///     .expect("valid settings");
    /// // On one proc, a loop with checkpoints lets the other goroutine run.
    /// let turns = rt.block_on(|| {
    ///     let (tx, rx) = scheduler::chan::bounded(1);
    ///     scheduler::spawn(move || tx.send("the other goroutine ran").unwrap());
    ///     let mut turns = 0_u64;
    ///     loop {
    ///         if let Ok(msg) = rx.try_recv() {
    ///             assert_eq!(msg, "the other goroutine ran");
    ///             return turns;
    ///         }
    ///         turns += 1;
    ///         scheduler::checkpoint(); // yields here once the slice is used up
    ///     }
    /// });
    /// assert!(turns > 0);
    ///
    /// let err = scheduler::Runtime::builder().time_slice(Duration::ZERO).build();
    /// assert!(matches!(err, Err(scheduler::BuildError::ZeroTimeSlice)));
    /// ```
    pub fn time_slice(mut self, slice: Duration) -> Builder {
        self.time_slice = slice;
        self
    }

    /// When to warn that a goroutine stalls its worker: `Some(threshold)` prints one line on
    /// stderr when a goroutine has kept its worker for `threshold` without suspending while
    /// other goroutines wait behind it on that worker, either blocked in the kernel (a std
    /// lock, `std::thread::sleep`, blocking I/O: use [`spawn_blocking`](crate::spawn_blocking))
    /// or computing (call [`checkpoint`](crate::checkpoint)); `None` prints nothing. The line
    /// names the goroutine, its spawn site, the worker, how long and the fix; lines are
    /// rate-limited to one a second per runtime. Incidents are counted in
    /// [`Metrics::stalls_blocked`](crate::Metrics::stalls_blocked) and
    /// [`Metrics::stalls_busy`](crate::Metrics::stalls_busy) either way.
    ///
    /// Default: on, after 100 ms, unless the environment variable `SCHEDULER_STALL_WARNINGS`
    /// is `0` (or `off`, `false`, `no`); an explicit setting here ignores the variable.
    ///
    /// ```text
    /// scheduler: goroutine 7 "fetch" (spawned at src/main.rs:12:5) has blocked worker 0 for
    /// 250ms with 3 goroutine(s) waiting behind it: its thread waits in the kernel (...)
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let quiet = scheduler::Runtime::builder().stall_warnings(None).build().unwrap();
    /// let strict = scheduler::Runtime::builder()
    ///     .stall_warnings(Some(Duration::from_millis(20)))
    ///     .build()
    ///     .unwrap();
    /// # drop((quiet, strict));
    /// ```
    pub fn stall_warnings(mut self, threshold: Option<Duration>) -> Builder {
        self.stall_warnings = Some(threshold);
        self
    }

    /// Records an execution trace from the runtime's start, as if
    /// [`Runtime::start_trace`](crate::Runtime::start_trace) were called before anything
    /// else; [`Runtime::stop_trace`](crate::Runtime::stop_trace) hands it over. Default: off,
    /// and while off each place that would record an event costs one load of a flag.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).trace(true).build()?;
    /// rt.block_on(|| scheduler::yield_now());
    /// let trace = rt.stop_trace();
    /// assert!(trace.runs().count() >= 2, "the main goroutine ran, yielded and ran again");
    /// # Ok::<(), scheduler::BuildError>(())
    /// ```
    pub fn trace(mut self, on: bool) -> Builder {
        self.trace = on;
        self
    }

    /// Checks the settings and resolves the defaults: the settings a runtime starts with.
    pub(crate) fn config(self) -> Result<Config, BuildError> {
        let procs = match self.procs {
            Some(procs) => procs,
            None => procs_from_env()?,
        };
        if procs == 0 {
            return Err(BuildError::ZeroProcs);
        }
        if procs > MAX_PROCS {
            return Err(BuildError::TooManyProcs(procs));
        }
        if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&self.stack_size) {
            return Err(BuildError::StackSize(self.stack_size));
        }
        if self.max_goroutines == Some(0) {
            return Err(BuildError::ZeroMaxGoroutines);
        }
        if self.blocking.max_threads == 0 {
            return Err(BuildError::ZeroBlockingThreads);
        }
        if self.time_slice.is_zero() {
            return Err(BuildError::ZeroTimeSlice);
        }
        let max_spare_workers = self.max_spare_workers.unwrap_or(procs);
        if max_spare_workers > MAX_PROCS {
            return Err(BuildError::TooManySpareWorkers(max_spare_workers));
        }
        Ok(Config {
            procs,
            max_spare_workers,
            stack_size: self.stack_size,
            max_goroutines: self.max_goroutines,
            blocking: self.blocking,
            time_slice: self.time_slice,
            stall_warnings: match self.stall_warnings {
                Some(threshold) => (threshold, true),
                None => (Some(DEFAULT_STALL_THRESHOLD), false),
            },
            trace: self.trace,
        })
    }
}

fn procs_from_env() -> Result<usize, BuildError> {
    match std::env::var(PROCS_ENV) {
        Ok(value) => value
            .trim()
            .parse::<usize>()
            .map_err(|_| BuildError::ProcsEnv(value)),
        Err(std::env::VarError::NotPresent) => Ok(std::thread::available_parallelism()
            .map(NonZeroUsize::get)
            .unwrap_or(1)),
        Err(std::env::VarError::NotUnicode(value)) => {
            Err(BuildError::ProcsEnv(value.to_string_lossy().into_owned()))
        }
    }
}

/// Why a [`Runtime`](crate::Runtime) could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `procs(0)`: a runtime needs at least one worker.
    ZeroProcs,
    /// More procs than [`MAX_PROCS`].
    TooManyProcs(usize),
    /// More spare workers than [`MAX_PROCS`].
    TooManySpareWorkers(usize),
    /// `SCHEDULER_PROCS` is not a number.
    ProcsEnv(String),
    /// A stack size outside `MIN_STACK_SIZE..=MAX_STACK_SIZE`.
    StackSize(usize),
    /// `max_goroutines(0)`: a runtime must hold at least its main goroutine.
    ZeroMaxGoroutines,
    /// `max_blocking_threads(0)`: blocking jobs need at least one thread.
    ZeroBlockingThreads,
    /// `time_slice(Duration::ZERO)`: the monitor needs a positive slice.
    ZeroTimeSlice,
    /// A worker thread or the monitor thread could not be started, or a worker's signal stack
    /// (for reporting stack overflows) could not be mapped.
    Thread(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroProcs => write!(f, "scheduler: procs must be at least 1, got 0"),
            BuildError::TooManyProcs(n) => {
                write!(f, "scheduler: procs must be at most {MAX_PROCS}, got {n}")
            }
            BuildError::TooManySpareWorkers(n) => {
                write!(
                    f,
                    "scheduler: max_spare_workers must be at most {MAX_PROCS}, got {n}"
                )
            }
            BuildError::ProcsEnv(value) => write!(
                f,
                "scheduler: {PROCS_ENV} must be a positive integer, got {value:?}"
            ),
            BuildError::StackSize(n) => write!(
                f,
                "scheduler: stack size must be between {MIN_STACK_SIZE} and {MAX_STACK_SIZE} \
                 bytes, got {n}"
            ),
            BuildError::ZeroMaxGoroutines => write!(
                f,
                "scheduler: max_goroutines must be at least 1 (the main goroutine counts), got 0"
            ),
            BuildError::ZeroBlockingThreads => write!(
                f,
                "scheduler: max_blocking_threads must be at least 1, got 0"
            ),
            BuildError::ZeroTimeSlice => {
                write!(f, "scheduler: time slice must be longer than zero")
            }
            BuildError::Thread(err) => {
                write!(f, "scheduler: cannot start a worker thread: {err}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Thread(err) => Some(err),
            _ => None,
        }
    }
}
