//! What all workers of one runtime share: the global queue, each worker's stealer, inbox and
//! parker, the idle bookkeeping, and the goroutine count that shutdown waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_deque::{Injector, Stealer};
use parking_lot::{Condvar, Mutex};

use super::context;
use super::idle::Idle;
use super::parker::Parker;
use crate::goroutine::join::JoinHandle;
use crate::goroutine::stack::StackArena;
use crate::goroutine::task::{Task, TaskRef};

/// Runtime phases, in the order they happen.
pub(crate) mod phase {
    /// Goroutines run.
    pub(crate) const RUNNING: u8 = 0;
    /// A shutdown ran out of time: goroutines that have not started are dropped, and the
    /// started ones are unwound at their next suspension point.
    pub(crate) const CANCELLING: u8 = 1;
    /// Every goroutine has finished; workers exit.
    pub(crate) const STOPPING: u8 = 2;
}

/// The parts of a worker that other threads reach.
pub(crate) struct Remote {
    /// Steals goroutines that have not started yet from the worker's local deque.
    pub(crate) stealer: Stealer<TaskRef>,
    /// Goroutines started by this worker and woken by another thread: only this worker may run
    /// them. Pushed by any thread, popped by the owner.
    pub(crate) inbox: Injector<TaskRef>,
    /// Wakes the worker when it sleeps.
    pub(crate) parker: Parker,
}

/// State shared by every worker of one runtime, and by its `Runtime` handle.
pub(crate) struct Shared {
    pub(crate) procs: usize,
    pub(crate) stack_size: usize,
    /// Every goroutine stack of this runtime; unmapped when the last worker is gone.
    pub(crate) stacks: Arc<StackArena>,
    /// Goroutines spawned from outside the runtime (and overflow): any worker takes them.
    pub(crate) injector: Injector<TaskRef>,
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) idle: Idle,
    /// Goroutines spawned and not yet finished. Incremented by spawn (Relaxed: the queue push
    /// that follows orders it before the decrement), decremented with AcqRel by each goroutine
    /// as it finishes (`Task::finish`; Release: the goroutine's effects happen-before a
    /// shutdown that reads 0 with Acquire).
    live: AtomicUsize,
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
}

impl Shared {
    pub(crate) fn new(procs: usize, stack_size: usize, stealers: Vec<Stealer<TaskRef>>) -> Shared {
        let remotes = stealers
            .into_iter()
            .map(|stealer| Remote {
                stealer,
                inbox: Injector::new(),
                parker: Parker::new(),
            })
            .collect();
        Shared {
            procs,
            stack_size,
            stacks: StackArena::new(stack_size),
            injector: Injector::new(),
            remotes,
            idle: Idle::new(procs),
            live: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            phase: AtomicU8::new(phase::RUNNING),
            detached: AtomicBool::new(false),
            all_done: Mutex::new(()),
            all_done_cv: Condvar::new(),
        }
    }

    /// Spawns a goroutine: onto the current worker's deque when called from one of this
    /// runtime's goroutines, else onto the global queue.
    pub(crate) fn spawn<F, T>(self: &Arc<Shared>, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.live.fetch_add(1, Ordering::Relaxed);
        match context::current_worker().filter(|w| w.belongs_to(self)) {
            Some(worker) => {
                let task = Task::new(Arc::as_ptr(self), worker.next_id(), f);
                let handle = JoinHandle::new(task.clone());
                worker.push_spawned(task);
                handle
            }
            None => {
                let task = Task::new(Arc::as_ptr(self), self.take_ids(1), f);
                let handle = JoinHandle::new(task.clone());
                self.injector.push(task);
                self.notify_work();
                handle
            }
        }
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
            self.remotes[index].parker.unpark();
        }
    }

    /// Whether any queue another worker could take from holds a goroutine.
    pub(crate) fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Counts a goroutine as finished.
    pub(crate) fn finished_one(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Lock before notifying: a shutdown that read `live != 0` under this lock is
            // already waiting on the condvar, so it cannot miss this notification.
            drop(self.all_done.lock());
            self.all_done_cv.notify_all();
            // Acquire: the detaching goroutine stored the flag before it finished, and its
            // finish is in the RMW chain this fetch_sub read from.
            if self.detached.load(Ordering::Acquire) {
                self.set_phase(phase::STOPPING);
            }
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

    pub(crate) fn phase(&self) -> u8 {
        // Acquire: pairs with the Release in `set_phase`, so a worker that sees STOPPING also
        // sees `live == 0`'s history.
        self.phase.load(Ordering::Acquire)
    }

    /// Moves to `phase` and wakes every worker so it notices.
    pub(crate) fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
        for remote in self.remotes.iter() {
            remote.parker.unpark();
        }
    }
}
