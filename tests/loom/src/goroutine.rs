//! Model of a goroutine's scheduling state and of the worker that parks and runs it.
//!
//! Compiles the real `goroutine/state.rs` (the state word and its transitions: `park`,
//! `wake`, `finish`) and mirrors:
//! - `goroutine/home.rs`: `Home::claim`;
//! - `sched/worker.rs`: `WorkerLocal::resume` (the `Suspend::Park` arm: the CAS
//!   `ACTIVE -> PARKED`, or the swap back to `ACTIVE` and a turn through `ready`; the store of
//!   `DONE` when the body returns), `WorkerLocal::park` (the final look at the inbox before
//!   `Parker::park`) and `WorkerLocal::drain_inbox`;
//! - `sched/wake.rs`: `unpark` (the CAS loop out of `PARKED` or to `NOTIFIED`, then the push on
//!   the home inbox and `Parker::unpark`).
//!
//! The worker's `Parker` is the real `sched/parker.rs`. The inbox, a crossbeam `Injector` in the
//! scheduler, is a lock-protected queue here: both are linearizable, and a pop acquires what
//! the push released. A wake from a goroutine of the home worker itself goes to `runnext`
//! without touching anything shared; the models' wakers are other threads.
//!
//! A goroutine's code is a `body` the worker calls once per resume: it returns
//! [`Step::Park`] where the goroutine would call `park_current` and [`Step::Return`] where it
//! returns, so a wait loop `while waiter.is_waiting() { park_current() }` is a body that
//! checks `is_waiting` once per call.

use std::collections::VecDeque;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};

use crate::parker::Parker;
use crate::task_state::TaskState;

/// `home.rs`'s encoding of an unclaimed goroutine.
const NO_HOME: usize = usize::MAX;

/// The parts of a worker other threads reach (`sched/shared.rs`'s `Remote`).
pub(crate) struct Remote {
    inbox: Mutex<VecDeque<Arc<Goroutine>>>,
    pub(crate) parker: Parker,
}

impl Remote {
    pub(crate) fn new() -> Arc<Remote> {
        Arc::new(Remote {
            inbox: Mutex::new(VecDeque::new()),
            parker: Parker::new(),
        })
    }
}

/// A goroutine's `Header`, as far as scheduling goes. The model has one worker, index 0.
pub(crate) struct Goroutine {
    pub(crate) state: TaskState,
    home: AtomicUsize,
    /// The home worker's remote; the real code finds it through `Header::shared` and `home`.
    remote: Arc<Remote>,
}

impl Goroutine {
    /// A spawned goroutine (`Header::new`): `ACTIVE`, no home yet.
    pub(crate) fn new(remote: &Arc<Remote>) -> Arc<Goroutine> {
        Arc::new(Goroutine {
            state: TaskState::new(),
            home: AtomicUsize::new(NO_HOME),
            remote: remote.clone(),
        })
    }

    /// `Header::claim`.
    fn claim(&self, home: usize) -> bool {
        self.home
            // AcqRel as in task.rs: the winner takes the closure next.
            .compare_exchange(NO_HOME, home, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// What the goroutine's body did in one resume.
pub(crate) enum Step {
    /// Suspended with `Suspend::Park`.
    Park,
    /// Returned.
    Return,
}

/// Worker 0's thread: starts `task`, resumes it until its body returns, and sleeps on the
/// parker whenever the goroutine is parked and the inbox is empty (the worker has nothing else
/// to run).
pub(crate) fn run(task: &Arc<Goroutine>, mut body: impl FnMut() -> Step) {
    let remote = &task.remote;
    // `WorkerLocal::start`.
    assert!(task.claim(0));
    loop {
        // `WorkerLocal::resume`.
        match body() {
            Step::Return => {
                task.state.finish();
                return;
            }
            Step::Park => {
                if !task.state.park() {
                    // Woken meanwhile: back of `ready`, it runs again.
                    continue;
                }
            }
        }
        // Parked. `next_local` finds nothing but the inbox; the worker parks until a waker
        // queues the goroutine there.
        loop {
            // `drain_inbox`.
            if let Some(woken) = remote.inbox.lock().unwrap().pop_front() {
                assert!(Arc::ptr_eq(&woken, task));
                break;
            }
            // `WorkerLocal::park`: the final look at the inbox, then sleep.
            if remote.inbox.lock().unwrap().is_empty() {
                remote.parker.park(None, || {});
            }
        }
    }
}

/// `sched/wake.rs`'s `unpark`, from a thread that is not the goroutine's home worker.
pub(crate) fn unpark(task: &Arc<Goroutine>) {
    if !task.state.wake() {
        return;
    }
    // We moved it out of PARKED, so we own queuing it on its home worker.
    // Relaxed as in wake.rs: ordered by the Acquire CAS above.
    let home = task.home.load(Ordering::Relaxed);
    assert_eq!(home, 0, "a parked goroutine's home is visible to its waker");
    let mut inbox = task.remote.inbox.lock().unwrap();
    assert!(inbox.is_empty(), "a goroutine is in at most one queue");
    inbox.push_back(task.clone());
    drop(inbox);
    // The count of wakes of workers asleep for good feeds only the deadlock check,
    // which is not modelled.
    let _ = task.remote.parker.unpark();
}

/// The real `Waiter`'s goroutine target: wakes the model's goroutine through [`unpark`], as
/// `crate::sched::wake`'s `Wake` for a task does through the scheduler's `unpark`.
struct Waker(Arc<Goroutine>);

impl crate::waiter::Wake for Waker {
    fn wake(self: std::sync::Arc<Self>) {
        unpark(&self.0);
    }
}

/// A waiter target for `task`.
pub(crate) fn waker(task: &Arc<Goroutine>) -> std::sync::Arc<dyn crate::waiter::Wake> {
    std::sync::Arc::new(Waker(task.clone()))
}
