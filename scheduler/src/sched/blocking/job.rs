//! One blocking job: the closure the pool runs, and the result its `JoinHandle` takes.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use crate::goroutine::home::Owner;
use crate::goroutine::join::JoinState;
use crate::goroutine::task::{Header, Joinable, Stage, drop_contained};
use crate::sched::Shared;
use crate::sched::join_handle::JoinHandle;
use crate::sched::shared::Phase;
use crate::sched::spawn_error::SpawnError;

/// A job as the pool sees it, with its closure and result types erased.
pub(super) trait Job: Send + Sync {
    /// Runs the closure and publishes its result. Called once, by the thread that dequeued it.
    fn run(&self);
    /// Drops the closure unstarted and publishes [`Cancelled`](crate::wait::Cancelled) as its
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
    /// Only for the `JoinHandle`: the id, and a `home` of `BLOCKING` so that `join` never
    /// tries to run it inline.
    header: Header,
    /// `Pending` until the thread that dequeued the job (under the pool's lock, so only one)
    /// takes the closure; `Finished` is written before `join.complete()` and read only by the
    /// unique `JoinHandle` after it saw the completion (Release/Acquire in `JoinState`).
    stage: UnsafeCell<Stage<F, T>>,
    join: JoinState,
}

// SAFETY: `stage` is accessed by one thread at a time as its doc describes: the closure by the
// thread that dequeued the job (F: Send moves it there), the result by the JoinHandle after
// the Release/Acquire hand-off (T: Send). The header and the JoinState are Sync.
unsafe impl<F: Send, T: Send> Sync for BlockingTask<F, T> {}

impl<F, T> BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn new(shared: &Arc<Shared>, f: F) -> Arc<BlockingTask<F, T>> {
        let header = Header::new(Arc::as_ptr(shared).cast(), shared.take_ids(1));
        let claimed = header.home.claim(Owner::Blocking);
        debug_assert!(claimed, "a new header has no home");
        Arc::new(BlockingTask {
            header,
            stage: UnsafeCell::new(Stage::Pending(f)),
            join: JoinState::new(),
        })
    }

    fn take_closure(&self) -> Option<F> {
        // SAFETY: called by the one thread that dequeued the job (field doc).
        unsafe { &mut *self.stage.get() }.take_closure()
    }

    fn finish(&self, result: thread::Result<T>) {
        // SAFETY: the closure was taken by this thread, so nobody else touches `stage` until
        // `complete` publishes it to the JoinHandle.
        unsafe { *self.stage.get() = Stage::Finished(result) };
        self.join.complete();
    }
}

impl<F, T> Job for BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        let f = self
            .take_closure()
            .expect("scheduler: internal error: blocking job run twice");
        // As for a goroutine: the hook has printed the panic; the payload goes to `join`.
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        self.finish(result);
    }

    fn cancel(&self) {
        // On the pool's or the shutting-down thread's stack: contain a panicking drop.
        drop_contained(self.take_closure());
        self.finish(Err(Box::new(crate::wait::Cancelled)));
    }
}

impl<F, T> Drop for BlockingTask<F, T> {
    /// As a goroutine's: an unjoined result or an unstarted closure is dropped wherever the
    /// last reference goes, a pool thread included, and a panic there is contained.
    fn drop(&mut self) {
        let stage = std::mem::replace(self.stage.get_mut(), Stage::Taken);
        if !matches!(stage, Stage::Taken) {
            drop_contained(stage);
        }
    }
}

impl<F, T> Joinable<T> for BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn run_inline(&self, _finished: &dyn Fn()) {
        unreachable!("scheduler: internal error: a blocking job is never run inline");
    }

    fn join_state(&self) -> &JoinState {
        &self.join
    }

    unsafe fn take_result(&self) -> thread::Result<T> {
        // SAFETY: completion was observed with Acquire (caller's contract), so `finish`'s
        // write is visible and no other thread touches `stage` any more.
        unsafe { &mut *self.stage.get() }.take_result()
    }
}
