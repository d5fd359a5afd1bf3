//! Seeing what a runtime does: its metrics, its goroutines, its monitor's yield requests and
//! its execution trace.

use super::Runtime;
use crate::dump::GoroutineDump;
use crate::metrics::{self, Metrics};
use crate::trace::Trace;

impl Runtime {
    /// A snapshot of the runtime: goroutines runnable, running and blocked (by what they wait
    /// for), queue lengths, and each worker's steals, sleeps and busy time. See [`Metrics`]
    /// for what each number means and how they add up.
    ///
    /// Cheap enough to call often (a few loads per worker), from any thread, while the
    /// runtime runs: a server can look at [`runnable`](Metrics::runnable) before it admits
    /// more work.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::{Runtime, WaitGroup};
    ///
    /// let rt = Runtime::builder().procs(2).build().unwrap();
    /// let gate = WaitGroup::new();
    /// gate.add(1);
    /// for _ in 0..3 {
    ///     let gate = gate.clone();
    ///     rt.spawn(move || gate.wait());
    /// }
    /// // Once the three have parked, nothing moves, and the counts settle on exact values.
    /// let m = loop {
    ///     let m = rt.metrics();
    ///     if m.blocked.wait_group == 3 && m.running == 0 {
    ///         break m;
    ///     }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!((m.live, m.runnable, m.blocked.total()), (3, 0, 3));
    /// assert_eq!(m.spawned, 3);
    /// assert_eq!(m.workers.len(), 2);
    /// gate.done();
    /// ```
    pub fn metrics(&self) -> Metrics {
        metrics::snapshot(&self.shared)
    }

    /// Every live goroutine of the runtime, with what it does and where: Go's goroutine dump.
    /// Callable from anywhere, while the runtime runs. See [`GoroutineDump`].
    pub fn goroutines(&self) -> GoroutineDump {
        GoroutineDump::of(&self.shared)
    }

    /// How many times the runtime's monitor found a goroutine that had run for a whole
    /// [time slice](crate::Builder::time_slice) without suspending, and asked it to yield at its
    /// next [`checkpoint`](crate::checkpoint). A goroutine that never calls `checkpoint` is
    /// counted all the same (once per run between two suspensions), though it keeps its
    /// worker: a count that keeps growing points at a loop that needs checkpoints.
    ///
    /// A worker thread that the OS deschedules for a whole slice in the middle of a goroutine
    /// counts too, so treat the number as a hint, not as an exact count of busy loops.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = scheduler::Runtime::builder()
    ///     .procs(1)
    ///     .time_slice(Duration::from_millis(5))
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(|| {
    ///     // 50 ms of computing without a checkpoint or a suspension point.
    ///     let start = Instant::now();
    ///     while start.elapsed() < Duration::from_millis(50) {
    ///         std::hint::spin_loop();
    ///     }
    /// });
    /// println!("{} preemption request(s)", rt.preemption_requests()); // usually 1
    /// ```
    pub fn preemption_requests(&self) -> u64 {
        self.shared.preemption_requests()
    }

    /// Starts recording an execution trace: each run of a goroutine on a worker, why it ended,
    /// the wakes, spawns and steals between them (see [`crate::trace`]). A trace already being
    /// recorded is dropped and recording starts afresh. [`stop_trace`](Self::stop_trace)
    /// hands the trace over.
    ///
    /// A run that is in progress when the trace starts shows from the start of the trace.
    /// Each worker keeps at most 2^20 events per trace; the events past that are counted as
    /// [dropped](crate::trace::Trace::dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build()?;
    /// rt.block_on(|| ()); // not traced
    /// rt.start_trace();
    /// rt.block_on(|| scheduler::spawn(|| 6 * 7).join().unwrap());
    /// let trace = rt.stop_trace();
    /// assert!(trace.runs().count() >= 1);
    /// # Ok::<(), scheduler::BuildError>(())
    /// ```
    pub fn start_trace(&self) {
        self.shared.trace.start();
    }

    /// Stops recording the execution trace and returns it: an empty [`Trace`] if none was
    /// being recorded. Events recorded by the workers up to this call are in it.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).trace(true).build()?;
    /// rt.block_on(|| scheduler::spawn(|| ()).join().unwrap());
    /// let trace = rt.stop_trace();
    /// assert!(!trace.is_empty());
    /// assert!(rt.stop_trace().is_empty(), "stopped: nothing more was recorded");
    /// # Ok::<(), scheduler::BuildError>(())
    /// ```
    pub fn stop_trace(&self) -> Trace {
        match self.shared.trace.stop() {
            Some(recorded) => {
                let mut trace = Trace::from_recorded(recorded);
                // Goroutines spawned before the trace started, still live: name them from
                // the registry (the main goroutine, typically).
                let mut names = std::collections::HashMap::new();
                self.shared.registry.for_each(|header| {
                    if let Some(name) = &header.origin.name {
                        names.insert(header.id, name.clone());
                    }
                });
                trace.name_unnamed(|id| names.get(&id).cloned());
                trace
            }
            None => Trace::empty(self.shared.procs),
        }
    }
}
