//! Waiting for the next readiness edge of a registered descriptor, as one arm of a `select`
//! (with a context's `done` as the other arm for the `_ctx` variants).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::chan::RecvOp;
use crate::context::{Context, ContextError};
use crate::sched::io::poller_for_current;
use crate::sched::io::registration::{Direction, Registration};
use crate::select::{Mode, SelectWaiter, Selectable, sealed, select_as, select_one};
use crate::wait::lock::RawLock;
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

/// The edge a waiter waits for: the next one in `direction` after the count `seen`.
struct ReadyOp<'a> {
    registration: &'a Registration,
    direction: Direction,
    seen: u64,
    queued: Option<Arc<Waiter>>,
}

impl sealed::Sealed for ReadyOp<'_> {}

impl Selectable for ReadyOp<'_> {
    fn lock(&self) -> &RawLock {
        self.registration.lock()
    }

    unsafe fn try_complete(&mut self) -> bool {
        self.registration.changed_since(self.direction, self.seen)
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        // SAFETY: the select driver holds the lock (the trait's contract).
        unsafe { self.registration.enqueue(self.direction, &waiter.0, token) };
        self.queued = Some(waiter.0.clone());
    }

    unsafe fn withdraw(&mut self) {
        if let Some(waiter) = self.queued.take() {
            // SAFETY: the select driver holds the lock (the trait's contract).
            unsafe { self.registration.withdraw(self.direction, &waiter) };
        }
    }

    fn collect(&mut self) {
        // The poller took the waiter out of the queue when it woke it.
        self.queued = None;
    }
}

/// Waits until an edge in `direction` comes after the count `seen` (read before the system
/// call that would have blocked), `deadline` passes (`TimedOut`), or `ctx` ends (its error,
/// see [`context_error`]). Registers the descriptor with the poller that serves the caller
/// first. A goroutine waits at `site`.
pub(crate) fn wait_ready(
    registration: &Arc<Registration>,
    direction: Direction,
    seen: u64,
    deadline: Option<Instant>,
    ctx: Option<&Context>,
    site: Site,
) -> io::Result<()> {
    if let Some(err) = ctx.and_then(Context::err) {
        return Err(context_error(err));
    }
    let poller = poller_for_current()?;
    registration.register_with(&poller)?;
    let _waiting = poller.waiting();
    let mode = deadline.map_or(Mode::Block, Mode::Until);
    let mut ready = ReadyOp {
        registration,
        direction,
        seen,
        queued: None,
    };
    let Some(ctx) = ctx else {
        return if select_one(&mut ready, mode, BlockKind::Io, site) {
            Ok(())
        } else {
            Err(timed_out())
        };
    };
    let done = ctx.done();
    let mut cancel = RecvOp::new(&done);
    match select_as(&mut [&mut ready, &mut cancel], mode, BlockKind::Io, site) {
        Some(0) => Ok(()),
        Some(_) => Err(context_error(ctx.err_or_canceled())),
        None => Err(timed_out()),
    }
}

/// The error of a wait whose deadline or time-out passed.
pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "deadline exceeded")
}

/// The error a `_ctx` operation returns when its context ends: kind `TimedOut` for
/// [`ContextError::DeadlineExceeded`], `Other` for [`ContextError::Canceled`]; the
/// [`ContextError`] itself is the error's inner error (see [`super::context_error`]).
pub(crate) fn context_error(err: ContextError) -> io::Error {
    let kind = match err {
        ContextError::DeadlineExceeded => io::ErrorKind::TimedOut,
        ContextError::Canceled => io::ErrorKind::Other,
    };
    io::Error::new(kind, err)
}
