//! Spare workers: what the monitor starts when a worker is blocked in a system call, so that
//! goroutines that have not started keep running on `procs` threads (Go hands the blocked
//! M's P to another M).
//!
//! # Why a spare is a whole worker
//!
//! A started goroutine never changes thread, so the goroutines a blocked worker started wait
//! for it, whatever happens. What can move is the work that has not started: the blocked
//! worker's deque and the global queue. The thread that starts those goroutines becomes their
//! home for life, so it must be a worker in every respect: its own deque, inbox, parker,
//! counters and timers, reachable by index like the others. A runtime therefore has
//! `procs + max_spare_workers` worker slots ([`Shared::remotes`]); the first `procs` are
//! occupied for the runtime's whole life, the others by spares while they live.
//!
//! # Life of a spare
//!
//! * **Start** (the monitor, [`Spares::start`]): under the slots' lock, a vacant slot is
//!   taken, marked occupied, counted as an unparked worker ([`Idle::add_spare`]) and as a
//!   wake for the deadlock check, and its thread is started. The thread runs the ordinary
//!   worker loop: it searches, steals from the blocked worker's deque (and anyone's), and
//!   runs what it finds.
//! * **Parks** like any worker while goroutines it started are blocked: it must stay for
//!   them, and producers may wake it for new work.
//! * **Retires** when it would park with no started goroutine left: it is counted out of the
//!   idle state without becoming a sleeper ([`Idle::retire_spare`]), looks at every queue
//!   once more (the same final look as a park, and for the same reason), and either goes on
//!   (work came) or leaves the loop, hands its timers to the process-wide timer thread, gives
//!   back its stacks, and vacates its slot ([`Spares::vacate`]).
//!
//! The base workers never retire, so when the blocked worker returns the runtime briefly has
//! more than `procs` workers awake; the spare leaves as soon as it runs out of goroutines of
//! its own.
//!
//! # When the monitor starts one
//!
//! On a tick where some worker has run one resume for a whole time slice while using less
//! than a quarter of that time in CPU (its thread's CPU clock: blocked, not computing; a
//! goroutine that computes is only asked to yield), goroutines wait in a stealable queue, no
//! worker is parked (a parked one would be woken instead), and fewer than `procs` workers are
//! not blocked. One spare per tick, at most `max_spare_workers` at once.
//!
//! # Integrity
//!
//! A spare's thread is joined: by the next start that reuses its slot, by the deadlock check
//! (which counts threads and so must not count one that is on its way out), or at shutdown,
//! after the monitor (the only thread that starts spares) has exited. Starts are refused
//! once the runtime stops, under the same lock the final join takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use crossbeam_deque::Worker;
use parking_lot::Mutex;

use super::deadlock;
use super::shared::{Phase, Shared};
use super::trace::RawKind;
use super::worker::{self, WorkerLocal};
use crate::goroutine::overflow::AltStack;
use crate::goroutine::task::TaskRef;

/// One spare slot.
struct Slot {
    /// No spare occupies the slot (one may still be leaving its thread).
    vacant: bool,
    /// The slot's deque, whose stealer is the slot's `Remote::stealer`: here while no thread
    /// holds it.
    local: Option<Worker<TaskRef>>,
    /// The thread that occupies (or occupied) the slot, until it is joined.
    thread: Option<JoinHandle<()>>,
}

/// The spare slots of one runtime.
pub(crate) struct Spares {
    /// Index of the first spare slot in `Shared::remotes`: `procs`.
    first: usize,
    slots: Mutex<Vec<Slot>>,
    /// Spares occupying a slot now. Changed under `slots`' lock; read as a hint.
    occupied: AtomicUsize,
    /// Spares started so far: a statistic, and `Shared::steal_slots`'s sign that thieves must
    /// look at the spare slots. Incremented under `slots`' lock before the new spare can take
    /// its deque (its thread takes the same lock first), so a thief that sees work a spare
    /// queued (the deque's hand-over synchronises with the spare) sees the increment too.
    started: AtomicUsize,
}

impl Spares {
    /// `locals` are the spare slots' deques, in slot order after the `first` base workers.
    pub(crate) fn new(first: usize, locals: Vec<Worker<TaskRef>>) -> Spares {
        Spares {
            first,
            slots: Mutex::new(
                locals
                    .into_iter()
                    .map(|local| Slot {
                        vacant: true,
                        local: Some(local),
                        thread: None,
                    })
                    .collect(),
            ),
            occupied: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        }
    }

    /// Spares running now (occupying a slot).
    pub(crate) fn occupied(&self) -> usize {
        // Relaxed: a count for the monitor's rule and for metrics; it orders nothing.
        self.occupied.load(Ordering::Relaxed)
    }

    /// Spares started since the runtime began.
    #[inline]
    pub(crate) fn started(&self) -> usize {
        // Relaxed: the lock orders the increment before anything a spare does (see the
        // field); a thief that reads 0 has seen nothing of any spare.
        self.started.load(Ordering::Relaxed)
    }

    /// Starts a spare worker in a vacant slot. False if none is vacant, the runtime stops, or
    /// the thread cannot start.
    pub(crate) fn start(&self, shared: &Arc<Shared>) -> bool {
        let mut slots = self.slots.lock();
        // Under the lock that `join_all` takes after the phase reaches STOPPING: a spare
        // started here is joined there.
        if shared.phase() == Phase::Stopping {
            return false;
        }
        let Some(position) = slots.iter().position(|slot| slot.vacant) else {
            return false;
        };
        let slot = &mut slots[position];
        if let Some(previous) = slot.thread.take() {
            // The slot's last occupant vacated it and is leaving its thread.
            let _ = previous.join();
        }
        let index = self.first + position;
        let Ok(signal_stack) = AltStack::new() else {
            return false;
        };
        let remote = &shared.remotes[index];
        // Before the thread exists: the idle protocol counts it awake (it will look at every
        // queue before it parks or retires), and the deadlock check sees one more worker that
        // is not asleep, a change it must notice like a wake (module doc of `deadlock`).
        remote.set_occupied(true);
        shared.idle.add_spare();
        shared.deadlock.count_wake();
        let thread_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("scheduler-spare-{index}"))
            .spawn(move || {
                let _signal_stack = signal_stack.enter(thread_shared.stacks.usable());
                // Waits for this lock until `start` has recorded the thread.
                let local = thread_shared.spares.slots.lock()[position]
                    .local
                    .take()
                    .expect("an occupied slot's deque waits for its thread");
                worker::thread_main(index, thread_shared, local);
            });
        match spawned {
            Ok(handle) => {
                slot.vacant = false;
                slot.thread = Some(handle);
                // Relaxed: under the lock; see `occupied`.
                self.occupied.fetch_add(1, Ordering::Relaxed);
                self.started.fetch_add(1, Ordering::Relaxed);
                if shared.trace.enabled() {
                    shared
                        .trace
                        .record(None, RawKind::SpareStart { worker: index });
                }
                true
            }
            Err(_) => {
                // No thread: the slot stays vacant; undo the counts.
                shared.idle.retire_spare(false);
                remote.set_occupied(false);
                false
            }
        }
    }

    /// Called on a spare's thread after its worker loop ended (it retired, or the runtime
    /// stops): gives the slot back, then reports a stall if every other worker sleeps for good
    /// (the spare was the last one awake, so no sleeping worker would report it).
    pub(crate) fn vacate(&self, shared: &Shared, index: usize, worker: WorkerLocal) {
        let local = worker.into_deque();
        {
            let mut slots = self.slots.lock();
            let slot = &mut slots[index - self.first];
            slot.local = Some(local);
            slot.vacant = true;
            shared.remotes[index].set_occupied(false);
            // Relaxed: under the lock; see `occupied`.
            self.occupied.fetch_sub(1, Ordering::Relaxed);
        }
        if deadlock::all_asleep(shared) {
            shared.deadlock.stalled();
        }
    }

    /// Joins the threads of spares that vacated their slots. Returns how many spare threads
    /// remain: those occupying a slot.
    pub(crate) fn reap(&self) -> usize {
        let (leaving, remaining) = {
            let mut slots = self.slots.lock();
            let leaving: Vec<JoinHandle<()>> = slots
                .iter_mut()
                .filter(|slot| slot.vacant)
                .filter_map(|slot| slot.thread.take())
                .collect();
            let remaining = slots.iter().filter(|slot| slot.thread.is_some()).count();
            (leaving, remaining)
        };
        // A vacated spare only returns from its thread function: these joins are short.
        for thread in leaving {
            let _ = thread.join();
        }
        remaining
    }

    /// Joins every spare thread. Called once the phase is STOPPING and the monitor has
    /// exited, so no spare starts any more and every running one leaves its loop.
    pub(crate) fn join_all(&self) {
        let threads: Vec<JoinHandle<()>> = self
            .slots
            .lock()
            .iter_mut()
            .filter_map(|slot| slot.thread.take())
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}
