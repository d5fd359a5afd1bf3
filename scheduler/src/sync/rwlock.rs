//! A reader-writer lock that parks goroutines.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sched::wait::WaitHere;
use crate::wait::lock::Locked;
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

/// `state`: a writer holds the lock.
const WRITER: usize = 1;
/// `state`: the queue may be non-empty; fast paths are closed, so newcomers queue behind.
const WAITERS: usize = 2;
/// `state`: one reader (readers are counted above the flag bits).
const READER: usize = 4;

/// Many readers or one writer, Go's `sync.RWMutex`.
///
/// Waiting goroutines park (threads block). Once anyone waits, newcomers queue behind them and
/// the lock is handed over in arrival order (a writer alone, or a run of consecutive readers
/// together), so neither writers nor readers starve. Without contention, each lock and unlock
/// is one atomic operation. No poisoning.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use scheduler::sync::RwLock;
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let config = Arc::new(RwLock::new(1));
/// let c = config.clone();
/// rt.block_on(move || {
///     *c.write() += 1;
///     assert_eq!(*c.read(), 2);
/// });
/// assert_eq!(*config.read(), 2);
/// ```
pub struct RwLock<T: ?Sized> {
    /// `readers * READER | WAITERS | WRITER`. Acquire when taking, Release when releasing.
    /// `WAITERS` changes only under the queue lock, where all hand-overs happen.
    state: AtomicUsize,
    /// Blocked lockers in arrival order; `true` marks a writer.
    queue: Locked<VecDeque<(Arc<Waiter>, bool)>>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives access to `data` to one writer or to readers only: T: Send for the
// writer's `&mut T` from any thread, T: Sync for readers' shared `&T` on several threads.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to a [`RwLock`]'s data.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*mut ()>,
}

/// Exclusive access to a [`RwLock`]'s data.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: sharing a guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: sharing a guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            queue: Locked::new(VecDeque::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock, returning its data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds or waits for the lock.
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        if !self.try_fast(false) {
            self.lock_slow(false, Location::caller());
        }
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Locks for writing, waiting while anyone else holds the lock.
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        if !self.try_fast(true) {
            self.lock_slow(true, Location::caller());
        }
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Locks for reading if that is possible now.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        // `then`, not `then_some`: a guard built and dropped on failure would unlock.
        self.try_fast(false).then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Locks for writing if that is possible now.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        // `then`, not `then_some`: a guard built and dropped on failure would unlock.
        self.try_fast(true).then(|| RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Mutable access without locking: the `&mut` proves nobody else can lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Whether a `write` (or a `read`) could take the lock in `state`, ignoring the queue.
    fn compatible(state: usize, write: bool) -> bool {
        if write {
            state & !WAITERS == 0
        } else {
            state & WRITER == 0
        }
    }

    fn take(state: usize, write: bool) -> usize {
        if write {
            state | WRITER
        } else {
            state + READER
        }
    }

    /// The fast path: only when nobody queues.
    fn try_fast(&self, write: bool) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & WAITERS == 0 && Self::compatible(state, write) {
            match self.state.compare_exchange_weak(
                state,
                Self::take(state, write),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
        false
    }

    #[cold]
    fn lock_slow(&self, write: bool, site: Site) {
        let waiter = Waiter::for_current(BlockKind::RwLock);
        {
            let mut queue = self.queue.lock();
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                // An empty queue with WAITERS set is a leftover: the lock is free to take.
                let next = if queue.is_empty() && Self::compatible(state, write) {
                    Self::take(state, write)
                } else {
                    state | WAITERS
                };
                match self.state.compare_exchange_weak(
                    state,
                    next,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) if next & WAITERS == 0 || next != state | WAITERS => return,
                    Ok(_) => break,
                    Err(actual) => state = actual,
                }
            }
            queue.push_back((waiter.clone(), write));
        }
        // Woken only by a hand-over: the lock is ours (Release/Acquire through the waiter).
        waiter.wait(site);
    }

    fn read_unlock(&self) {
        let prev = self.state.fetch_sub(READER, Ordering::Release);
        if prev & WAITERS != 0 && prev & !(WAITERS | WRITER) == READER {
            self.hand_over();
        }
    }

    fn write_unlock(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.state.fetch_and(!WRITER, Ordering::Release);
            self.hand_over();
        }
    }

    /// Gives the lock to the front of the queue: a writer if the lock is free, or every
    /// reader up to the next writer if no writer holds it.
    #[cold]
    fn hand_over(&self) {
        let mut queue = self.queue.lock();
        while let Some(&(_, write)) = queue.front() {
            let state = self.state.load(Ordering::Relaxed);
            if !Self::compatible(state, write) {
                break;
            }
            let (waiter, _) = queue.pop_front().expect("front exists");
            let grant = if write { WRITER } else { READER };
            self.state.fetch_add(grant, Ordering::Relaxed);
            if !waiter.notify(0) {
                // That waiter is gone (cancelled): take the grant back.
                self.state.fetch_sub(grant, Ordering::Relaxed);
                continue;
            }
            if write {
                break;
            }
        }
        if queue.is_empty() {
            self.state.fetch_and(!WAITERS, Ordering::Relaxed);
        }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard proves no writer holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard proves exclusive access; `&mut self` makes it unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.write_unlock();
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_read() {
            Some(guard) => f.debug_struct("RwLock").field("data", &&*guard).finish(),
            None => f.debug_struct("RwLock").field("data", &"<locked>").finish(),
        }
    }
}
