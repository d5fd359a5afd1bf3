//! Idle workers: stealable work is never stranded while every worker sleeps.
//!
//! Runs the real `sched/idle.rs` (`Idle`) and `sched/parker.rs` (`Parker`), driven by a model
//! of the worker loop that mirrors:
//! - `sched/worker.rs`: `WorkerLocal::run` (own queues, else search, else stop on `STOPPING`,
//!   else park), `next_local` (the own deque, then the injector), `steal_global`, `search`,
//!   `steal_from_others`, `stop_searching`, `park` (`before_park`, the final look at every
//!   queue and the phase, `Parker::park`, `after_wake`) and `push_spawned`;
//! - `sched/shared.rs`: `Shared::spawn` from outside (injector push, then `notify_work`),
//!   `notify_work`, `has_stealable_work`, `phase` and `set_phase`;
//! - `sched/spare.rs`: a spare worker, counted in by `Idle::add_spare` before its thread
//!   starts, that retires (`Idle::retire_spare`, the final look, `add_spare` if it finds
//!   work) where a worker would park.
//!
//! The queues are `queues.rs`'s models of crossbeam-deque. Inboxes (pinned work) and the
//! `CANCELLING` phase are left out: pinned work reaches a worker through its `Parker` alone
//! (modelled in `park_wake`). A goroutine that ran sets `STOPPING` once the test's work is
//! done, as a shutdown would, so that the workers exit; work left in a queue while both
//! workers sleep shows as a deadlock.

use std::cell::Cell;

use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use loom::sync::{Arc, Notify};
use loom::thread;

use crate::check;
use crate::idle::Idle;
use crate::parker::Parker;
use crate::queues::{Deque, Injector, Steal};

/// `sched/shared.rs`'s `phase` values the model uses.
const RUNNING: u8 = 0;
const STOPPING: u8 = 2;

const PROCS: usize = 2;

struct Remote {
    deque: Deque,
    parker: Parker,
}

struct Shared {
    injector: Injector,
    remotes: Vec<Remote>,
    idle: Idle,
    phase: AtomicU8,
    /// What running a goroutine does: the test's.
    on_run: Box<dyn Fn(&Shared) + Send + Sync>,
}

impl Shared {
    fn new(on_run: impl Fn(&Shared) + Send + Sync + 'static) -> Arc<Shared> {
        Shared::with_spares(0, on_run)
    }

    /// A runtime of `PROCS` workers and `spares` spare slots.
    fn with_spares(spares: usize, on_run: impl Fn(&Shared) + Send + Sync + 'static) -> Arc<Shared> {
        let idle = Idle::new(PROCS);
        // Loom gives an atomic's initial value no place in the SeqCst order (see
        // `queues::Injector::new`): a SeqCst load in `notify_work` could read `Idle::new`'s
        // value after a worker's SeqCst `before_park`, which C11 forbids. A search that finds
        // nothing, made before any thread starts, leaves the counts as they were but gives
        // their value that place.
        idle.try_start_searching();
        idle.stop_searching();
        Arc::new(Shared {
            injector: Injector::new(),
            remotes: (0..PROCS + spares)
                .map(|_| Remote {
                    deque: Deque::new(),
                    parker: Parker::new(),
                })
                .collect(),
            idle,
            phase: AtomicU8::new(RUNNING),
            on_run: Box::new(on_run),
        })
    }

    /// `Shared::spawn` from a thread outside the runtime.
    fn spawn_outside(&self) {
        self.injector.push();
        self.notify_work();
    }

    fn notify_work(&self) {
        if let Some(index) = self.idle.notify_work() {
            // The count of wakes of workers asleep for good feeds only the deadlock check,
            // which is not modelled.
            let _ = self.remotes[index].parker.unpark();
        }
    }

    fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.deque.stealer_is_empty())
    }

    fn phase(&self) -> u8 {
        // Acquire as in shared.rs: pairs with the Release in `set_phase`.
        self.phase.load(Ordering::Acquire)
    }

    fn set_phase(&self, phase: u8) {
        // Release as in shared.rs: what came before the phase change is visible to a worker
        // that sees it.
        self.phase.store(phase, Ordering::Release);
        for remote in &self.remotes {
            // The count of wakes of workers asleep for good feeds only the deadlock check,
            // which is not modelled.
            let _ = remote.parker.unpark();
        }
    }
}

/// One worker's own state (`WorkerLocal`, the parts the protocol touches).
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    searching: Cell<bool>,
}

impl Worker {
    fn new(index: usize, shared: &Arc<Shared>) -> Worker {
        Worker {
            index,
            shared: shared.clone(),
            searching: Cell::new(false),
        }
    }

    fn local(&self) -> &Deque {
        &self.shared.remotes[self.index].deque
    }

    /// `WorkerLocal::push_spawned`, from a goroutine running on this worker.
    fn push_spawned(&self) {
        self.local().push();
        self.shared.notify_work();
    }

    /// `WorkerLocal::run`.
    fn run(&self) {
        loop {
            if self.next_local() {
                self.stop_searching();
                (self.shared.on_run)(&self.shared);
                continue;
            }
            if self.search() {
                (self.shared.on_run)(&self.shared);
                continue;
            }
            if self.shared.phase() == STOPPING {
                break;
            }
            if !self.park() {
                break;
            }
        }
    }

    fn next_local(&self) -> bool {
        take(|| self.local().steal()) || self.steal_global()
    }

    fn steal_global(&self) -> bool {
        take(|| self.shared.injector.steal())
    }

    fn search(&self) -> bool {
        if !self.searching.get() {
            if !self.shared.idle.try_start_searching() {
                return false;
            }
            self.searching.set(true);
        }
        if !(self.steal_global() || self.steal_from_others()) {
            return false;
        }
        self.stop_searching();
        true
    }

    fn stop_searching(&self) {
        if self.searching.replace(false) && self.shared.idle.stop_searching() {
            self.shared.notify_work();
        }
    }

    fn steal_from_others(&self) -> bool {
        let slots = self.shared.remotes.len();
        (1..slots)
            .map(|offset| (self.index + offset) % slots)
            .any(|victim| take(|| self.shared.remotes[victim].deque.steal()))
    }

    /// Returns false if this is a spare (the model's goroutines finish at once, so a spare
    /// never has one to wait for) that retired.
    fn park(&self) -> bool {
        let shared = &*self.shared;
        let was_searching = self.searching.replace(false);
        let retiring = self.index >= PROCS;
        if retiring {
            shared.idle.retire_spare(was_searching);
        } else {
            shared.idle.before_park(self.index, was_searching);
        }
        // The final look: after publishing that we park, every queue once more.
        let work_left = !self.local().worker_is_empty()
            || shared.has_stealable_work()
            || shared.phase() == STOPPING;
        if retiring {
            if !work_left {
                return false;
            }
            shared.idle.add_spare();
            if was_searching && shared.idle.try_start_searching() {
                self.searching.set(true);
            }
            return true;
        }
        if !work_left {
            shared.remotes[self.index].parker.park(None, || {});
        }
        if shared.idle.after_wake(self.index) {
            self.searching.set(true);
        } else if work_left && was_searching && shared.idle.try_start_searching() {
            self.searching.set(true);
        }
        true
    }
}

/// `steal_one`'s loop: retries a contended take.
fn take(mut steal: impl FnMut() -> Steal) -> bool {
    loop {
        match steal() {
            Steal::Success => return true,
            Steal::Empty => return false,
            Steal::Retry => continue,
        }
    }
}

fn spawn_worker(index: usize, shared: &Arc<Shared>) -> thread::JoinHandle<()> {
    let shared = shared.clone();
    thread::spawn(move || Worker::new(index, &shared).run())
}

/// A goroutine spawned from outside (onto the injector) is run, whatever both workers are
/// doing when it arrives: about to park, parked, or searching.
#[test]
fn outside_spawn_reaches_a_worker() {
    check(|| {
        let shared = Shared::new(|shared| shared.set_phase(STOPPING));
        let workers: Vec<_> = (0..PROCS).map(|i| spawn_worker(i, &shared)).collect();
        shared.spawn_outside();
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

/// A goroutine spawns onto its worker's deque and then blocks that worker's thread until the
/// new goroutine has run: only the other worker can run it, so the spawn must wake it.
#[test]
fn spawn_on_a_busy_worker_is_stolen() {
    check(|| {
        let ran = Arc::new(Notify::new());
        let shared = {
            let ran = ran.clone();
            Shared::new(move |_| ran.notify())
        };
        let thief = spawn_worker(1, &shared);
        // Worker 0 runs the spawning goroutine.
        Worker::new(0, &shared).push_spawned();
        ran.wait();
        shared.set_phase(STOPPING);
        thief.join().unwrap();
    });
}

/// Two goroutines spawned from outside; the first to run blocks its worker until the second
/// has run. One wake-up goes out for both (a searcher is already looking), so the worker that
/// finds the first must, as the last searcher, wake the other for the second.
///
/// This found a real gap: a searcher whose final look before sleeping found the work gave up
/// its searcher role (`after_wake` returns false), took the first goroutine and woke nobody,
/// while the producer had woken nobody either because it saw that searcher; the second
/// goroutine then waited for a busy worker while the other slept. A cancelled park now
/// searches on (`WorkerLocal::park`).
#[test]
fn last_searcher_wakes_a_worker_for_the_rest() {
    check(|| {
        let started = Arc::new(AtomicUsize::new(0));
        let second_ran = Arc::new(Notify::new());
        let shared = {
            let (started, second_ran) = (started.clone(), second_ran.clone());
            Shared::new(move |shared| {
                // SeqCst: test bookkeeping, not part of the protocol.
                if started.fetch_add(1, Ordering::SeqCst) == 0 {
                    second_ran.wait();
                    shared.set_phase(STOPPING);
                } else {
                    second_ran.notify();
                }
            })
        };
        let workers: Vec<_> = (0..PROCS).map(|i| spawn_worker(i, &shared)).collect();
        shared.spawn_outside();
        shared.spawn_outside();
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

/// Worker 0 is blocked in a system call (the model never runs it), and the monitor has started
/// a spare for it; a goroutine spawned from outside arrives while the spare may be retiring
/// and worker 1 may be parking. Whichever order: the goroutine runs. Either the producer's
/// look at the idle state comes before the spare's retirement, and then the spare's final
/// look sees the goroutine, or it comes after, and then it sees one worker fewer awake and
/// wakes worker 1 if worker 1 sleeps.
#[test]
fn a_retiring_spare_strands_no_work() {
    check(|| {
        let shared = Shared::with_spares(1, |shared| shared.set_phase(STOPPING));
        // `Spares::start`: counted in before its thread exists.
        shared.idle.add_spare();
        let spare = spawn_worker(PROCS, &shared);
        let other = spawn_worker(1, &shared);
        shared.spawn_outside();
        other.join().unwrap();
        spare.join().unwrap();
    });
}
