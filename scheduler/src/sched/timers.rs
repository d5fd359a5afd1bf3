//! Setting a timer where the caller runs: on its worker's own heap inside a runtime, on the
//! process-wide timer thread outside (see `crate::wait::timers`).

use std::sync::Arc;
use std::time::Instant;

use super::current;
use crate::wait::timers::{Action, TimerAction, global};
use crate::wait::waiter::Waiter;

/// Arms a time-out for `waiter`, which must belong to the running goroutine.
pub(crate) fn arm_timeout(deadline: Instant, waiter: &Arc<Waiter>) {
    current::with_worker(|worker| {
        worker
            .expect("scheduler: internal error: no worker")
            .timers()
            .borrow_mut()
            .push(deadline, Action::TimeOut(Arc::downgrade(waiter)));
    });
}

/// Runs `action` at `deadline`, on the current worker if there is one, else on the timer
/// thread.
pub(crate) fn run_at(deadline: Instant, action: impl TimerAction + 'static) {
    let action = Action::Run(Box::new(action));
    current::with_worker(|worker| match worker {
        Some(worker) => worker.timers().borrow_mut().push(deadline, action),
        None => global().push(deadline, action),
    });
}
