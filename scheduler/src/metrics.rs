//! [`Metrics`]: a snapshot of what a runtime's goroutines and workers are doing, for watching
//! load and shedding it ([`Runtime::metrics`](crate::Runtime::metrics),
//! [`metrics()`](crate::metrics())).

use std::fmt;
use std::time::Duration;

use crate::sched::Shared;
use crate::wait::block_kind::{BLOCK_KINDS, BlockKind};

/// A snapshot of a runtime: how many goroutines there are and what they are doing, and what
/// each worker has done. Taken by [`Runtime::metrics`](crate::Runtime::metrics), or by
/// [`scheduler::metrics`](crate::metrics()) inside a goroutine.
///
/// # What adds up
///
/// Every goroutine that was spawned and has not finished ([`live`](Self::live)) is in exactly
/// one of four states:
///
/// * **runnable** ([`runnable`](Self::runnable)): waiting in a queue for a worker: not
///   started yet, in a worker's local queue or the global queue; or started and ready to
///   run again (it yielded, or was woken and its worker took it back);
/// * **running** ([`running`](Self::running)): a worker is running it right now;
/// * **blocked** ([`blocked`](Self::blocked)): parked in one of this crate's blocking calls
///   (a channel, a lock, a `WaitGroup`, a sleep, a `join`, a `select!`), counted by what it
///   waits for;
/// * **inline** ([`inline`](Self::inline)): run by a [`join`](crate::JoinHandle::join) on the
///   stack of the goroutine that joined it, because it had not started yet. It runs, waits and
///   queues together with its joiner, which is counted in one of the three states above.
///
/// So `live == runnable + running + blocked.total() + inline`, exactly, whenever no goroutine
/// moves while the snapshot is taken: when the program is idle, or every goroutine waits.
///
/// A snapshot is not atomic: it reads each worker's counters in turn, without stopping
/// anything. While goroutines are spawned, run, wake and finish, the sum may be off by the
/// goroutines that moved during the reading, and these moments shift it too:
///
/// * a goroutine woken by another thread (a plain thread, or a goroutine of another worker)
///   counts as blocked until its own worker picks it up, at its next look at its queues;
/// * a goroutine that a `join` ran inline may leave a stale entry in a local queue, counted
///   as runnable until a worker drops it (idle workers do, before they sleep);
/// * a goroutine counts itself out of `live` as it finishes, a moment before its worker
///   stops counting it as running.
///
/// A goroutine that waits on something outside this crate (a std lock, a blocking read, a
/// `std::thread::sleep`) blocks its worker thread and counts as running.
///
/// Taking a snapshot costs a few loads per worker. Keeping the counts costs each worker a few
/// instructions per resume, park and wake, on counters that only it writes: no shared cache
/// line, no atomic read-modify-write.
///
/// # Examples
///
/// ```
/// use scheduler::{Runtime, chan};
///
/// let rt = Runtime::builder().procs(2).build().unwrap();
/// let (tx, rx) = chan::bounded::<u32>(0);
/// let waiting = rt.spawn(move || rx.recv());
/// // Wait until the receiver has parked and its worker is idle: then nothing moves, and
/// // the snapshot is exact.
/// let m = loop {
///     let m = rt.metrics();
///     if m.blocked.channel == 1 && m.running == 0 {
///         break m;
///     }
///     std::thread::yield_now();
/// };
/// assert_eq!(m.live, 1);
/// assert_eq!(m.live, m.runnable + m.running + m.blocked.total() + m.inline);
/// assert_eq!(m.runnable, 0);
/// assert!(m.spawned >= 1);
/// tx.send(7).unwrap();
/// assert_eq!(waiting.join().unwrap(), Ok(7));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Worker threads (procs) of the runtime.
    pub procs: usize,
    /// Goroutines spawned and not finished, as
    /// [`Runtime::num_goroutines`](crate::Runtime::num_goroutines) counts them.
    pub live: usize,
    /// Goroutines waiting in a queue to run: the global queue ([`global_queue`](Self::global_queue))
    /// plus every worker's [`local_queue`](WorkerMetrics::local_queue) and
    /// [`ready_queue`](WorkerMetrics::ready_queue).
    pub runnable: usize,
    /// Goroutines running on a worker right now: the workers inside a goroutine.
    pub running: usize,
    /// Goroutines parked in a blocking call of this crate, by what they wait for.
    pub blocked: BlockedGoroutines,
    /// Goroutines that a `join` runs on its joiner's stack right now (see the type's doc).
    pub inline: usize,
    /// Goroutines ever spawned on the runtime (refused spawns do not count).
    pub spawned: u64,
    /// Goroutines spawned from outside the runtime that no worker has taken yet.
    pub global_queue: usize,
    /// Each worker's share, in worker order: the `procs` workers, then the spare workers
    /// running now.
    pub workers: Vec<WorkerMetrics>,
    /// Threads of the [`spawn_blocking`](crate::spawn_blocking) pool: running a job or idle
    /// (they retire after `Builder::blocking_keep_alive`).
    pub blocking_threads: usize,
    /// Threads of the pool running a job.
    pub blocking_busy: usize,
    /// Blocking jobs waiting for a thread (the pool is at `Builder::max_blocking_threads`).
    pub blocking_queued: usize,
    /// Times the monitor asked a goroutine that had run for a whole time slice to yield at its
    /// next [`checkpoint`](crate::checkpoint) (see
    /// [`Runtime::preemption_requests`](crate::Runtime::preemption_requests)).
    pub preemption_requests: u64,
    /// Spare workers running now: threads the monitor started because a worker was blocked
    /// in a system call while goroutines waited (see
    /// [`Builder::max_spare_workers`](crate::Builder::max_spare_workers)). Each also has its
    /// line in [`workers`](Self::workers).
    pub spare_workers: usize,
    /// Spare workers started since the runtime began.
    pub spare_workers_started: usize,
    /// Times a goroutine kept its worker's thread blocked in the kernel (a std lock,
    /// `std::thread::sleep`, blocking I/O) for the stall threshold while other goroutines
    /// waited behind it (see [`Builder::stall_warnings`](crate::Builder::stall_warnings)).
    pub stalls_blocked: u64,
    /// Times a goroutine computed for the stall threshold without a suspension point while
    /// other goroutines waited behind it on its worker.
    pub stalls_busy: u64,
    /// Goroutine stack slots mapped, 64 per region: address space, resident only where
    /// touched. A slot is reserved for every goroutine admitted and not finished.
    pub stacks_mapped: usize,
    /// Stacks of finished goroutines that the runtime keeps for reuse with their memory still
    /// resident (beyond the up to 256 each worker caches, not counted). The monitor releases
    /// the memory of those beyond 1024 that stay unused for a whole second.
    pub stacks_free_resident: usize,
    /// Stacks of finished goroutines kept for reuse whose memory was released.
    pub stacks_free_released: usize,
    // A part of the runtime worth watching adds its field here (the struct is
    // `#[non_exhaustive]`) and fills it in `snapshot`, reading it from where it lives.
}

/// Blocked goroutines by what they wait for: part of [`Metrics`].
///
/// A goroutine counts under the call it is parked in. Timed and context variants count
/// under their operation: `recv_timeout` and `recv_ctx` as [`channel`](Self::channel),
/// `sleep_ctx` as [`timer`](Self::timer), `WaitGroup::wait_ctx` as
/// [`wait_group`](Self::wait_group).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockedGoroutines {
    /// In a channel's `send` or `recv`.
    pub channel: usize,
    /// In `Mutex`, `RwLock`, `Condvar`, `Semaphore` or `OnceLock`.
    pub sync: usize,
    /// In `WaitGroup::wait`.
    pub wait_group: usize,
    /// In `sleep`, `sleep_until` or `sleep_ctx`.
    pub timer: usize,
    /// In `JoinHandle::join` of a goroutine.
    pub join: usize,
    /// In `JoinHandle::join` of a [`spawn_blocking`](crate::spawn_blocking) job: waiting for
    /// the blocking-thread pool.
    pub blocking: usize,
    /// In a `select!` that has no ready arm.
    pub select: usize,
    /// On a socket or other file descriptor that is not ready (`scheduler::net`): a read,
    /// write, accept or connect, and their deadline and context variants.
    pub io: usize,
    /// Anywhere else.
    pub other: usize,
}

impl BlockedGoroutines {
    /// All blocked goroutines.
    pub fn total(&self) -> usize {
        self.channel
            + self.sync
            + self.wait_group
            + self.timer
            + self.join
            + self.blocking
            + self.select
            + self.other
            + self.io
    }

    fn from_counts(counts: &[usize; BLOCK_KINDS]) -> BlockedGoroutines {
        let n = |kind: BlockKind| counts[kind as usize];
        let sync = BlockKind::ALL
            .iter()
            .filter(|kind| kind.is_sync())
            .map(|&kind| n(kind))
            .sum();
        BlockedGoroutines {
            channel: n(BlockKind::ChannelReceive) + n(BlockKind::ChannelSend),
            sync,
            wait_group: n(BlockKind::WaitGroup),
            timer: n(BlockKind::Timer),
            join: n(BlockKind::Join),
            blocking: n(BlockKind::Blocking),
            select: n(BlockKind::Select),
            io: n(BlockKind::Io),
            other: n(BlockKind::Other),
        }
    }
}

/// One worker's part of [`Metrics`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// The worker's number: `0..procs` for the runtime's own workers, `procs` and up for spare
    /// workers (a number is reused by a later spare once its spare has retired).
    pub index: usize,
    /// Goroutines not started yet in the worker's local queue (its work-stealing deque):
    /// spawned by its goroutines, or stolen by it.
    pub local_queue: usize,
    /// Goroutines started on this worker that are ready to run again (they yielded, or were
    /// woken and the worker took them back). They can only run here.
    pub ready_queue: usize,
    /// Whether a goroutine is running on the worker right now.
    pub running: bool,
    /// Goroutines started on this worker that are blocked.
    pub blocked: usize,
    /// Successful steals from other workers' local queues (taking from the global queue does
    /// not count).
    pub steals: u64,
    /// Goroutines taken by those steals: about half of the victim's queue each time.
    pub stolen: u64,
    /// Times the worker thread went to sleep for lack of work.
    pub parks: u64,
    /// Time the worker thread spent awake: running goroutines, and looking for them between
    /// its sleeps. Measured when it wakes and when it goes to sleep, not per goroutine.
    pub busy: Duration, // A per-worker counter adds its field here, kept in `sched::stats::WorkerStats`.
}

/// Reads `shared`'s counters into a [`Metrics`].
pub(crate) fn snapshot(shared: &Shared) -> Metrics {
    let live = shared.live();
    let pool = shared.blocking.stats();
    let mut blocked = [0; BLOCK_KINDS];
    let (mut runnable, mut running, mut inline) = (0, 0, 0);
    let workers = shared
        .remotes
        .iter()
        .enumerate()
        .filter(|(index, remote)| *index < shared.procs || remote.is_occupied())
        .map(|(index, remote)| {
            let stats = remote.stats.read();
            let worker_blocked: usize = stats.blocked.iter().sum();
            for (total, n) in blocked.iter_mut().zip(stats.blocked) {
                *total += n;
            }
            // Each started goroutine of the worker is running, blocked, or queued in
            // `runnext` or `ready` (see `WorkerStats`).
            let ready_queue = stats
                .started
                .saturating_sub(usize::from(stats.running) + worker_blocked);
            let local_queue = remote.stealer.len();
            runnable += local_queue + ready_queue;
            running += usize::from(stats.running);
            inline += stats.inline;
            WorkerMetrics {
                index,
                local_queue,
                ready_queue,
                running: stats.running,
                blocked: worker_blocked,
                steals: stats.steals,
                stolen: stats.stolen,
                parks: stats.parks,
                busy: Duration::from_nanos(stats.busy_ns),
            }
        })
        .collect();
    // The global queue last: a goroutine moves from it to a worker (running, then parked or
    // queued there), never back, so a snapshot read in the opposite order counts a goroutine
    // that moves meanwhile once at most; read first, the queue could still hold one that the
    // workers' counters show parked a moment later, and a settled runtime would look busy.
    let global_queue = shared.injector.len();
    runnable += global_queue;
    let stacks = shared.stacks.counts();
    Metrics {
        procs: shared.procs,
        live,
        runnable,
        running,
        blocked: BlockedGoroutines::from_counts(&blocked),
        inline,
        spawned: shared.spawned(),
        global_queue,
        workers,
        blocking_threads: pool.threads,
        blocking_busy: pool.busy,
        blocking_queued: pool.queued,
        preemption_requests: shared.preemption_requests(),
        spare_workers: shared.spares.occupied(),
        spare_workers_started: shared.spares.started(),
        stalls_blocked: shared.monitor.stalls.blocked(),
        stalls_busy: shared.monitor.stalls.busy(),
        stacks_mapped: stacks.mapped,
        stacks_free_resident: stacks.free_resident,
        stacks_free_released: stacks.free_released,
    }
}

/// A summary for people, a few lines long: the goroutine states, then one line per worker
/// (`*` after the worker's index: it is running a goroutine). The layout may change; read the
/// fields for anything a program decides on.
impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.blocked;
        writeln!(
            f,
            "goroutines: {} live = {} runnable + {} running + {} blocked + {} inline; {} spawned",
            self.live,
            self.runnable,
            self.running,
            b.total(),
            self.inline,
            self.spawned
        )?;
        writeln!(
            f,
            "blocked on: channel {}, sync {}, wait group {}, timer {}, join {}, blocking job {}, \
             select {}, io {}, other {}",
            b.channel, b.sync, b.wait_group, b.timer, b.join, b.blocking, b.select, b.io, b.other
        )?;
        writeln!(
            f,
            "global queue: {}; preemption requests: {}; spare workers: {} ({} started); \
             stalls: {} blocked, {} busy",
            self.global_queue,
            self.preemption_requests,
            self.spare_workers,
            self.spare_workers_started,
            self.stalls_blocked,
            self.stalls_busy
        )?;
        writeln!(
            f,
            "blocking pool: {} threads, {} busy, {} jobs queued",
            self.blocking_threads, self.blocking_busy, self.blocking_queued
        )?;
        writeln!(
            f,
            "stacks: {} mapped, free {} resident + {} released",
            self.stacks_mapped, self.stacks_free_resident, self.stacks_free_released
        )?;
        write!(
            f,
            "{:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12}",
            "worker", "local", "ready", "blocked", "steals", "stolen", "parks", "busy"
        )?;
        for w in &self.workers {
            write!(
                f,
                "\n{:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12}",
                format!("{}{}", w.index, if w.running { "*" } else { "" }),
                w.local_queue,
                w.ready_queue,
                w.blocked,
                w.steals,
                w.stolen,
                w.parks,
                format!("{:.3?}", w.busy)
            )?;
        }
        Ok(())
    }
}
