//! A condition variable for [`Mutex`](super::Mutex).

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::mutex::{Mutex, MutexGuard};
use crate::sched::wait::WaitHere;
use crate::wait::lock::Locked;
use crate::wait::waiter::{Waiter, WaiterQueue};
use crate::wait::{BlockKind, Site};

/// Waits for a condition guarded by a [`Mutex`], Go's `sync.Cond`.
///
/// [`wait`](Self::wait) unlocks the mutex, parks the goroutine (or blocks the thread) until
/// [`notify_one`](Self::notify_one) or [`notify_all`](Self::notify_all), then locks the mutex
/// again. A waiter is registered before the mutex is unlocked, so a notification sent by
/// whoever locks the mutex next is never missed. Wakeups may be spurious: wait in a loop that
/// checks the condition, or use [`wait_while`](Self::wait_while).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use scheduler::sync::{Condvar, Mutex};
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = pair.clone();
/// rt.spawn(move || {
///     let (ready, cond) = &*pair2;
///     *ready.lock() = true;
///     cond.notify_all();
/// });
/// let (ready, cond) = &*pair;
/// let guard = cond.wait_while(ready.lock(), |ready| !*ready);
/// assert!(*guard);
/// ```
#[derive(Default)]
pub struct Condvar {
    waiters: Locked<WaiterQueue>,
}

impl Condvar {
    /// A condition variable with no waiters.
    pub fn new() -> Condvar {
        Condvar::default()
    }

    /// Unlocks `guard`'s mutex, waits for a notification, and locks it again.
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until_inner(guard, None, Location::caller()).0
    }

    /// Waits until `condition` is false, re-checking it after every wakeup.
    #[track_caller]
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// As [`wait`](Self::wait), giving up after `timeout`. The flag is true if it timed out.
    #[track_caller]
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_until_inner(guard, deadline, Location::caller())
    }

    /// The wait, and the locking after it, both at `site`.
    fn wait_until_inner<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
        site: Site,
    ) -> (MutexGuard<'a, T>, bool) {
        let mutex: &'a Mutex<T> = MutexGuard::mutex(&guard);
        let waiter = Waiter::for_current(BlockKind::Condvar);
        self.waiters.lock().push(&waiter, 0);
        drop(guard);
        let notified = waiter.wait_until(deadline, site).is_some();
        if !notified {
            self.waiters.lock().withdraw(&waiter);
        }
        (mutex.lock_at(site), !notified)
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        self.waiters.lock().notify_first();
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let waiters = self.waiters.lock().take_all();
        waiters.notify_all();
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
