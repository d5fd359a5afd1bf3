//! The semaphore itself: its state word, its queue of weighted requests, and the hand-over
//! that serves the queue in order. The public ways to acquire are in `acquire.rs` and
//! `owned.rs`; they all come down to [`Semaphore::take`] and its variants here.

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
/// The most permits a semaphore can hold.
pub(super) const MAX_PERMITS: usize = usize::MAX / ONE;

/// A set of permits, Go's `x/sync/semaphore.Weighted`: [`acquire`](Self::acquire) takes one,
/// [`acquire_many`](Self::acquire_many) several at once, and dropping the permit gives them
/// back.
///
/// Requests are served in arrival order: released permits go straight to the longest waiter,
/// and a newcomer never overtakes a queue, even one whose request would fit while the first
/// waiter's does not. So a large request is never starved by a stream of small ones. Without
/// contention, acquiring and releasing are one atomic operation each. Use it to bound
/// concurrency (at most N goroutines in a section, or N units of a resource such as memory)
/// and, with [`try_acquire`](Self::try_acquire), to shed load when the bound is reached.
///
/// A permit's release happens-before the acquire that takes it: what a holder did before
/// dropping its permit is visible to whoever gets the permit next.
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
    /// `available * ONE | WAITERS`. Taking permits is Acquire and returning them Release, so
    /// what a holder did happens-before the next holder's section. `WAITERS` is set and
    /// cleared only under the queue lock, and is set whenever the queue is non-empty; it may
    /// stay set over an empty queue, which every path tolerates. While it is set, only holders
    /// of the queue lock change `state` (the lock-free paths CAS from a value without it).
    state: AtomicUsize,
    /// Permits in existence: available plus held. `new` and `add_permits` add to it (the
    /// latter under the queue lock, so that a request waiting for growth checks and queues
    /// atomically with respect to it), `forget` takes from it. Relaxed everywhere: it only
    /// decides where a request waits, and the lock orders the growth that wakes it.
    size: AtomicUsize,
    /// Queued requests with their tokens and sizes, in arrival order.
    queue: Locked<Queue>,
}

/// A queued request: who waits, the token to end its wait with, and how many permits.
struct Entry {
    waiter: Arc<Waiter>,
    token: usize,
    permits: usize,
}

/// The semaphore's waiters, kept under its lock.
#[derive(Default)]
struct Queue {
    /// Requests the semaphore is big enough for, in arrival order.
    entries: VecDeque<Entry>,
    /// Requests for more permits than the semaphore has, waiting aside for `add_permits` to
    /// make it bigger (see [`Semaphore::fits`]).
    growth: WaiterQueue,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    ///
    /// # Panics
    ///
    /// If `permits` exceeds `usize::MAX / 2`.
    #[track_caller]
    pub fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= MAX_PERMITS,
            "scheduler: too many semaphore permits"
        );
        Semaphore {
            state: AtomicUsize::new(permits * ONE),
            size: AtomicUsize::new(permits),
            queue: Locked::new(Queue::default()),
        }
    }

    /// Permits available now (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(5);
    /// let permit = sem.acquire_many(3);
    /// assert_eq!(sem.available_permits(), 2);
    /// drop(permit);
    /// assert_eq!(sem.available_permits(), 5);
    /// ```
    pub fn available_permits(&self) -> usize {
        // Relaxed: a snapshot, which orders nothing.
        self.state.load(Ordering::Relaxed) / ONE
    }

    /// Adds `n` permits (for a semaphore used as a counter of available work), serving
    /// waiters as the permits allow.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(0);
    /// assert!(sem.try_acquire().is_none());
    /// sem.add_permits(2);
    /// assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
    /// ```
    ///
    /// # Panics
    ///
    /// If the semaphore would hold more than `usize::MAX / 2` permits.
    #[track_caller]
    pub fn add_permits(&self, n: usize) {
        let mut queue = self.queue.lock();
        // Relaxed: see `size`.
        let grown = self
            .size
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |size| {
                size.checked_add(n).filter(|&s| s <= MAX_PERMITS)
            });
        assert!(grown.is_ok(), "scheduler: too many semaphore permits");
        // Requests waiting for a bigger semaphore look again, and queue if they now fit.
        queue.growth.take_all().notify_all();
        self.settle(&mut queue, n);
    }

    /// Whether a request for `n` permits could ever be served: the semaphore has that many.
    ///
    /// One that cannot is not queued, since at the front of the queue it would hold back
    /// every request behind it for as long as it cannot be served: it waits aside until
    /// [`add_permits`](Self::add_permits) makes the semaphore big enough, then queues at the
    /// back. Go's semaphore has a fixed size, and its `Acquire` of more than the size waits
    /// for its context to end; here that is what happens when nobody adds permits.
    pub(super) fn fits(&self, n: usize) -> bool {
        n <= self.size()
    }

    /// Permits in existence, available and held (a snapshot).
    pub(super) fn size(&self) -> usize {
        // Relaxed: see `size`.
        self.size.load(Ordering::Relaxed)
    }

    /// `n` held permits are forgotten: the semaphore has `n` fewer.
    pub(super) fn forget(&self, n: usize) {
        // Relaxed: see `size`; shrinking wakes nobody, so it needs no lock either.
        self.size.fetch_sub(n, Ordering::Relaxed);
    }

    /// Takes `n` permits if nobody is queued and enough are free; never waits.
    pub(super) fn try_take(&self, n: usize) -> bool {
        match self.take_uncontended(n) {
            Some(took) => took,
            // Maybe a stale flag over an empty queue: ask under the lock. It never waits, so
            // its site is never shown: this line will do.
            None => select_one(
                &mut AcquireOp::new(self, n),
                Mode::NonBlock,
                BlockKind::Semaphore,
                Location::caller(),
            ),
        }
    }

    /// Takes `n` permits, waiting at `site` as `mode` allows; false if the wait ended first.
    /// A request bigger than the semaphore waits aside for it to grow (see
    /// [`fits`](Self::fits)).
    pub(super) fn take(&self, n: usize, mode: Mode, site: Site) -> bool {
        while !self.fits(n) {
            let mut grow = GrowOp::new(self, n);
            if !select_one(&mut grow, mode, BlockKind::Semaphore, site) {
                return false;
            }
        }
        self.take_uncontended(n) == Some(true)
            || select_one(
                &mut AcquireOp::new(self, n),
                mode,
                BlockKind::Semaphore,
                site,
            )
    }

    /// Takes `n` permits unless `ctx` ends first, waiting at `site`.
    pub(super) fn take_ctx(&self, n: usize, ctx: &Context, site: Site) -> Result<(), ContextError> {
        if let Some(err) = ctx.err() {
            return Err(err);
        }
        let done = ctx.done();
        while !self.fits(n) {
            let mut grow = GrowOp::new(self, n);
            let mut cancelled = RecvOp::new(&done);
            let grown = select_as(
                &mut [&mut grow, &mut cancelled],
                Mode::Block,
                BlockKind::Semaphore,
                site,
            );
            if grown != Some(0) {
                return Err(ctx.err_or_canceled());
            }
        }
        if self.take_uncontended(n) == Some(true) {
            return Ok(());
        }
        let mut acquire = AcquireOp::new(self, n);
        let mut cancelled = RecvOp::new(&done);
        match select_as(
            &mut [&mut acquire, &mut cancelled],
            Mode::Block,
            BlockKind::Semaphore,
            site,
        ) {
            Some(0) => Ok(()),
            _ => Err(ctx.err_or_canceled()),
        }
    }

    /// The lock-free path: `Some(true)` if it took `n` permits, `Some(false)` if nobody is
    /// queued but too few are free, `None` if somebody may be queued (ask under the lock).
    fn take_uncontended(&self, n: usize) -> Option<bool> {
        // Relaxed: only a guess for the CAS below, which reads the real value.
        let mut state = self.state.load(Ordering::Relaxed);
        while state & WAITERS == 0 {
            if state / ONE < n {
                return Some(false);
            }
            // Acquire: the permits' last holders' sections happen-before ours (pairs with
            // the Release that returned them).
            match self.state.compare_exchange_weak(
                state,
                state - n * ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(true),
                Err(actual) => state = actual,
            }
        }
        None
    }

    /// Returns `n` permits: to the queue's first waiters as far as they go, the rest to the
    /// pool.
    pub(super) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Relaxed: only a guess for the CAS below, which reads the real value.
        let mut state = self.state.load(Ordering::Relaxed);
        while state & WAITERS == 0 {
            // Release: our section happens-before the next holder's (pairs with the Acquire
            // that takes these permits, lock-free or in `settle`).
            match self.state.compare_exchange_weak(
                state,
                state + n * ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        self.release_slow(n);
    }

    #[cold]
    fn release_slow(&self, n: usize) {
        let mut queue = self.queue.lock();
        self.settle(&mut queue, n);
    }

    /// Under the queue lock: adds `returned` permits to the pool, then serves the queue from
    /// its front for as long as the first request fits, handing each its permits with one
    /// `notify` (the permits never pass through the pool). Entries whose wait ended otherwise
    /// (timed out, another `select` arm won) are dropped on the way. Stops at the first live
    /// request that does not fit: those behind it wait, even if theirs would fit, so that no
    /// request is starved. Leaves `WAITERS` set exactly when somebody is still queued.
    fn settle(&self, queue: &mut Queue, returned: usize) {
        if queue.entries.is_empty() {
            // The flag may be clear, and then the lock-free paths run beside us: CAS.
            // Relaxed: only a guess for the CAS below, which reads the real value.
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                let next = (state & !WAITERS) + returned * ONE;
                // Release: publishes the returned permits' history to whoever takes them
                // (pairs with the Acquire that does).
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
        // Somebody is queued, so `WAITERS` is set and only this lock's holders change `state`
        // until the store below. Acquire: permits returned to the pool lock-free (Release)
        // may be handed on here, and their holders' sections must happen-before the next
        // holder's; the waiter's `notify` (AcqRel) carries that on to it.
        let mut available = self.state.load(Ordering::Acquire) / ONE + returned;
        while let Some(first) = queue.entries.front() {
            if first.permits > available && first.waiter.is_waiting() {
                break; // first come, first served
            }
            let entry = queue.entries.pop_front().expect("the front entry exists");
            if entry.permits <= available && entry.waiter.notify(entry.token) {
                available -= entry.permits;
            }
        }
        let flag = if queue.entries.is_empty() { 0 } else { WAITERS };
        // Release: publishes what is left to the lock-free acquirers (pairs with their
        // Acquire CAS). A waiter served above that releases at once finds `WAITERS` still set
        // until this store, and so waits for the lock.
        self.state
            .store((available * ONE) | flag, Ordering::Release);
    }
}

/// Acquiring `permits` permits, as a `select` arm.
struct AcquireOp<'a> {
    sem: &'a Semaphore,
    permits: usize,
    registered: Option<Arc<Waiter>>,
}

impl<'a> AcquireOp<'a> {
    fn new(sem: &'a Semaphore, permits: usize) -> AcquireOp<'a> {
        AcquireOp {
            sem,
            permits,
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
        // SAFETY: the caller holds the lock; no other reference to the queue is alive while
        // this one is (the same for the other methods below).
        let queue = unsafe { self.sem.queue.data_mut() };
        if !queue.entries.is_empty() {
            // Ended entries at the front may be all that stands before us: let the queue
            // move first.
            self.sem.settle(queue, 0);
            if !queue.entries.is_empty() {
                return false; // first come, first served
            }
        }
        // Relaxed: only a guess for the CAS below, which reads the real value.
        let mut state = self.sem.state.load(Ordering::Relaxed);
        loop {
            let (next, took) = if state / ONE >= self.permits {
                (state - self.permits * ONE, true)
            } else {
                // About to queue: make releases take the slow path from now on.
                (state | WAITERS, false)
            };
            // Acquire: as in `take_uncontended`.
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
        // Relaxed: the flag only routes releases to the lock, which orders the rest.
        self.sem.state.fetch_or(WAITERS, Ordering::Relaxed);
        // SAFETY: as in `try_complete`.
        unsafe { self.sem.queue.data_mut() }
            .entries
            .push_back(Entry {
                waiter: waiter.0.clone(),
                token,
                permits: self.permits,
            });
        self.registered = Some(waiter.0.clone());
    }

    unsafe fn withdraw(&mut self) {
        if let Some(waiter) = self.registered.take() {
            // SAFETY: as in `try_complete`.
            let queue = unsafe { self.sem.queue.data_mut() };
            if let Some(pos) = queue
                .entries
                .iter()
                .position(|entry| Arc::ptr_eq(&entry.waiter, &waiter))
            {
                queue.entries.remove(pos);
            }
            // A large request that leaves the front may have held back smaller ones that fit.
            self.sem.settle(queue, 0);
        }
    }

    fn collect(&mut self) {
        // The releaser handed us the permits and dequeued us.
        self.registered = None;
    }
}

/// Waiting for the semaphore to grow big enough for `permits`, as a `select` arm.
struct GrowOp<'a> {
    sem: &'a Semaphore,
    permits: usize,
    registered: Option<Arc<Waiter>>,
}

impl<'a> GrowOp<'a> {
    fn new(sem: &'a Semaphore, permits: usize) -> GrowOp<'a> {
        GrowOp {
            sem,
            permits,
            registered: None,
        }
    }
}

impl sealed::Sealed for GrowOp<'_> {}

impl Selectable for GrowOp<'_> {
    fn lock(&self) -> &RawLock {
        self.sem.queue.raw()
    }

    unsafe fn try_complete(&mut self) -> bool {
        // Under the lock `add_permits` grows the size under: no growth goes unseen.
        self.sem.fits(self.permits)
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        // SAFETY: the caller holds the lock; the reference ends with this statement.
        unsafe { self.sem.queue.data_mut() }
            .growth
            .push(&waiter.0, token);
        self.registered = Some(waiter.0.clone());
    }

    unsafe fn withdraw(&mut self) {
        if let Some(waiter) = self.registered.take() {
            // SAFETY: the caller holds the lock; the reference ends with this statement.
            unsafe { self.sem.queue.data_mut() }
                .growth
                .withdraw(&waiter);
        }
    }

    fn collect(&mut self) {
        // `add_permits` took us out of the list.
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
