//! What every flavour of group shares: the first error and the first panic, the limit, the
//! count of running goroutines, the derived context. How a goroutine is started is left to
//! the flavour: [`Core::start`] takes the spawning as a closure, so a group whose goroutines
//! borrow from the caller's stack can start them through a scope and keep the rest.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use parking_lot::Mutex;

use crate::context::CancelHandle;
use crate::sched::spawn_error::SpawnError;
use crate::sync::{Semaphore, WaitGroup};
use crate::wait::Cancelled;

/// The shared state of a group; its goroutines hold it through their [`Ticket`]s.
pub(crate) struct Core<E> {
    /// The first error and the first panic, by time. Written by the goroutines as they end,
    /// taken by `finish`.
    outcome: Mutex<Outcome<E>>,
    /// One count per admitted goroutine (its ticket calls `done`), plus one for each start
    /// in progress, so that a refused start is accounted before `wait` can return.
    running: WaitGroup,
    /// Goroutines dropped before they ran: refused starts (taken back by `start`) and
    /// goroutines a forced shutdown dropped unstarted (what is left). Relaxed: written before
    /// the writer's `running.done()` (Release), read after `running.wait()` (Acquire).
    unstarted: AtomicUsize,
    /// The limit, if any: `set_limit` replaces it, the tickets hold the semaphore they took a
    /// permit from.
    limit: Mutex<Option<Limit>>,
    /// Cancels the context of `with_context` on the first error or panic, and in `finish`.
    cancel: Option<CancelHandle>,
}

struct Outcome<E> {
    error: Option<E>,
    panic: Option<Box<dyn Any + Send>>,
}

struct Limit {
    n: usize,
    permits: Arc<Semaphore>,
}

/// One admitted goroutine's place in the group: holds its permit, and its count in
/// `running`. Dropping it gives both back; dropped before [`Task::run`] ran, it counts the
/// goroutine as unstarted.
pub(crate) struct Ticket<E> {
    core: Arc<Core<E>>,
    permit: Option<Arc<Semaphore>>,
    ran: bool,
}

/// A goroutine's closure with its ticket: what a flavour's spawn runs, through
/// [`run`](Self::run).
pub(crate) struct Task<F, E> {
    ticket: Ticket<E>,
    f: F,
}

impl<E> Core<E> {
    /// A group's state; `cancel` ends the context of `with_context`.
    pub(crate) fn new(cancel: Option<CancelHandle>) -> Arc<Core<E>> {
        Arc::new(Core {
            outcome: Mutex::new(Outcome {
                error: None,
                panic: None,
            }),
            running: WaitGroup::new(),
            unstarted: AtomicUsize::new(0),
            limit: Mutex::new(None),
            cancel,
        })
    }

    /// Admits one more goroutine: takes a permit if there is a limit, waiting for one if
    /// `wait` (at the caller's line), or returning `None` at once if not.
    #[track_caller]
    pub(crate) fn admit(self: &Arc<Self>, wait: bool) -> Option<Ticket<E>> {
        let permits = self.limit.lock().as_ref().map(|l| l.permits.clone());
        if let Some(permits) = &permits {
            // Forgotten here, given back by the ticket's drop (`add_permits`): the permit
            // outlives this borrow of the semaphore.
            if wait {
                permits.acquire().forget();
            } else {
                permits.try_acquire()?.forget();
            }
        }
        self.running.add(1);
        Some(Ticket {
            core: self.clone(),
            permit: permits,
            ran: false,
        })
    }

    /// Starts `f` as the goroutine `ticket` admitted: `spawn` gets the [`Task`] to run (its
    /// `run` on the new goroutine) and says whether it started it. A refused task has been
    /// dropped by then, and its ticket given back.
    pub(crate) fn start<F, H>(
        &self,
        ticket: Ticket<E>,
        f: F,
        spawn: impl FnOnce(Task<F, E>) -> Result<H, SpawnError>,
    ) -> Result<H, SpawnError> {
        // Holds `wait` until a refusal below is taken back from `unstarted`.
        self.running.add(1);
        let _hold = Done(&self.running);
        let spawned = spawn(Task { ticket, f });
        if spawned.is_err() {
            // Its ticket counted it unstarted: it was refused, not dropped by a shutdown.
            // Relaxed: ordered before `wait` by `_hold`'s `done` (Release).
            self.unstarted.fetch_sub(1, Ordering::Relaxed);
        }
        spawned
    }

    /// Blocks until every goroutine of the group has ended (at the caller's line).
    #[track_caller]
    pub(crate) fn wait(&self) {
        self.running.wait();
    }

    /// What the group came to, once [`wait`](Self::wait) returned: cancels the context, then
    /// re-raises the first panic, or a [`Cancelled`] if a goroutine was dropped before it ran,
    /// or returns the first error. Each is handed out once.
    pub(crate) fn finish(&self) -> Result<(), E> {
        self.cancel();
        let (panic, error) = {
            let mut outcome = self.outcome.lock();
            (outcome.panic.take(), outcome.error.take())
        };
        if let Some(payload) = panic {
            panic::resume_unwind(payload);
        }
        // Relaxed: every write to it came before a `done` that the `wait` before this call
        // observed (Acquire).
        if self.unstarted.swap(0, Ordering::Relaxed) > 0 {
            panic::resume_unwind(Box::new(Cancelled));
        }
        error.map_or(Ok(()), Err)
    }

    /// Sets the limit, as `Group::set_limit` describes.
    #[track_caller]
    pub(crate) fn set_limit(&self, limit: Option<usize>) {
        let mut slot = self.limit.lock();
        if let Some(old) = &*slot {
            // Permits taken, and not yet given back: goroutines running (or about to).
            let active = old.n - old.permits.available_permits().min(old.n);
            assert!(
                active == 0,
                "scheduler: Group::set_limit called while {active} goroutines of the group \
                 are active under the old limit"
            );
        }
        *slot = limit.map(|n| Limit {
            n,
            permits: Arc::new(Semaphore::new(n)),
        });
    }

    /// Cancels the context of `with_context`, if there is one.
    pub(crate) fn cancel(&self) {
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
    }

    /// The limit set, if any.
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit.lock().as_ref().map(|l| l.n)
    }

    /// Records how a goroutine ended; the first error or panic cancels the context.
    fn record(&self, result: thread::Result<Result<(), E>>) {
        let first = {
            let mut outcome = self.outcome.lock();
            let first = outcome.error.is_none() && outcome.panic.is_none();
            match result {
                Ok(Ok(())) => return,
                Ok(Err(err)) => {
                    outcome.error.get_or_insert(err);
                }
                Err(payload) => {
                    outcome.panic.get_or_insert(payload);
                }
            }
            first
        };
        if first {
            self.cancel();
        }
    }
}

impl<F, E> Task<F, E>
where
    F: FnOnce() -> Result<(), E>,
{
    /// Runs the closure on the new goroutine and records how it ended. A panic (or the
    /// unwind of a cancelled goroutine) is caught here and re-raised by `wait`.
    pub(crate) fn run(self) {
        let Task { mut ticket, f } = self;
        // Unwind safety: the payload goes to whoever calls `wait`, as `join` hands over a
        // goroutine's panic; nothing the closure touched is used here after it.
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        ticket.core.record(result);
        ticket.ran = true;
    }
}

impl<E> Drop for Ticket<E> {
    fn drop(&mut self) {
        if !self.ran {
            // Relaxed: published by the `done` below (Release).
            self.core.unstarted.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(permits) = self.permit.take() {
            permits.add_permits(1);
        }
        // Last: whatever the goroutine recorded happens-before the `wait` this releases.
        self.core.running.done();
    }
}

/// Calls `done` on a `WaitGroup` when dropped, so that a start that unwinds still lets
/// `wait` return.
struct Done<'a>(&'a WaitGroup);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}
