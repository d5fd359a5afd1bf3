//! A counting semaphore: bound how many goroutines do something at once.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::chan::RecvOp;
use crate::context::{Context, ContextError};
use crate::select::{Mode, SelectWaiter, Selectable, sealed, select_as, select_one};
use crate::wait::lock::{Locked, RawLock};
use crate::wait::waiter::{Waiter, WaiterQueue};
use crate::wait::{BlockKind, Site};

/// `state`: the wait queue may be non-empty, so releases must look at it.
const WAITERS: usize = 1;
/// `state`: one permit (permits are counted above the flag bit).
const ONE: usize = 2;

/// A set of permits; [`acquire`](Self::acquire) takes one, dropping the permit gives it back.
///
/// Waiters are served in arrival order: a released permit goes straight to the longest
/// waiter, so nobody starves, and a newcomer never overtakes a queue. Without contention,
/// acquiring and releasing are one atomic operation each. Use it to bound concurrency (at most
/// N goroutines in a section) and, with [`try_acquire`](Self::try_acquire), to shed load when
/// the bound is reached.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use scheduler::sync::Semaphore;
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let sem = Arc::new(Semaphore::new(3));
/// let inside = Arc::new(AtomicUsize::new(0));
/// let max = rt.block_on(move || {
///     let wg = scheduler::WaitGroup::new();
///     let max = Arc::new(AtomicUsize::new(0));
///     for _ in 0..20 {
///         let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
///         wg.go(move || {
///             let _permit = sem.acquire();
///             let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
///             max.fetch_max(now, Ordering::SeqCst);
///             scheduler::yield_now();
///             inside.fetch_sub(1, Ordering::SeqCst);
///         });
///     }
///     wg.wait();
///     max.load(Ordering::SeqCst)
/// });
/// assert!(max <= 3);
/// ```
pub struct Semaphore {
    /// `permits * ONE | WAITERS`. Taking a permit is Acquire and returning one Release, so
    /// what a holder did happens-before the next holder's section. `WAITERS` is set only under
    /// the queue lock; it may stay set with an empty queue, which every path tolerates.
    state: AtomicUsize,
    /// Blocked acquirers with their tokens, in arrival order.
    queue: Locked<WaiterQueue>,
}

/// One permit of a [`Semaphore`]; returned when dropped.
#[must_use = "the permit is returned as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds `usize::MAX / 2`.
    #[track_caller]
    pub fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= usize::MAX / ONE,
            "scheduler: too many semaphore permits"
        );
        Semaphore {
            state: AtomicUsize::new(permits * ONE),
            queue: Locked::new(WaiterQueue::new()),
        }
    }

    /// Permits available now (a snapshot).
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Relaxed) / ONE
    }

    /// Takes a permit if one is free and nobody is queued for it.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & WAITERS == 0 && state >= ONE {
            match self.state.compare_exchange_weak(
                state,
                state - ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(SemaphorePermit { sem: self }),
                Err(actual) => state = actual,
            }
        }
        if state & WAITERS != 0 {
            // Maybe a stale flag over an empty queue: ask under the lock. It never waits, so
            // its site is never shown: this line will do.
            return self.acquire_mode(Mode::NonBlock, Location::caller());
        }
        None
    }

    /// Takes a permit, parking the goroutine (or blocking the thread) until one is free.
    #[track_caller]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        match self.try_acquire() {
            Some(permit) => permit,
            None => self
                .acquire_mode(Mode::Block, Location::caller())
                .expect("an unbounded wait ends with a permit"),
        }
    }

    /// Takes a permit, waiting at most `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        // Not `or_else`: a closure would lose the caller's line.
        match self.try_acquire() {
            Some(permit) => Some(permit),
            None => self.acquire_mode(Mode::after(timeout), Location::caller()),
        }
    }

    /// Takes a permit, waiting until `deadline` at the latest.
    #[track_caller]
    pub fn acquire_deadline(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        match self.try_acquire() {
            Some(permit) => Some(permit),
            None => self.acquire_mode(Mode::Until(deadline), Location::caller()),
        }
    }

    /// Takes a permit unless `ctx` ends first.
    ///
    /// # Errors
    ///
    /// The context's error if it ended first (or had ended already).
    #[track_caller]
    pub fn acquire_ctx(&self, ctx: &Context) -> Result<SemaphorePermit<'_>, ContextError> {
        if let Some(err) = ctx.err() {
            return Err(err);
        }
        if let Some(permit) = self.try_acquire() {
            return Ok(permit);
        }
        let done = ctx.done();
        let mut acquire = AcquireOp::new(self);
        let mut cancelled = RecvOp::new(&done);
        match select_as(
            &mut [&mut acquire, &mut cancelled],
            Mode::Block,
            BlockKind::Semaphore,
            Location::caller(),
        ) {
            Some(0) => Ok(SemaphorePermit { sem: self }),
            _ => Err(ctx.err_or_canceled()),
        }
    }

    /// A permit, waiting at `site` as `mode` allows.
    fn acquire_mode(&self, mode: Mode, site: Site) -> Option<SemaphorePermit<'_>> {
        // `then`, not `then_some`: a permit built and dropped on failure would be released.
        select_one(&mut AcquireOp::new(self), mode, BlockKind::Semaphore, site)
            .then(|| SemaphorePermit { sem: self })
    }

    /// Adds `n` permits (for a semaphore used as a counter of available work), waking
    /// waiters as permits allow.
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    /// Returns one permit: to the first waiter if any, else to the pool.
    fn release(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & WAITERS == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        self.release_slow();
    }

    #[cold]
    fn release_slow(&self) {
        let mut queue = self.queue.lock();
        // Hand the permit over directly: the count does not change.
        if queue.notify_first() {
            if queue.is_empty() {
                self.state.fetch_and(!WAITERS, Ordering::Relaxed);
            }
            return;
        }
        // Nobody waiting after all.
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let next = (state & !WAITERS) + ONE;
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
    }
}

impl SemaphorePermit<'_> {
    /// Consumes the permit without returning it (the semaphore has one permit fewer).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release();
    }
}

/// Acquiring one permit, as a `select` arm.
struct AcquireOp<'a> {
    sem: &'a Semaphore,
    registered: Option<Arc<Waiter>>,
}

impl<'a> AcquireOp<'a> {
    fn new(sem: &'a Semaphore) -> AcquireOp<'a> {
        AcquireOp {
            sem,
            registered: None,
        }
    }
}

impl sealed::Sealed for AcquireOp<'_> {}

impl Selectable for AcquireOp<'_> {
    fn lock(&self) -> &RawLock {
        self.sem.queue.raw()
    }

    unsafe fn try_complete(&mut self) -> bool {
        // SAFETY: the caller holds the lock; the reference ends with this statement.
        if !unsafe { self.sem.queue.data_mut() }.is_empty() {
            return false; // first come, first served
        }
        let mut state = self.sem.state.load(Ordering::Relaxed);
        loop {
            let (next, took) = if state >= ONE {
                (state - ONE, true)
            } else {
                // About to queue: make releases take the slow path from now on.
                (state | WAITERS, false)
            };
            match self.sem.state.compare_exchange_weak(
                state,
                next,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return took,
                Err(actual) => state = actual,
            }
        }
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        self.sem.state.fetch_or(WAITERS, Ordering::Relaxed);
        // SAFETY: the caller holds the lock; the reference ends with this statement.
        unsafe { self.sem.queue.data_mut() }.push(&waiter.0, token);
        self.registered = Some(waiter.0.clone());
    }

    unsafe fn withdraw(&mut self) {
        if let Some(waiter) = self.registered.take() {
            // SAFETY: the caller holds the lock; the reference ends with this statement.
            unsafe { self.sem.queue.data_mut() }.withdraw(&waiter);
        }
    }

    fn collect(&mut self) {
        // The releaser handed us a permit and dequeued us.
        self.registered = None;
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
