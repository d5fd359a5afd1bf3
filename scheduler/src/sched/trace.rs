//! Recording an execution trace: what ran where and when, what blocked and who woke it (the
//! scheduler's side of Go's `runtime/trace`). The public [`Trace`](crate::trace::Trace) is
//! made from what this records.
//!
//! # Cost
//!
//! Every hook in the scheduler reads [`Recorder::enabled`] first: one Relaxed load of a flag
//! that only `start` and `stop` write, so its cache line stays shared in every core's cache
//! and the hook costs a load and a predicted branch while no trace is recorded. Everything
//! else (the clock, the lock, the event) sits behind it, out of line.
//!
//! # Where events go
//!
//! One buffer per worker slot (base workers and spare slots alike, indexed like
//! `Shared::remotes`), each on cache lines of its own, and one more for threads that are no
//! worker of this runtime (a wake from a plain thread, the monitor starting a spare). A
//! worker records only into its own buffer, so the lock it takes is uncontended except while
//! `start` or `stop` swaps the buffers; events of one buffer are in the order of their
//! thread, and their timestamps (nanoseconds since the trace started, on the monotonic clock)
//! never decrease. Each buffer holds at most [`CAPACITY`] events: past that, events are
//! counted as dropped, and the count goes with the trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use corosensei::CoroutineResult;

use super::current;
use super::shared::Shared;
use super::worker::WorkerLocal;
use crate::goroutine::task::{Header, Suspend, TaskRef};
use crate::wait::BlockKind;

/// The most events one buffer keeps per trace; later ones are counted as dropped. At about 48
/// bytes an event, a worker's buffer stays under 50 MiB.
pub(crate) const CAPACITY: usize = 1 << 20;

/// Why a run of a goroutine ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawStop {
    /// `yield_now`, or a `checkpoint` with no yield request pending.
    Yield,
    /// A `checkpoint` that yielded because the monitor asked it to (the time slice was used).
    Preempted,
    /// It suspended to park, waiting on this (it may have been woken already: it then runs
    /// again without a wake of its own).
    Park(BlockKind),
    /// It returned (or panicked).
    Finished,
}

/// What happened. The thread it happened on is the buffer it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RawKind {
    /// A goroutine was spawned; `parent` is the spawning goroutine, if a goroutine of this
    /// runtime spawned it.
    Created {
        goroutine: u64,
        parent: Option<u64>,
        name: Option<Arc<str>>,
    },
    /// The worker resumed (or started) a goroutine.
    RunStart { goroutine: u64 },
    /// The goroutine the worker resumed suspended or finished.
    RunStop { goroutine: u64, why: RawStop },
    /// A parked goroutine was made runnable; `by` is the goroutine that woke it, if one of
    /// this runtime's goroutines did.
    Wake { goroutine: u64, by: Option<u64> },
    /// The worker stole `count` goroutines that had not started from worker `victim`'s deque.
    Steal { victim: usize, count: usize },
    /// The worker went to sleep: nothing to run.
    Sleep,
    /// The worker woke from its sleep.
    Woke,
    /// A spare worker was started in slot `worker`.
    SpareStart { worker: usize },
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    /// Nanoseconds since the trace started.
    pub(crate) at: u64,
    pub(crate) kind: RawKind,
}

/// One thread's events, and its count of those that did not fit.
struct Events {
    /// When the trace started; the same in every buffer of one trace.
    start: Instant,
    events: Vec<RawEvent>,
    dropped: u64,
}

/// A buffer on cache lines of its own, so that two workers recording never share one.
#[repr(align(128))]
struct Buffer(Mutex<Events>);

/// What one trace recorded: each buffer's events (worker slots first, then the one of other
/// threads), when it started and stopped.
pub(crate) struct Recorded {
    /// Base workers of the runtime; the slots after them are spare slots.
    pub(crate) procs: usize,
    /// Events per buffer: one per worker slot, then the one of other threads.
    pub(crate) buffers: Vec<Vec<RawEvent>>,
    /// Events that did not fit, over all buffers.
    pub(crate) dropped: u64,
    /// Nanoseconds from the start of the trace to its stop.
    pub(crate) span: u64,
}

/// The trace recorder of one runtime, in its `Shared`.
pub(crate) struct Recorder {
    /// Whether events are recorded. Written by `start` and `stop` only.
    on: AtomicBool,
    procs: usize,
    /// One buffer per worker slot, then one for every other thread. Each worker locks only
    /// its own; `start` and `stop` lock them all, one at a time.
    buffers: Box<[Buffer]>,
}

impl Recorder {
    /// A recorder for `procs` base workers and `slots` worker slots in all; recording from
    /// now on if `on`.
    pub(crate) fn new(procs: usize, slots: usize, on: bool) -> Recorder {
        let start = Instant::now();
        Recorder {
            on: AtomicBool::new(on),
            procs,
            buffers: (0..=slots)
                .map(|_| {
                    Buffer(Mutex::new(Events {
                        start,
                        events: Vec::new(),
                        dropped: 0,
                    }))
                })
                .collect(),
        }
    }

    /// Whether a trace is being recorded: the one check at every hook.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        // Relaxed: the flag publishes nothing. Events are ordered by their buffer's lock,
        // which `start` and `stop` take too; a hook that reads a stale value records an event
        // just outside the trace (cleared by the next `start`), or misses one at its edge.
        self.on.load(Ordering::Relaxed)
    }

    /// Records `kind` into the buffer of worker slot `worker`, or of the other threads
    /// (`None`). Only worker `worker`'s own thread passes `Some(worker)`.
    #[cold]
    #[inline(never)]
    pub(crate) fn record(&self, worker: Option<usize>, kind: RawKind) {
        let index = worker.unwrap_or(self.buffers.len() - 1);
        let mut buffer = self.buffers[index].0.lock();
        if buffer.events.len() >= CAPACITY {
            buffer.dropped += 1;
            return;
        }
        // Read under the lock, so a timestamp is never earlier than the `start` it is
        // measured from, nor than the buffer's previous event.
        let at = u64::try_from(buffer.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        buffer.events.push(RawEvent { at, kind });
    }

    /// Starts recording a new trace, dropping whatever was recorded before.
    pub(crate) fn start(&self) {
        let start = Instant::now();
        for buffer in &self.buffers {
            let mut buffer = buffer.0.lock();
            buffer.start = start;
            buffer.events = Vec::new();
            buffer.dropped = 0;
        }
        // Relaxed: see `enabled`; the buffers are ready (under their locks) before any hook
        // can record into them.
        self.on.store(true, Ordering::Relaxed);
    }

    /// Stops recording and hands over what was recorded since `start`; `None` if no trace
    /// was being recorded.
    pub(crate) fn stop(&self) -> Option<Recorded> {
        // Relaxed: see `enabled`. The swap makes one of two racing stops the owner.
        if !self.on.swap(false, Ordering::Relaxed) {
            return None;
        }
        let mut recorded = Recorded {
            procs: self.procs,
            buffers: Vec::with_capacity(self.buffers.len()),
            dropped: 0,
            span: 0,
        };
        for buffer in &self.buffers {
            let mut buffer = buffer.0.lock();
            recorded.span = u64::try_from(buffer.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            recorded.dropped += buffer.dropped;
            buffer.dropped = 0;
            recorded.buffers.push(std::mem::take(&mut buffer.events));
        }
        Some(recorded)
    }
}

/// The hooks of the worker loop: each call site checks [`WorkerLocal::tracing`] first.
impl WorkerLocal {
    /// Whether this worker's runtime records a trace.
    #[inline]
    pub(crate) fn tracing(&self) -> bool {
        self.shared().trace.enabled()
    }

    /// Records `kind` as happening on this worker.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace(&self, kind: RawKind) {
        self.shared().trace.record(Some(self.index()), kind);
    }

    /// Records the start of a run of `task`, about to be resumed. Its end is recorded too,
    /// even if the trace stops meanwhile (the next `start` clears it), so that the hot path
    /// after the resume reads a flag of this worker rather than the runtime's.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_run_start(&self, task: &TaskRef) {
        self.traced_run.set(true);
        self.trace(RawKind::RunStart {
            goroutine: task.header().id,
        });
    }

    /// Records the end of the running goroutine's run as it finishes, before its result is
    /// published: whoever its result releases (a `block_on` caller that then stops the trace)
    /// finds the run closed. `trace_run_stop` then has nothing left to record.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_run_finished(&self, header: &Header) {
        self.traced_run.set(false);
        self.trace(RawKind::RunStop {
            goroutine: header.id,
            why: RawStop::Finished,
        });
    }

    /// Records why the run of the goroutine `header` that just came back with `result` ended.
    /// Called by the worker loop of the goroutine's home worker, before it acts on `result`.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_run_stop(
        &self,
        header: &Header,
        result: &std::thread::Result<CoroutineResult<Suspend, ()>>,
    ) {
        self.traced_run.set(false);
        let why = match result {
            Ok(CoroutineResult::Return(())) | Err(_) => RawStop::Finished,
            // The request is that of this resume's epoch, so it was made while this goroutine
            // ran: its `checkpoint` (or a `yield_now` just then) answered it.
            Ok(CoroutineResult::Yield(Suspend::Yield)) if self.preemption_requested() => {
                RawStop::Preempted
            }
            Ok(CoroutineResult::Yield(Suspend::Yield)) => RawStop::Yield,
            Ok(CoroutineResult::Yield(Suspend::Park | Suspend::ParkUnlocking(_))) => {
                RawStop::Park(header.parked_as())
            }
        };
        self.trace(RawKind::RunStop {
            goroutine: header.id,
            why,
        });
    }
}

/// Records that the goroutine `woken` of the runtime `shared` was woken by the current
/// thread: the running goroutine of a worker of that runtime, its worker loop, or any other
/// thread.
#[cold]
#[inline(never)]
pub(crate) fn wake(shared: &Shared, woken: u64) {
    current::with_worker(|worker| match worker {
        Some(worker) if std::ptr::eq(Arc::as_ptr(worker.shared()), shared) => {
            let by = worker.current_header().map(|header| {
                // SAFETY: the running goroutine's header, kept alive by the worker's
                // `current` reference for the whole resume, within which we are.
                unsafe { (*header).id }
            });
            worker.trace(RawKind::Wake {
                goroutine: woken,
                by,
            });
        }
        _ => shared.trace.record(
            None,
            RawKind::Wake {
                goroutine: woken,
                by: None,
            },
        ),
    });
}

/// Records the spawn of the goroutine `header` of the runtime `shared`, from `worker` (a
/// worker of that runtime, on its own thread) or from another thread.
#[cold]
#[inline(never)]
pub(crate) fn created(shared: &Shared, worker: Option<&WorkerLocal>, header: &Header) {
    let parent = worker.and_then(WorkerLocal::current_header).map(|parent| {
        // SAFETY: as in `wake`: the running goroutine's header.
        unsafe { (*parent).id }
    });
    let kind = RawKind::Created {
        goroutine: header.id,
        parent,
        name: header.origin.name.clone(),
    };
    shared.trace.record(worker.map(WorkerLocal::index), kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_that_is_off_records_nothing() {
        let recorder = Recorder::new(1, 2, false);
        assert!(!recorder.enabled());
        assert!(recorder.stop().is_none());
    }

    #[test]
    fn events_go_to_their_thread_s_buffer_in_order() {
        let recorder = Recorder::new(1, 2, false);
        recorder.start();
        recorder.record(Some(1), RawKind::RunStart { goroutine: 7 });
        recorder.record(
            None,
            RawKind::Wake {
                goroutine: 7,
                by: None,
            },
        );
        recorder.record(
            Some(1),
            RawKind::RunStop {
                goroutine: 7,
                why: RawStop::Yield,
            },
        );
        let recorded = recorder.stop().expect("a trace was recorded");
        assert_eq!(recorded.buffers.len(), 3);
        assert!(recorded.buffers[0].is_empty());
        assert_eq!(recorded.buffers[1].len(), 2);
        assert!(recorded.buffers[1][0].at <= recorded.buffers[1][1].at);
        assert_eq!(
            recorded.buffers[2][0].kind,
            RawKind::Wake {
                goroutine: 7,
                by: None
            }
        );
        assert!(recorded.span >= recorded.buffers[1][1].at);
        assert!(!recorder.enabled());
    }

    #[test]
    fn a_full_buffer_counts_what_it_drops() {
        let recorder = Recorder::new(1, 1, true);
        for _ in 0..CAPACITY + 3 {
            recorder.record(Some(0), RawKind::Sleep);
        }
        let recorded = recorder.stop().unwrap();
        assert_eq!(recorded.buffers[0].len(), CAPACITY);
        assert_eq!(recorded.dropped, 3);
    }

    #[test]
    fn start_clears_the_previous_trace() {
        let recorder = Recorder::new(1, 1, true);
        recorder.record(Some(0), RawKind::Sleep);
        recorder.start();
        recorder.record(Some(0), RawKind::Woke);
        let recorded = recorder.stop().unwrap();
        assert_eq!(recorded.buffers[0].len(), 1);
        assert_eq!(recorded.buffers[0][0].kind, RawKind::Woke);
    }
}
