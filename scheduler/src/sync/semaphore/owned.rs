//! Acquiring owned permits, which hold the semaphore through an `Arc` and so move into
//! goroutines (tokio's names: `acquire_owned`, `acquire_many_owned`, ...).

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::permit::OwnedSemaphorePermit;
use super::raw::Semaphore;
use crate::context::{Context, ContextError};
use crate::select::Mode;

impl Semaphore {
    /// [`try_acquire`](Self::try_acquire), for a permit that owns a reference to the
    /// semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(1));
    /// let permit = sem.try_acquire_owned().unwrap();
    /// assert!(sem.try_acquire_owned().is_none());
    /// drop(permit);
    /// ```
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        self.try_acquire_many_owned(1)
    }

    /// [`try_acquire_many`](Self::try_acquire_many), for a permit that owns a reference to
    /// the semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// assert_eq!(sem.try_acquire_many_owned(3).unwrap().num_permits(), 3);
    /// assert!(sem.try_acquire_many_owned(4).is_none());
    /// ```
    pub fn try_acquire_many_owned(self: &Arc<Self>, n: usize) -> Option<OwnedSemaphorePermit> {
        self.try_take(n).then(|| self.owned(n))
    }

    /// [`acquire`](Self::acquire), for a permit that owns a reference to the semaphore: it
    /// is `Send + 'static`, and moves into a goroutine.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scheduler::sync::Semaphore;
    ///
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let sem = Arc::new(Semaphore::new(2));
    /// rt.block_on(move || {
    ///     let wg = scheduler::WaitGroup::new();
    ///     for _ in 0..5 {
    ///         // Taken before the spawn: at most two goroutines exist at a time.
    ///         let permit = sem.acquire_owned();
    ///         wg.go(move || drop(permit));
    ///     }
    ///     wg.wait();
    ///     assert_eq!(sem.available_permits(), 2);
    /// });
    /// ```
    #[track_caller]
    pub fn acquire_owned(self: &Arc<Self>) -> OwnedSemaphorePermit {
        self.acquire_many_owned(1)
    }

    /// [`acquire_many`](Self::acquire_many), for a permit that owns a reference to the
    /// semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// let permit = sem.acquire_many_owned(2);
    /// assert_eq!(sem.available_permits(), 1);
    /// drop(permit);
    /// ```
    ///
    /// A request bigger than the semaphore waits as with [`acquire_many`](Self::acquire_many).
    #[track_caller]
    pub fn acquire_many_owned(self: &Arc<Self>, n: usize) -> OwnedSemaphorePermit {
        assert!(
            self.take(n, Mode::Block, Location::caller()),
            "an unbounded wait ends with the permits"
        );
        self.owned(n)
    }

    /// [`acquire_many_timeout`](Self::acquire_many_timeout), for a permit that owns a
    /// reference to the semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(1));
    /// let held = sem.acquire_owned();
    /// assert!(sem.acquire_many_owned_timeout(1, Duration::from_millis(5)).is_none());
    /// drop(held);
    /// ```
    #[track_caller]
    pub fn acquire_many_owned_timeout(
        self: &Arc<Self>,
        n: usize,
        timeout: Duration,
    ) -> Option<OwnedSemaphorePermit> {
        self.take(n, Mode::after(timeout), Location::caller())
            .then(|| self.owned(n))
    }

    /// [`acquire_many_deadline`](Self::acquire_many_deadline), for a permit that owns a
    /// reference to the semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(1));
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(sem.acquire_many_owned_deadline(1, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn acquire_many_owned_deadline(
        self: &Arc<Self>,
        n: usize,
        deadline: Instant,
    ) -> Option<OwnedSemaphorePermit> {
        self.take(n, Mode::Until(deadline), Location::caller())
            .then(|| self.owned(n))
    }

    /// [`acquire_ctx`](Self::acquire_ctx), for a permit that owns a reference to the
    /// semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scheduler::context::Context;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(1));
    /// let (ctx, _cancel) = Context::background().with_cancel();
    /// assert!(sem.acquire_owned_ctx(&ctx).is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// The context's error if it ended first (or had ended already).
    #[track_caller]
    pub fn acquire_owned_ctx(
        self: &Arc<Self>,
        ctx: &Context,
    ) -> Result<OwnedSemaphorePermit, ContextError> {
        self.acquire_many_owned_ctx(1, ctx)
    }

    /// [`acquire_many_ctx`](Self::acquire_many_ctx), for a permit that owns a reference to
    /// the semaphore.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scheduler::context::{Context, ContextError};
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(2));
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert_eq!(sem.acquire_many_owned_ctx(2, &ctx).unwrap().num_permits(), 2);
    /// cancel.cancel();
    /// assert_eq!(sem.acquire_many_owned_ctx(1, &ctx).unwrap_err(), ContextError::Canceled);
    /// ```
    ///
    /// # Errors
    ///
    /// The context's error if it ended first (or had ended already).
    #[track_caller]
    pub fn acquire_many_owned_ctx(
        self: &Arc<Self>,
        n: usize,
        ctx: &Context,
    ) -> Result<OwnedSemaphorePermit, ContextError> {
        self.take_ctx(n, ctx, Location::caller())?;
        Ok(self.owned(n))
    }

    /// The owned permit for `n` permits just taken.
    fn owned(self: &Arc<Self>, n: usize) -> OwnedSemaphorePermit {
        OwnedSemaphorePermit {
            sem: self.clone(),
            permits: n,
        }
    }
}
