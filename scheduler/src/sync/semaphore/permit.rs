//! Permits: what an acquire returns, holding its permits until dropped.

use std::fmt;
use std::sync::Arc;

use super::raw::Semaphore;

/// Permits of a [`Semaphore`], borrowed from it; all returned when dropped (Go's
/// `sem.Release(n)`).
///
/// # Examples
///
/// ```
/// let sem = scheduler::sync::Semaphore::new(4);
/// let mut permit = sem.acquire_many(3);
/// assert_eq!(permit.num_permits(), 3);
/// let one = permit.split(1).unwrap();
/// drop(one); // one permit back
/// assert_eq!(sem.available_permits(), 2);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 4);
/// ```
#[must_use = "the permits are returned as soon as they are dropped"]
pub struct SemaphorePermit<'a> {
    pub(super) sem: &'a Semaphore,
    pub(super) permits: usize,
}

/// Permits of a [`Semaphore`] held through an `Arc`: `Send + 'static`, so they move into a
/// goroutine, which returns them when it drops them (or ends). Made by
/// [`Semaphore::acquire_owned`] and its variants.
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
///     let permit = sem.acquire_owned();
///     let worker = scheduler::spawn(move || {
///         let _permit = permit; // returned when this goroutine is done with it
///         "work"
///     });
///     assert_eq!(worker.join().unwrap(), "work");
///     assert_eq!(sem.available_permits(), 2);
/// });
/// ```
#[must_use = "the permits are returned as soon as they are dropped"]
pub struct OwnedSemaphorePermit {
    pub(super) sem: Arc<Semaphore>,
    pub(super) permits: usize,
}

impl<'a> SemaphorePermit<'a> {
    /// How many permits this holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(3);
    /// assert_eq!(sem.acquire_many(2).num_permits(), 2);
    /// ```
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Consumes the permits without returning them: the semaphore has that many fewer, for
    /// good.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(3);
    /// sem.acquire_many(2).forget();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn forget(self) {
        self.sem.forget(self.permits);
        std::mem::forget(self);
    }

    /// Splits `n` permits off into a permit of their own, or returns `None` if this holds
    /// fewer than `n`.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(3);
    /// let mut permit = sem.acquire_many(3);
    /// let part = permit.split(2).unwrap();
    /// assert_eq!((permit.num_permits(), part.num_permits()), (1, 2));
    /// assert!(permit.split(5).is_none());
    /// ```
    pub fn split(&mut self, n: usize) -> Option<SemaphorePermit<'a>> {
        self.permits = self.permits.checked_sub(n)?;
        Some(SemaphorePermit {
            sem: self.sem,
            permits: n,
        })
    }

    /// Takes `other`'s permits into this one.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = scheduler::sync::Semaphore::new(3);
    /// let mut permit = sem.acquire();
    /// permit.merge(sem.acquire_many(2));
    /// assert_eq!(permit.num_permits(), 3);
    /// ```
    ///
    /// # Panics
    ///
    /// If `other` belongs to another semaphore.
    #[track_caller]
    pub fn merge(&mut self, mut other: SemaphorePermit<'a>) {
        assert!(
            std::ptr::eq(self.sem, other.sem),
            "scheduler: cannot merge permits of different semaphores"
        );
        self.permits += std::mem::take(&mut other.permits);
    }
}

impl OwnedSemaphorePermit {
    /// How many permits this holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// assert_eq!(sem.acquire_many_owned(2).num_permits(), 2);
    /// ```
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore the permits belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// let permit = sem.acquire_owned();
    /// assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    /// ```
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }

    /// Consumes the permits without returning them: the semaphore has that many fewer, for
    /// good.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// sem.acquire_owned().forget();
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn forget(mut self) {
        let permits = std::mem::take(&mut self.permits);
        self.sem.forget(permits);
    }

    /// Splits `n` permits off into a permit of their own, or returns `None` if this holds
    /// fewer than `n`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// let mut permit = sem.acquire_many_owned(3);
    /// let part = permit.split(1).unwrap();
    /// assert_eq!((permit.num_permits(), part.num_permits()), (2, 1));
    /// ```
    pub fn split(&mut self, n: usize) -> Option<OwnedSemaphorePermit> {
        self.permits = self.permits.checked_sub(n)?;
        Some(OwnedSemaphorePermit {
            sem: self.sem.clone(),
            permits: n,
        })
    }

    /// Takes `other`'s permits into this one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(scheduler::sync::Semaphore::new(3));
    /// let mut permit = sem.acquire_owned();
    /// permit.merge(sem.acquire_owned());
    /// assert_eq!(permit.num_permits(), 2);
    /// ```
    ///
    /// # Panics
    ///
    /// If `other` belongs to another semaphore.
    #[track_caller]
    pub fn merge(&mut self, mut other: OwnedSemaphorePermit) {
        assert!(
            Arc::ptr_eq(&self.sem, &other.sem),
            "scheduler: cannot merge permits of different semaphores"
        );
        self.permits += std::mem::take(&mut other.permits);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}
