//! What all workers of one runtime share: the global queue, each worker's stealer, inbox and
//! parker, the idle bookkeeping, and the goroutine count that shutdown waits on.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_deque::{Injector, Stealer, Worker};
use parking_lot::{Condvar, Mutex};

use super::admission::Admission;
use super::clock::CoarseClock;
use super::config::Config;
use super::current;
use super::deadlock::Deadlock;
use super::idle::Idle;
use super::inbox::Inbox;
use super::io::poller::Poller;
use super::monitor::{Activity, Monitor};
use super::parker::Parker;
use super::registry::Registry;
use super::spare::Spares;
use super::stats::WorkerStats;
use super::trace::{self, Recorder};
use super::worker::WorkerLocal;
use crate::goroutine::stack::StackArena;
use crate::goroutine::task::{Origin, Runnable, Task, TaskRef};
use crate::sched::blocking::Pool;
use crate::sched::join_handle::JoinHandle;
use crate::sched::spawn_error::SpawnError;
use crate::wait::Site;

/// How far a runtime is in its life. Phases only move forward, in this order, so they compare:
/// `phase >= Phase::Cancelling` means "cancelling or stopping".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Goroutines run.
    Running = 0,
    /// A shutdown began (`shutdown_timeout` or a drop): goroutines run on, new spawns are
    /// refused.
    Draining = 1,
    /// A shutdown ran out of time: goroutines that have not started are dropped, and the
    /// started ones are unwound at their next suspension point.
    Cancelling = 2,
    /// Every goroutine has finished; workers exit.
    Stopping = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Running,
            1 => Phase::Draining,
            2 => Phase::Cancelling,
            _ => Phase::Stopping,
        }
    }
}

/// The parts of a worker that other threads reach.
pub(crate) struct Remote {
    /// Steals goroutines that have not started yet from the worker's local deque.
    pub(crate) stealer: Stealer<TaskRef>,
    /// Goroutines started by this worker and woken by another thread: only this worker may run
    /// them. Pushed by any thread, popped by the owner.
    pub(crate) inbox: Inbox<TaskRef>,
    /// Wakes the worker when it sleeps.
    pub(crate) parker: Parker,
    /// The worker's readiness poller, made when one of its goroutines first waits for I/O
    /// (a runtime without sockets has none); the worker sleeps in it while such a wait is
    /// open, and an unpark then wakes the poller.
    pub(crate) poller: OnceLock<Arc<Poller>>,
    /// The worker's share of the goroutine count.
    pub(crate) counts: Counts,
    /// The worker's counters for [`Runtime::metrics`](crate::Runtime::metrics); the worker
    /// holds a clone.
    pub(crate) stats: Arc<WorkerStats>,
    /// The worker's progress, as the monitor sees it, and the monitor's yield requests. The
    /// worker keeps a clone of the `Arc`, so its resume path reaches it in one load.
    pub(crate) activity: Arc<Activity>,
    /// Whether a thread runs this slot: always for the first `procs`, while a spare lives for
    /// the others (`super::spare`). SeqCst: read by the deadlock check in the same total
    /// order as the parkers' marks (see `super::deadlock`).
    occupied: AtomicBool,
}

impl Remote {
    /// Whether a worker thread runs this slot.
    pub(crate) fn is_occupied(&self) -> bool {
        self.occupied.load(Ordering::SeqCst)
    }

    pub(crate) fn set_occupied(&self, occupied: bool) {
        self.occupied.store(occupied, Ordering::SeqCst);
    }
}

/// Goroutines spawned and finished on one worker. Written only by that worker, with a load
/// and a store (no read-modify-write, no shared cache line); summed by whoever asks how many
/// goroutines are live ([`Shared::live`]).
///
/// Orderings: a goroutine's spawn is counted before it is queued, and the queue hand-over
/// orders that before its run and its finish; `finished` is stored with Release and loaded
/// with Acquire, so a reader that sees a goroutine's finish also sees its spawn.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Counts {
    spawned: AtomicU64,
    finished: AtomicU64,
}

impl Counts {
    /// Counts a spawn. Only the owning worker calls this.
    pub(crate) fn spawned_one(&self) {
        let n = self.spawned.load(Ordering::Relaxed);
        self.spawned.store(n + 1, Ordering::Relaxed);
    }

    /// Counts a finish. Only the owning worker calls this.
    pub(crate) fn finished_one(&self) {
        let n = self.finished.load(Ordering::Relaxed);
        self.finished.store(n + 1, Ordering::Release);
    }
}

/// State shared by every worker of one runtime, and by its `Runtime` handle.
pub(crate) struct Shared {
    pub(crate) procs: usize,
    pub(crate) stack_size: usize,
    /// Every goroutine stack of this runtime; unmapped when the last worker is gone.
    pub(crate) stacks: Arc<StackArena>,
    /// Goroutines spawned from outside the runtime (and overflow): any worker takes them.
    pub(crate) injector: Injector<TaskRef>,
    /// Every worker slot: the `procs` base workers, then the spare slots.
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) idle: Idle,
    /// The spare workers the monitor starts for workers blocked in system calls.
    pub(crate) spares: Spares,
    /// Goroutines spawned from outside the runtime (the workers count theirs in their
    /// `Counts`). Incremented before the injector push, which orders it before the finish.
    external_spawned: AtomicU64,
    next_id: AtomicU64,
    /// One of [`phase`]'s values; only moves forward. Written by the Runtime handle, read by
    /// workers between goroutines.
    phase: AtomicU8,
    /// Set when the `Runtime` handle was dropped by one of its own goroutines: the last
    /// goroutine to finish then stops the workers (nobody is left to wait for them).
    detached: AtomicBool,
    /// Shutdown sleeps here until `live` reaches 0.
    all_done: Mutex<()>,
    all_done_cv: Condvar,
    pub(crate) deadlock: Deadlock,
    /// Set while a goroutine waits for a stack that sits in some worker's cache.
    stack_flush: AtomicBool,
    /// With `Builder::max_goroutines`: one permit per goroutine that may still be admitted.
    /// Taken by a spawn, given back when the goroutine finishes (`count_finished`).
    admission: Option<Admission>,
    /// The threads that run `spawn_blocking` jobs.
    pub(crate) blocking: Pool,
    /// The monitor thread's settings, sleep and counters.
    pub(crate) monitor: Monitor,
    /// Every live goroutine, for the goroutine dump.
    pub(crate) registry: Registry,
    /// Milliseconds since the runtime started, refreshed by the monitor: stamps parks.
    pub(crate) clock: CoarseClock,
    /// The execution trace, while one is recorded.
    pub(crate) trace: Recorder,
}

impl Shared {
    /// `stealers` has one stealer per worker slot, base workers first; `spare_locals` are
    /// the deques of the spare slots, in order.
    pub(crate) fn new(
        config: &Config,
        stealers: Vec<Stealer<TaskRef>>,
        spare_locals: Vec<Worker<TaskRef>>,
    ) -> Shared {
        let Config {
            procs,
            stack_size,
            max_goroutines,
            blocking,
            time_slice,
            trace,
            ..
        } = *config;
        debug_assert_eq!(stealers.len(), procs + spare_locals.len());
        let spare_locals_len = spare_locals.len();
        let slots = stealers.len();
        let remotes = stealers
            .into_iter()
            .enumerate()
            .map(|(index, stealer)| Remote {
                stealer,
                inbox: Inbox::new(),
                parker: Parker::new(),
                poller: OnceLock::new(),
                counts: Counts::default(),
                stats: Arc::default(),
                activity: Arc::default(),
                occupied: AtomicBool::new(index < procs),
            })
            .collect();
        Shared {
            procs,
            stack_size,
            stacks: StackArena::new(stack_size),
            injector: Injector::new(),
            remotes,
            idle: Idle::new(procs),
            spares: Spares::new(procs, spare_locals),
            external_spawned: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            phase: AtomicU8::new(Phase::Running as u8),
            detached: AtomicBool::new(false),
            all_done: Mutex::new(()),
            all_done_cv: Condvar::new(),
            deadlock: Deadlock::default(),
            stack_flush: AtomicBool::new(false),
            admission: max_goroutines.map(Admission::new),
            blocking: Pool::new(blocking),
            monitor: Monitor::new(time_slice, config.stall_warnings),
            registry: Registry::new(procs + spare_locals_len + 1),
            clock: CoarseClock::new(),
            trace: Recorder::new(procs, slots, trace),
        }
    }

    /// Spawns a goroutine: onto the current worker's deque when called from one of this
    /// runtime's goroutines, else onto the global queue. Refused once a shutdown began, or
    /// when no stack can be reserved for it.
    ///
    /// At the `max_goroutines` limit it fails with `AtCapacity`, or, with `wait`, waits for a
    /// goroutine to finish (parking the calling goroutine, or blocking the calling thread).
    pub(crate) fn try_spawn<F, T>(
        self: &Arc<Shared>,
        f: F,
        wait: bool,
        origin: Origin,
    ) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit(wait, origin.site)?;
        current::with_worker(|worker| {
            let worker = worker.filter(|w| w.belongs_to(self));
            self.admitted_spawn(worker, f, origin)
        })
    }

    /// The rest of [`try_spawn`](Self::try_spawn), once admitted: from `worker`, a worker of
    /// this runtime, or from outside.
    fn admitted_spawn<F, T>(
        self: &Arc<Self>,
        worker: Option<&WorkerLocal>,
        f: F,
        origin: Origin,
    ) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // Every goroutine gets a stack slot reserved before it is admitted, so that it can
        // always start (`StackArena::reserve`); the reservation goes back when it finishes.
        let reserved = match worker {
            Some(worker) => worker.reserve_stack(),
            None => self.stacks.reserve(1),
        };
        if let Err(source) = reserved {
            self.goroutine_finished();
            return Err(SpawnError::stacks(
                source,
                self.live(),
                self.stacks.usable(),
            ));
        }
        let id = match worker {
            Some(worker) => worker.count_spawned(),
            None => {
                self.external_spawned.fetch_add(1, Ordering::Relaxed);
                self.take_ids(1)
            }
        };
        let shard = match worker {
            Some(worker) => worker.index(),
            None => self.registry.outside_shard(),
        };
        let task = Task::new(Arc::as_ptr(self).cast(), id, origin, shard, f);
        self.registry.insert(task.header());
        if self.trace.enabled() {
            trace::created(self, worker, task.header());
        }
        let handle = JoinHandle::new(task.clone());
        match worker {
            Some(worker) => worker.push_spawned(task),
            None => {
                self.injector.push(task);
                self.notify_work();
            }
        }
        Ok(handle)
    }

    /// [`try_spawn`](Self::try_spawn), panicking with the reason when it is refused (at
    /// the caller's line: `#[track_caller]`).
    #[track_caller]
    pub(crate) fn spawn<F, T>(self: &Arc<Shared>, f: F, origin: Origin) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.try_spawn(f, true, origin) {
            Ok(handle) => handle,
            Err(err) => panic!("{err}"),
        }
    }

    /// The runtime's id in the census of threads (`crate::wait::census`): its address.
    pub(crate) fn census_id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Admits one more goroutine, or says why not (see `try_spawn`); a wait for room waits at
    /// `site`, the spawn's line. Inline: without `max_goroutines` this is a load and two
    /// compares on every spawn.
    #[inline]
    fn admit(&self, wait: bool, site: Site) -> Result<(), SpawnError> {
        if self.phase() != Phase::Running {
            return Err(SpawnError::ShuttingDown);
        }
        match &self.admission {
            None => Ok(()),
            Some(admission) => self.admit_through(admission, wait, site),
        }
    }

    /// [`admit`](Self::admit) with `max_goroutines`: takes a permit from the gate, waiting for
    /// one if `wait`.
    fn admit_through(
        &self,
        admission: &Admission,
        wait: bool,
        site: Site,
    ) -> Result<(), SpawnError> {
        // Given back in `goroutine_finished`, when this goroutine ends.
        if !admission.try_admit() {
            if !wait {
                return Err(SpawnError::AtCapacity);
            }
            admission.admit(site);
        }
        if self.phase() != Phase::Running {
            // A shutdown began while we waited for room.
            self.goroutine_finished();
            return Err(SpawnError::ShuttingDown);
        }
        Ok(())
    }

    /// A goroutine admitted by `admit` ended (or was not spawned after all): room for another.
    #[inline]
    pub(crate) fn goroutine_finished(&self) {
        if let Some(admission) = &self.admission {
            admission.release();
        }
    }

    /// Asks every worker to hand its cached stacks back to the arena: a goroutine could not
    /// get a stack although one is reserved for it, so the free one is in some worker's
    /// cache (see `WorkerLocal::start`).
    pub(crate) fn request_stack_flush(&self) {
        // Relaxed: a hint; the unparks below make every worker look at it soon.
        self.stack_flush.store(true, Ordering::Relaxed);
        for index in 0..self.remotes.len() {
            self.unpark_worker(index);
        }
    }

    /// Whether workers should hand their cached stacks back to the arena.
    pub(crate) fn stack_flush_requested(&self) -> bool {
        // Relaxed: a hint guarding no data; the stacks themselves move under the arena's lock.
        self.stack_flush.load(Ordering::Relaxed)
    }

    /// A stack was found again: workers may keep their caches.
    pub(crate) fn stack_flush_done(&self) {
        // Relaxed: as above; a worker that still sees `true` only flushes its cache once more.
        self.stack_flush.store(false, Ordering::Relaxed);
    }

    /// Reserves `n` goroutine ids and returns the first.
    pub(crate) fn take_ids(&self, n: u64) -> u64 {
        // Relaxed: ids only need to be unique, which the RMW gives.
        self.next_id.fetch_add(n, Ordering::Relaxed)
    }

    /// Wakes a parked worker to take stealable work, if the idle rules ask for one.
    #[inline]
    pub(crate) fn notify_work(&self) {
        if let Some(index) = self.idle.notify_work() {
            self.unpark_worker(index);
        }
    }

    /// Wakes worker `index` if it sleeps (or makes its next sleep return at once).
    pub(crate) fn unpark_worker(&self, index: usize) {
        let remote = &self.remotes[index];
        if remote.parker.unpark_with(|| {
            if let Some(poller) = remote.poller.get() {
                poller.wake();
            }
        }) {
            self.deadlock.count_wake();
        }
    }

    /// How many worker slots a thief looks at: the base workers, and the spare slots once a
    /// spare has started (before that they are all empty).
    #[inline]
    pub(crate) fn steal_slots(&self) -> usize {
        if self.spares.started() == 0 {
            self.procs
        } else {
            self.remotes.len()
        }
    }

    /// Whether any queue holds a goroutine: the global queue, a deque or an inbox.
    pub(crate) fn has_queued_work(&self) -> bool {
        self.has_stealable_work() || self.remotes.iter().any(|r| !r.inbox.is_empty())
    }

    /// Whether any queue another worker could take from holds a goroutine.
    pub(crate) fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    /// Goroutines spawned and not yet finished: the sum over the workers' counts.
    ///
    /// Exact when nothing changes meanwhile, and never too low: `finished` is read first, and
    /// with Acquire, so every finish seen brings its spawn with it. A zero is therefore real,
    /// and final once no spawn can come from outside.
    pub(crate) fn live(&self) -> usize {
        // SeqCst: orders the caller's own count updates before these loads, against another
        // worker doing the same (see `note_if_all_done`).
        fence(Ordering::SeqCst);
        let finished: u64 = self
            .remotes
            .iter()
            .map(|r| r.counts.finished.load(Ordering::Acquire))
            .sum();
        let spawned: u64 = self.external_spawned.load(Ordering::Relaxed)
            + self
                .remotes
                .iter()
                .map(|r| r.counts.spawned.load(Ordering::Relaxed))
                .sum::<u64>();
        usize::try_from(spawned.saturating_sub(finished)).unwrap_or(usize::MAX)
    }

    /// Goroutines ever spawned on this runtime (admitted ones: a refused spawn is not counted).
    pub(crate) fn spawned(&self) -> u64 {
        // Relaxed: a statistic; see `live` for the orderings that make counts exact.
        self.external_spawned.load(Ordering::Relaxed)
            + self
                .remotes
                .iter()
                .map(|r| r.counts.spawned.load(Ordering::Relaxed))
                .sum::<u64>()
    }

    /// Called by a worker that ran out of work, after its last count update: if no goroutine
    /// is live, wakes a shutdown waiting for that, and stops a detached runtime.
    ///
    /// Why the last finish is always noticed: every worker that finishes a goroutine looks
    /// here before it parks, and the SeqCst fences in `live` order the two looks of any two
    /// such workers, so the later one sees both finishes. A shutdown that found goroutines
    /// live waits under `all_done`, which this takes before notifying.
    pub(crate) fn note_if_all_done(&self) {
        if self.live() != 0 {
            return;
        }
        drop(self.all_done.lock());
        self.all_done_cv.notify_all();
        // Acquire: pairs with `detach`'s Release, which came before the detaching
        // goroutine's finish, which `live` saw.
        if self.detached.load(Ordering::Acquire) {
            self.set_phase(Phase::Stopping);
            self.blocking.close();
        }
    }

    /// The `Runtime` handle is gone, dropped by a goroutine of this runtime (which therefore
    /// still counts as live): stop the workers when the last goroutine finishes.
    pub(crate) fn detach(&self) {
        self.detached.store(true, Ordering::Release);
    }

    /// Waits until no goroutine is live, or until `deadline`. Returns the number still live.
    pub(crate) fn wait_all_done(&self, deadline: Option<Instant>) -> usize {
        let mut lock = self.all_done.lock();
        loop {
            let live = self.live();
            if live == 0 {
                return 0;
            }
            match deadline {
                Some(deadline) => {
                    if self.all_done_cv.wait_until(&mut lock, deadline).timed_out() {
                        return self.live();
                    }
                }
                None => self.all_done_cv.wait(&mut lock),
            }
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        // Acquire: pairs with the Release in `set_phase`, so a worker that sees Stopping also
        // sees `live == 0`'s history.
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves forward to `phase` (never back: a later phase already set stays) and wakes every
    /// worker, and the monitor, so they notice.
    pub(crate) fn set_phase(&self, phase: Phase) {
        // Release: see `phase`. fetch_max keeps the order even if two shutdown paths race.
        self.phase.fetch_max(phase as u8, Ordering::Release);
        for index in 0..self.remotes.len() {
            self.unpark_worker(index);
        }
        self.monitor.wake();
    }

    /// How many times the monitor asked a goroutine that ran for a whole time slice to yield.
    pub(crate) fn preemption_requests(&self) -> u64 {
        self.monitor.preemption_requests()
    }
}
