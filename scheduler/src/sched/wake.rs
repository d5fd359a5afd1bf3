//! Making a parked goroutine runnable again, from any thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::context;
use super::shared::Shared;
use crate::goroutine::task::{TaskRef, state};

/// Wakes `task`: a parked goroutine is queued on its home worker; one that is still running
/// (it is about to park, or has not parked yet) is marked so that its next park returns at
/// once. Waking a queued goroutine only marks it; waking a finished one does nothing.
///
/// Whatever the caller wrote before this call is visible to the goroutine when it runs.
pub(crate) fn unpark(task: &TaskRef) {
    let header = task.header();
    let mut current = header.state.load(Ordering::Acquire);
    loop {
        let next = match current {
            state::PARKED => state::SCHEDULED,
            state::DONE => return,
            // Queued or running: the goroutine will run (again) and re-check its condition.
            // The RMW is still needed, even when it changes nothing: the worker's next RMW on
            // `state` (its swap to RUNNING, or its CAS into PARKED) then reads from it and
            // acquires the caller's writes. A plain load here would be the Dekker pattern
            // (store condition, load state / store state, load condition), which can lose
            // the wakeup even on x86.
            other => other | state::NOTIFIED,
        };
        // AcqRel: Release publishes the caller's writes to the worker that resumes the
        // goroutine; Acquire pairs with the worker's AcqRel CAS into PARKED, so `home` and the
        // goroutine's registration are visible here.
        match header
            .state
            .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) if next == state::SCHEDULED => break,
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
    // We moved it out of PARKED, so we own scheduling it.
    let home = header.home.load(Ordering::Relaxed);
    if let Some(worker) = context::current_worker()
        && std::ptr::eq(Arc::as_ptr(worker.shared()), header.shared)
        && worker.index() == home
    {
        worker.push_woken(task.clone());
        return;
    }
    // SAFETY: `header.shared` came from `Arc::as_ptr` of the runtime's Shared, and the runtime
    // is alive: the goroutine is neither finished nor queued (we hold it in SCHEDULED, in no
    // queue), so it cannot finish, and a runtime outlives its goroutines. Taking a strong
    // reference keeps it alive until the push and the wake below are done, even if the
    // goroutine then runs to the end and the runtime shuts down meanwhile.
    let shared: Arc<Shared> = unsafe {
        Arc::increment_strong_count(header.shared);
        Arc::from_raw(header.shared)
    };
    let remote = &shared.remotes[home];
    remote.inbox.push(task.clone());
    remote.parker.unpark();
}
