//! Acquiring borrowed permits: one at a time, or `n` at once (Go's `Acquire(ctx, n)`).

use std::panic::Location;
use std::time::{Duration, Instant};

use super::permit::SemaphorePermit;
use super::raw::Semaphore;
use crate::context::{Context, ContextError};
use crate::select::Mode;

impl Semaphore {
    /// Takes a permit if one is free and nobody is queued for one.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(1);
    /// let permit = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(permit);
    /// assert!(sem.try_acquire().is_some());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits at once if they are free and nobody is queued (Go's
    /// `TryAcquire(n)`). `None` as well when `n` exceeds the permits the semaphore has.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(3);
    /// let two = sem.try_acquire_many(2).unwrap();
    /// assert!(sem.try_acquire_many(2).is_none(), "only one is left");
    /// drop(two);
    /// assert!(sem.try_acquire_many(4).is_none(), "more than there are");
    /// ```
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        self.try_take(n).then(|| self.permit(n))
    }

    /// Takes a permit, parking the goroutine (or blocking the thread) until one is free.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(1);
    /// let permit = sem.acquire();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(permit);
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, parking the goroutine (or blocking the thread) until they
    /// are free (Go's `Acquire(ctx, n)` without a context). Requests are served in arrival
    /// order: while this one waits at the front of the queue, later ones wait behind it even
    /// if theirs would fit, so it is never starved by smaller ones.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(10);
    /// let big = sem.acquire_many(7);
    /// assert_eq!(sem.available_permits(), 3);
    /// drop(big);
    /// assert_eq!(sem.available_permits(), 10);
    /// ```
    ///
    /// # Requests bigger than the semaphore
    ///
    /// A request for more permits than the semaphore has (held ones included) is not queued,
    /// where it would hold back every request behind it: it waits aside until
    /// [`add_permits`](Self::add_permits) makes the semaphore big enough, then queues. With
    /// nobody to add permits it waits for ever, as Go's `Acquire` does with a context that
    /// never ends; inside [`Runtime::block_on`](crate::Runtime::block_on) that is reported
    /// as a deadlock once nothing else can run. Bound the wait with
    /// [`acquire_many_ctx`](Self::acquire_many_ctx) or
    /// [`acquire_many_timeout`](Self::acquire_many_timeout).
    #[track_caller]
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        assert!(
            self.take(n, Mode::Block, Location::caller()),
            "an unbounded wait ends with the permits"
        );
        self.permit(n)
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let sem = scheduler::sync::Semaphore::new(1);
    /// let held = sem.acquire();
    /// assert!(sem.acquire_timeout(Duration::from_millis(5)).is_none());
    /// drop(held);
    /// assert!(sem.acquire_timeout(Duration::from_millis(5)).is_some());
    /// ```
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_timeout(1, timeout)
    }

    /// Takes `n` permits at once, waiting at most `timeout`, in arrival order as
    /// [`acquire_many`](Self::acquire_many). A request for more permits than the semaphore
    /// has waits aside for it to grow, and returns `None` if it does not in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let sem = scheduler::sync::Semaphore::new(3);
    /// let held = sem.acquire();
    /// assert!(sem.acquire_many_timeout(3, Duration::from_millis(5)).is_none());
    /// drop(held);
    /// assert!(sem.acquire_many_timeout(3, Duration::from_millis(5)).is_some());
    /// ```
    #[track_caller]
    pub fn acquire_many_timeout(&self, n: usize, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.take(n, Mode::after(timeout), Location::caller())
            .then(|| self.permit(n))
    }

    /// Takes a permit, waiting until `deadline` at the latest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let sem = scheduler::sync::Semaphore::new(0);
    /// assert!(sem.acquire_deadline(Instant::now() + Duration::from_millis(5)).is_none());
    /// ```
    #[track_caller]
    pub fn acquire_deadline(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_deadline(1, deadline)
    }

    /// Takes `n` permits at once, waiting until `deadline` at the latest; as
    /// [`acquire_many_timeout`](Self::acquire_many_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let sem = scheduler::sync::Semaphore::new(2);
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert_eq!(sem.acquire_many_deadline(2, deadline).unwrap().num_permits(), 2);
    /// ```
    #[track_caller]
    pub fn acquire_many_deadline(
        &self,
        n: usize,
        deadline: Instant,
    ) -> Option<SemaphorePermit<'_>> {
        self.take(n, Mode::Until(deadline), Location::caller())
            .then(|| self.permit(n))
    }

    /// Takes a permit unless `ctx` ends first.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::{Context, ContextError};
    /// let sem = scheduler::sync::Semaphore::new(0);
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel();
    /// assert_eq!(sem.acquire_ctx(&ctx).unwrap_err(), ContextError::Canceled);
    /// ```
    ///
    /// # Errors
    ///
    /// The context's error if it ended first (or had ended already).
    #[track_caller]
    pub fn acquire_ctx(&self, ctx: &Context) -> Result<SemaphorePermit<'_>, ContextError> {
        self.acquire_many_ctx(1, ctx)
    }

    /// Takes `n` permits at once unless `ctx` ends first: Go's `Acquire(ctx, n)`, in arrival
    /// order as [`acquire_many`](Self::acquire_many). As in Go, a request for more permits
    /// than the semaphore has is not queued (it would hold back every request behind it): it
    /// waits for the context to end and returns its error, unless
    /// [`add_permits`](Self::add_permits) makes the semaphore big enough first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::context::{Context, ContextError};
    /// let sem = scheduler::sync::Semaphore::new(4);
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(5));
    /// assert_eq!(sem.acquire_many_ctx(4, &ctx).unwrap().num_permits(), 4);
    /// assert_eq!(sem.acquire_many_ctx(5, &ctx).unwrap_err(), ContextError::DeadlineExceeded);
    /// ```
    ///
    /// # Errors
    ///
    /// The context's error if it ended first (or had ended already).
    #[track_caller]
    pub fn acquire_many_ctx(
        &self,
        n: usize,
        ctx: &Context,
    ) -> Result<SemaphorePermit<'_>, ContextError> {
        self.take_ctx(n, ctx, Location::caller())?;
        Ok(self.permit(n))
    }

    /// The permit for `n` permits just taken.
    fn permit(&self, n: usize) -> SemaphorePermit<'_> {
        SemaphorePermit {
            sem: self,
            permits: n,
        }
    }
}
