//! A mutual-exclusion lock that parks goroutines, with Go's starvation mode.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::sched::wait::WaitHere;
use crate::wait::lock::Locked;
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

/// The lock is held.
const LOCKED: u8 = 1;
/// The wait queue is not empty: unlock must look at it.
const WAITERS: u8 = 2;
/// Starvation mode: unlock hands the lock straight to the first waiter; nobody barges in.
const STARVING: u8 = 4;

/// A waiter that has waited this long switches the mutex to starvation mode (Go's value).
const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);

/// Waiter tokens: woken to try again, or handed the lock.
const RETRY: usize = 0;
const HANDOFF: usize = 1;

/// A mutual-exclusion lock for data shared between goroutines (and threads).
///
/// A goroutine that waits for the lock parks, and its worker runs other goroutines; a thread
/// blocks. Locking and unlocking without contention is one atomic operation each.
///
/// # Fairness
///
/// Like Go's `sync.Mutex`: normally a goroutine that arrives while the lock is free takes it,
/// even if others wait (fast, and most waits are short). A waiter that has waited more than
/// 1 ms switches the mutex to *starvation mode*, in which unlock hands the lock directly to the
/// longest waiter and newcomers queue behind; the mode ends when the queue empties or when a
/// waiter is served within 1 ms. So no waiter waits forever while others keep taking the lock,
/// and the mutex does not stay in the slower hand-over mode once the queue moves.
///
/// Unlike `std::sync::Mutex`, there is no poisoning: a panic while the lock is held unlocks it.
///
/// # When std or parking_lot locks are fine
///
/// A `std::sync::Mutex` or `parking_lot::Mutex` held for a short critical section that never
/// blocks (no channel operation, no `join`, no sleep, no other lock of this crate) is fine, and
/// cheaper. Holding one across a goroutine block deadlocks: the goroutine parks while holding
/// it, and another goroutine of the same worker that wants it blocks the worker thread, so the
/// holder never runs again. Use this mutex whenever the critical section may block.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use scheduler::sync::Mutex;
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let counter = Arc::new(Mutex::new(0));
/// rt.block_on({
///     let counter = counter.clone();
///     move || {
///         let wg = scheduler::WaitGroup::new();
///         for _ in 0..10 {
///             let counter = counter.clone();
///             wg.go(move || *counter.lock() += 1);
///         }
///         wg.wait();
///     }
/// });
/// assert_eq!(*counter.lock(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    /// `LOCKED | WAITERS | STARVING`. `WAITERS` and `STARVING` change only under the queue
    /// lock. Acquire on taking the lock and Release on releasing it order the critical
    /// sections.
    state: AtomicU8,
    /// Waiters in FIFO order, each with the time it first started waiting.
    queue: Locked<VecDeque<(Arc<Waiter>, Instant)>>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one goroutine or thread at a time access to `data` (T: Send lets the
// data be used from whichever thread holds the lock).
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex` only hands out access to `data` under the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Access to a [`Mutex`]'s data; unlocks when dropped.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// Unlocked where it was locked, like std's guards (a Condvar relies on it too).
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing a guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU8::new(0),
            queue: Locked::new(VecDeque::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning its data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking the goroutine (or blocking the thread) while another holds the lock.
    ///
    /// Not reentrant: locking a mutex the caller already holds deadlocks.
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock_at(Location::caller())
    }

    /// [`lock`](Self::lock), waiting at `site` if it has to wait.
    #[inline]
    pub(crate) fn lock_at(&self, site: Site) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow(site);
        }
        self.guard()
    }

    /// Locks if the lock is free now (and nobody is owed it in starvation mode).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & (LOCKED | STARVING) == 0 {
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.guard()),
                Err(actual) => state = actual,
            }
        }
        None
    }

    /// Mutable access without locking: the `&mut` proves nobody else can lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }

    #[cold]
    fn lock_slow(&self, site: Site) {
        let started = Instant::now();
        let mut requeue = false;
        loop {
            let waiter = Waiter::for_current(BlockKind::Mutex);
            {
                let mut queue = self.queue.lock();
                let mut state = self.state.load(Ordering::Relaxed);
                loop {
                    if state & (LOCKED | STARVING) == 0 {
                        // Free, and not owed to a starving waiter: take it.
                        match self.state.compare_exchange_weak(
                            state,
                            state | LOCKED,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => return,
                            Err(actual) => state = actual,
                        }
                        continue;
                    }
                    let mut next = state | WAITERS;
                    if requeue && started.elapsed() > STARVATION_THRESHOLD {
                        next |= STARVING;
                    }
                    match self.state.compare_exchange_weak(
                        state,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(actual) => state = actual,
                    }
                }
                // A waiter that was woken and lost the race goes back to the front.
                if requeue {
                    queue.push_front((waiter.clone(), started));
                } else {
                    queue.push_back((waiter.clone(), started));
                }
            }
            if waiter.wait(site) == HANDOFF {
                // Starvation mode: the unlocker left LOCKED set for us. The notification's
                // Release/Acquire orders its critical section before ours.
                return;
            }
            requeue = true;
        }
    }

    fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut queue = self.queue.lock();
        let starving = self.state.load(Ordering::Relaxed) & STARVING != 0;
        if !starving {
            // Release the lock first, then wake one waiter to compete for it.
            self.state.fetch_and(!LOCKED, Ordering::Release);
        }
        while let Some((waiter, since)) = queue.pop_front() {
            let token = if starving { HANDOFF } else { RETRY };
            if waiter.notify(token) {
                if queue.is_empty() {
                    self.state
                        .fetch_and(!(WAITERS | STARVING), Ordering::Relaxed);
                } else if starving && since.elapsed() <= STARVATION_THRESHOLD {
                    // Go's exit rule: the waiter served did not starve, so the queue moves;
                    // back to normal mode, where unlock does not hand over (a hand-over to a
                    // parked waiter costs a wakeup on every unlock).
                    self.state.fetch_and(!STARVING, Ordering::Relaxed);
                }
                return;
            }
            // That waiter is gone (its goroutine was cancelled): try the next one.
        }
        // Nobody to wake: clear the flags, and the lock itself if we were handing it off.
        self.state
            .fetch_and(!(WAITERS | STARVING | LOCKED), Ordering::Release);
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no `&mut` to the data exists.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and `&mut self` makes this access unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks (for [`Condvar`](super::Condvar)).
    pub(crate) fn mutex(guard: &MutexGuard<'a, T>) -> &'a Mutex<T> {
        guard.mutex
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(guard) => f.debug_struct("Mutex").field("data", &&*guard).finish(),
            None => f.debug_struct("Mutex").field("data", &"<locked>").finish(),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
