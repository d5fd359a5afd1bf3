//! Execution traces: which goroutine ran on which worker and when, why each run ended, and who
//! woke whom (Go's `runtime/trace` and `go tool trace`, in spirit).
//!
//! A runtime records a trace while [`Builder::trace`](crate::Builder::trace) or
//! [`Runtime::start_trace`](crate::Runtime::start_trace) says so;
//! [`Runtime::stop_trace`](crate::Runtime::stop_trace) hands it over as a [`Trace`], which
//! can be read ([`Trace::runs`], [`Trace::wakes`], ...), written as JSON for Perfetto or
//! `chrome://tracing` ([`Trace::write_json`]), or drawn as an SVG timeline
//! ([`Trace::write_svg`]). While no trace is recorded, each place that would record an event
//! costs one load of a flag.
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use scheduler::WaitGroup;
//!
//! let rt = scheduler::Runtime::builder().procs(2).trace(true).build()?;
//! rt.block_on(|| {
//!     let wg = WaitGroup::new();
//!     for _ in 0..2 {
//!         wg.go(|| {
//!             let start = Instant::now();
//!             while start.elapsed() < Duration::from_millis(2) {}
//!         });
//!     }
//!     wg.wait();
//! });
//! let trace = rt.stop_trace();
//! assert!(trace.runs().count() >= 3); // the main goroutine and the two others
//!
//! let mut json = Vec::new();
//! trace.write_json(&mut json)?;
//! assert!(json.starts_with(b"{\"traceEvents\":["));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build;
mod json;
mod svg;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[doc(hidden)]
pub use svg::{
    IDLE_FILL, LANE_BOX_HEIGHT, LANE_HEIGHT, LANE_TOP, PLOT_LEFT, PLOT_WIDTH, SVG_WIDTH,
};

/// A thread that recorded an event: a worker of the runtime (by index, spare workers after
/// the `procs` base workers), or any other thread (a plain thread, the runtime's monitor, a
/// goroutine of another runtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Thread {
    /// Worker `n` (`scheduler-worker-n`, or `scheduler-spare-n`).
    Worker(usize),
    /// A thread that is no worker of the runtime.
    Other,
}

/// What a blocked goroutine waited for: the goroutine dump's reasons.
pub use crate::dump::WaitReason;

/// Why a run of a goroutine ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stop {
    /// It yielded ([`yield_now`](crate::yield_now), or a [`checkpoint`](crate::checkpoint)
    /// with no yield request pending).
    Yield,
    /// It yielded at a [`checkpoint`](crate::checkpoint) because the runtime's monitor saw it
    /// run for a whole time slice.
    Preempted,
    /// It blocked (it parked, waiting on this). A wake may have come before it was parked:
    /// it then runs again with no [`Wake`] of its own.
    Blocked(WaitReason),
    /// It returned or panicked.
    Finished,
    /// It was still running when the trace stopped.
    Running,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Yield => f.write_str("yielded"),
            Stop::Preempted => f.write_str("preempted"),
            Stop::Blocked(reason) => write!(f, "blocked on {reason}"),
            Stop::Finished => f.write_str("finished"),
            Stop::Running => f.write_str("running when the trace stopped"),
        }
    }
}

/// One run of a goroutine: from a worker resuming (or starting) it to its suspending or
/// finishing. A goroutine that has started never changes worker, so all runs of one goroutine
/// have the same `worker`. Times are measured from the start of the trace; a run that began
/// before it starts at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Run {
    /// The worker that ran it.
    pub worker: usize,
    /// The goroutine's id.
    pub goroutine: u64,
    /// When the worker resumed it.
    pub start: Duration,
    /// When it suspended or finished (or the trace stopped).
    pub end: Duration,
    /// Why the run ended.
    pub stop: Stop,
}

/// A blocked goroutine made runnable again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Wake {
    /// The goroutine woken.
    pub goroutine: u64,
    /// The goroutine that woke it, if one of the runtime's goroutines did (not a timer that
    /// fired, a socket that became ready, a plain thread).
    pub by: Option<u64>,
    /// The thread the wake came from.
    pub from: Thread,
    /// When, from the start of the trace.
    pub at: Duration,
}

/// A goroutine spawned while the trace was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Spawn {
    /// The new goroutine's id.
    pub goroutine: u64,
    /// The goroutine that spawned it, if one of the runtime's goroutines did.
    pub parent: Option<u64>,
    /// The thread it was spawned from.
    pub from: Thread,
    /// When, from the start of the trace.
    pub at: Duration,
}

/// What else a worker did, shown in the JSON and the picture only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// It stole `count` goroutines from worker `victim`.
    Steal { victim: usize, count: usize },
    /// It went to sleep.
    Sleep,
    /// It woke from its sleep.
    Woke,
    /// The monitor started it as a spare worker.
    SpareStart,
}

/// An execution trace of one runtime, from [`Runtime::stop_trace`](crate::Runtime::stop_trace):
/// every run of a goroutine on a worker, why it ended, the wakes and spawns between them.
///
/// A goroutine that a `join` ran before any worker started it (it then runs on the joiner's
/// stack, see [`JoinHandle::join`](crate::JoinHandle::join)) has no run of its own: its time
/// is part of the joiner's run.
///
/// Workers are numbered as their threads (`scheduler-worker-N`), spare workers after the
/// `procs` base workers. Times are [`Duration`]s from the start of the trace, on the
/// monotonic clock. Each worker (and the set of other threads) keeps at most 2^20 events per
/// trace; what did not fit is counted in [`dropped`](Self::dropped), and the runs it would
/// have shown are missing.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(1).build()?;
/// rt.start_trace();
/// rt.block_on(|| {
///     let (tx, rx) = scheduler::chan::bounded(0);
///     scheduler::spawn(move || tx.send(42).unwrap());
///     assert_eq!(rx.recv().unwrap(), 42);
/// });
/// let trace = rt.stop_trace();
/// // The main goroutine blocked on the channel, and the sender woke it.
/// let main = trace.runs().next().unwrap().goroutine;
/// assert!(trace.wakes().any(|w| w.goroutine == main));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Trace {
    procs: usize,
    workers: usize,
    span: Duration,
    dropped: u64,
    /// Sorted by start.
    runs: Vec<Run>,
    /// Sorted by time.
    wakes: Vec<Wake>,
    spawns: Vec<Spawn>,
    /// Every goroutine seen (in a run, a wake or a spawn), with its name if known.
    goroutines: BTreeMap<u64, Option<Arc<str>>>,
    marks: Vec<(Duration, usize, Mark)>,
}

impl Trace {
    /// The runs of goroutines, in the order they started.
    pub fn runs(&self) -> impl Iterator<Item = Run> + '_ {
        self.runs.iter().copied()
    }

    /// The wakes of blocked goroutines, in time order.
    pub fn wakes(&self) -> impl Iterator<Item = Wake> + '_ {
        self.wakes.iter().copied()
    }

    /// The goroutines spawned while the trace was recorded, in time order.
    pub fn spawns(&self) -> impl Iterator<Item = &Spawn> + '_ {
        self.spawns.iter()
    }

    /// The ids of the goroutines the trace shows, in increasing order.
    pub fn goroutines(&self) -> impl Iterator<Item = u64> + '_ {
        self.goroutines.keys().copied()
    }

    /// The name of goroutine `goroutine`, if it has one.
    pub fn name(&self, goroutine: u64) -> Option<&str> {
        self.goroutines.get(&goroutine)?.as_deref()
    }

    /// Gives the goroutines the trace saw without seeing their spawn (they were spawned
    /// before it started) the names that `name_of` knows.
    pub(crate) fn name_unnamed(&mut self, name_of: impl Fn(u64) -> Option<Arc<str>>) {
        for (&id, name) in self.goroutines.iter_mut() {
            if name.is_none() {
                *name = name_of(id);
            }
        }
    }

    /// The number of workers the trace shows: the runtime's `procs`, and the spare workers
    /// up to the last that recorded something. Worker indexes are below this.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The runtime's base workers (its `procs`); workers from this index on are spares.
    pub fn procs(&self) -> usize {
        self.procs
    }

    /// How long the trace was recorded (zero for an empty trace).
    pub fn duration(&self) -> Duration {
        self.span
    }

    /// Events that did not fit in a worker's buffer and were not recorded.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.wakes.is_empty() && self.spawns.is_empty()
    }

    /// The label of a goroutine: `g7`, or `g7 name`.
    fn label(&self, goroutine: u64) -> String {
        match self.name(goroutine) {
            Some(name) => format!("g{goroutine} {name}"),
            None => format!("g{goroutine}"),
        }
    }
}
