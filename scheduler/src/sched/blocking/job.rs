//! One blocking job: the closure the pool runs, and the result its `JoinHandle` takes.

use std::sync::Arc;
use std::thread;

use crate::goroutine::completion::Completion;
use crate::goroutine::join::JoinState;
use crate::goroutine::task::{Header, Joinable, TaskRef};
use crate::sched::Shared;
use crate::sched::join_handle::JoinHandle;
use crate::sched::shared::Phase;
use crate::sched::spawn_error::SpawnError;

/// A job as the pool sees it, with its closure and result types erased.
pub(super) trait Job: Send + Sync {
    /// Runs the closure and publishes its result. Called once, by the thread that dequeued it.
    fn run(&self);
    /// Drops the closure unstarted and publishes [`Cancelled`](crate::Cancelled) as its
    /// result. Called once, by the shutdown that dequeued it.
    fn cancel(&self);
}

pub(super) type JobRef = Arc<dyn Job>;

/// Queues `f` on `shared`'s blocking pool. Refused once a shutdown began.
pub(crate) fn spawn<F, T>(shared: &Arc<Shared>, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if shared.phase() != Phase::Running {
        return Err(SpawnError::ShuttingDown);
    }
    let task = BlockingTask::new(shared, f);
    let handle = JoinHandle::new(task.clone());
    shared.blocking.submit(shared, task)?;
    Ok(handle)
}

/// One blocking job: the pool's [`Job`] and the [`JoinHandle`]'s [`Joinable`].
struct BlockingTask<F, T> {
    /// From the runtime's id sequence, which goroutines share.
    id: u64,
    /// The closure, taken by the thread that dequeued the job (under the pool's lock, so only
    /// one) or by the shutdown that cancels it; then the result, taken by the JoinHandle.
    completion: Completion<F, T>,
}

impl<F, T> BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn new(shared: &Arc<Shared>, f: F) -> Arc<BlockingTask<F, T>> {
        Arc::new(BlockingTask {
            id: shared.take_ids(1),
            completion: Completion::new(f),
        })
    }
}

impl<F, T> Job for BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        // SAFETY: called once, by the thread that dequeued the job (`Job::run` doc).
        unsafe { self.completion.run(&|| {}) }
    }

    fn cancel(&self) {
        // SAFETY: called once, by the shutdown that dequeued the job. On the pool's or the
        // shutting-down thread's stack: the closure's drop is contained.
        unsafe { self.completion.cancel(&|| {}) }
    }
}

impl<F, T> Joinable<T> for BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn id(&self) -> u64 {
        self.id
    }

    fn goroutine(&self) -> Option<&Header> {
        None
    }

    fn run_inline(&self, _finished: &dyn Fn()) {
        unreachable!("scheduler: internal error: a blocking job is never run inline");
    }

    fn completion_state(&self) -> &JoinState {
        self.completion.join_state()
    }

    unsafe fn take_result(&self) -> thread::Result<T> {
        // SAFETY: the caller's contract is `Completion::take_result`'s.
        unsafe { self.completion.take_result() }
    }

    fn runnable(self: Arc<Self>) -> Option<TaskRef> {
        None
    }
}
