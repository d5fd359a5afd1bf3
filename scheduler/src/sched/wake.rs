//! Making a parked goroutine runnable again, from any thread.

use std::sync::Arc;

use super::current;
use super::shared::Shared;
use super::trace;
use crate::goroutine::task::{Header, Task, TaskRef};
use crate::wait::waiter::Wake;

/// Wakes `task`: a parked goroutine is queued on its home worker; one that is queued or
/// running is marked, so that its next attempt to park returns at once. Waking a finished
/// goroutine does nothing.
///
/// Whatever the caller wrote before this call is visible to the goroutine when it next checks
/// after this wake (see the [`state`] module).
pub(crate) fn unpark(task: &TaskRef) {
    if was_parked(task) {
        enqueue(task.clone());
    }
}

/// A goroutine waiting on a kernel [`Waiter`](crate::wait::waiter::Waiter) is woken as any
/// other: [`unpark_owned`].
impl<F, T> Wake for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn wake(self: Arc<Self>) {
        unpark_owned(self);
    }
}

/// [`unpark`], consuming the caller's reference (one reference-count update fewer).
pub(crate) fn unpark_owned(task: TaskRef) {
    if was_parked(&task) {
        enqueue(task);
    }
}

/// Marks `task` woken; true if it was parked, so that the caller must queue it.
#[inline]
fn was_parked(task: &TaskRef) -> bool {
    task.header().state.wake()
}

/// Queues a goroutine that [`was_parked`] moved out of PARKED (so the caller owns scheduling
/// it) on its home worker.
fn enqueue(task: TaskRef) {
    // One (virtual) call for the header; a pointer, since `task` moves into the queue below.
    let header: *const Header = task.header();
    // SAFETY: `task` holds a reference to the goroutine, which keeps its header alive.
    let (home, runtime) = unsafe { ((*header).home.started_on(), (*header).shared) };
    {
        // SAFETY: the runtime is alive, for the reason given below; the reference ends here,
        // before the goroutine is queued.
        let shared = unsafe { &*runtime.cast::<Shared>() };
        if shared.trace.enabled() {
            // SAFETY: `task` holds a reference to the goroutine, which keeps its header alive.
            trace::wake(shared, unsafe { (*header).id });
        }
    }
    let Some(task) = current::with_worker(|worker| match worker {
        Some(worker) if std::ptr::eq(Arc::as_ptr(worker.shared()).cast(), runtime) => {
            if worker.index() == home {
                // SAFETY: `task` still holds the goroutine (it moves only after this).
                let kind = unsafe { (*header).parked_as() };
                worker.push_woken(task, kind);
            } else {
                // A worker of the same runtime: its own reference keeps the runtime alive
                // across the push and the wake, so none is taken (the count's cache line
                // would travel between the two workers at every hand-off).
                let shared = worker.shared();
                shared.remotes[home].inbox.push(task);
                shared.unpark_worker(home);
            }
            None
        }
        _ => Some(task),
    }) else {
        return;
    };
    // SAFETY: `runtime` (the header's `shared`) came from `Arc::as_ptr` of the runtime's
    // Shared, and the runtime is alive: the goroutine is neither finished nor queued (we just
    // moved it out of PARKED, and it is in no queue yet), so it cannot finish, and a runtime
    // outlives its goroutines. Taking a strong reference keeps it alive until the push and the
    // wake below are done, even if the goroutine then runs to the end and the runtime shuts
    // down meanwhile.
    let shared: Arc<Shared> = unsafe {
        let shared = runtime.cast::<Shared>();
        Arc::increment_strong_count(shared);
        Arc::from_raw(shared)
    };
    shared.remotes[home].inbox.push(task);
    shared.unpark_worker(home);
}
