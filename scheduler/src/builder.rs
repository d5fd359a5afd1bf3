//! Configuring and starting a [`Runtime`].

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::goroutine::stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
use crate::runtime::Runtime;
use crate::sched::monitor::DEFAULT_TIME_SLICE;

/// The most worker threads a runtime may have.
pub const MAX_PROCS: usize = 4096;

/// The environment variable [`Runtime::new`] and [`Builder`] read for the number of procs
/// when none is set explicitly (Go's `GOMAXPROCS`).
pub const PROCS_ENV: &str = "SCHEDULER_PROCS";

/// Builds a [`Runtime`] with chosen settings.
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
    stack_size: usize,
    time_slice: Duration,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Default settings: procs from `SCHEDULER_PROCS`, else the number of CPUs this process
    /// may use; stacks of [`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE); a time slice of
    /// 10 ms.
    pub fn new() -> Builder {
        Builder {
            procs: None,
            stack_size: DEFAULT_STACK_SIZE,
            time_slice: DEFAULT_TIME_SLICE,
        }
    }

    /// Number of worker threads running goroutines in parallel (Go's `GOMAXPROCS`).
    /// `build` rejects 0 and anything above [`MAX_PROCS`].
    pub fn procs(mut self, procs: usize) -> Builder {
        self.procs = Some(procs);
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

    /// How long a goroutine may run without suspending before the runtime's monitor asks it
    /// to yield at its next [`checkpoint`](crate::checkpoint) (Go's 10 ms preemption slice).
    /// `build` rejects zero.
    ///
    /// The monitor thread looks at the workers every half slice while any of them is awake, so
    /// a goroutine that calls `checkpoint` in its loop yields after one to one and a half
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

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the bad setting, or the OS error if a thread cannot start.
    pub fn build(self) -> Result<Runtime, BuildError> {
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
        if self.time_slice.is_zero() {
            return Err(BuildError::ZeroTimeSlice);
        }
        Runtime::start(procs, self.stack_size, self.time_slice).map_err(BuildError::Thread)
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

/// Why a [`Runtime`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `procs(0)`: a runtime needs at least one worker.
    ZeroProcs,
    /// More procs than [`MAX_PROCS`].
    TooManyProcs(usize),
    /// `SCHEDULER_PROCS` is not a number.
    ProcsEnv(String),
    /// A stack size outside `MIN_STACK_SIZE..=MAX_STACK_SIZE`.
    StackSize(usize),
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
            BuildError::ProcsEnv(value) => write!(
                f,
                "scheduler: {PROCS_ENV} must be a positive integer, got {value:?}"
            ),
            BuildError::StackSize(n) => write!(
                f,
                "scheduler: stack size must be between {MIN_STACK_SIZE} and {MAX_STACK_SIZE} \
                 bytes, got {n}"
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
