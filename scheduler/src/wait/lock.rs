//! A lock whose raw half can be taken by `select`, which must hold the locks of all its arms at
//! once (in address order) while it checks and registers them, as Go's `selectgo` does.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use parking_lot::RawMutex;
use parking_lot::lock_api::RawMutex as _;

/// The per-acquisition state of parking_lot's raw mutex: stateless, so `unlock` can be given
/// a fresh one by whoever holds the lock.
type Acquisition = <RawMutex as parking_lot::lock_api::RawMutex>::Guard;

/// Makes the acquisition state for `unlock`. Both guard kinds lock_api offers are stateless
/// markers, so this is the value `lock` returned.
fn acquisition() -> Acquisition {
    // GuardSend or GuardNoSend, depending on parking_lot's features; both are Default.
    Acquisition::default()
}

/// The lock half of a [`Locked`], without the data's type: what `select` holds. Opaque
/// outside this crate (it appears in the hidden `Selectable` trait).
#[doc(hidden)]
pub struct RawLock {
    raw: RawMutex,
}

impl RawLock {
    /// An unlocked lock of its own, for a `select` arm whose state needs none.
    pub(crate) const fn new() -> RawLock {
        RawLock {
            raw: RawMutex::INIT,
        }
    }

    /// The address `select` orders locks by.
    pub(crate) fn addr(&self) -> usize {
        self as *const RawLock as usize
    }

    /// Takes the lock without a guard.
    pub(crate) fn lock(&self) {
        self.raw.lock();
    }

    /// Releases a lock taken with [`lock`](Self::lock).
    ///
    /// # Safety
    /// The current thread holds the lock, and no reference from [`Locked::data_mut`] outlives
    /// this call.
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (contract); the acquisition state is stateless.
        unsafe { self.raw.unlock(acquisition()) };
    }
}

/// `T` behind a `parking_lot` raw mutex.
pub(crate) struct Locked<T> {
    raw: RawLock,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through a held lock (Guard, or the unsafe raw API whose
// callers hold it), so it is accessed by one thread at a time; T: Send lets it move between
// those threads.
unsafe impl<T: Send> Sync for Locked<T> {}
// SAFETY: owning a Locked<T> is owning a T.
unsafe impl<T: Send> Send for Locked<T> {}

impl<T> Locked<T> {
    pub(crate) const fn new(data: T) -> Locked<T> {
        Locked {
            raw: RawLock::new(),
            data: UnsafeCell::new(data),
        }
    }

    /// Locks; unlocks when the guard drops.
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        self.raw.lock();
        Guard {
            locked: self,
            _not_send: PhantomData,
        }
    }

    /// The lock alone, for `select`, which takes it without a guard.
    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }

    /// The data, while the caller holds the lock through [`raw`](Self::raw).
    ///
    /// # Safety
    /// The current thread holds the lock, and no other reference to the data is alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn data_mut(&self) -> &mut T {
        // SAFETY: exclusive access under the held lock (caller's contract).
        unsafe { &mut *self.data.get() }
    }
}

impl<T: Default> Default for Locked<T> {
    fn default() -> Locked<T> {
        Locked::new(T::default())
    }
}

/// Access to a [`Locked`]'s data while its lock is held.
pub(crate) struct Guard<'a, T> {
    locked: &'a Locked<T>,
    /// Unlocked on the thread that locked it, like std's guards.
    _not_send: PhantomData<*mut ()>,
}

impl<'a, T> Guard<'a, T> {
    /// Gives up the guard without unlocking: the caller takes over releasing the lock.
    pub(crate) fn into_lock(self) -> &'a RawLock {
        let raw = &self.locked.raw;
        std::mem::forget(self);
        raw
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, and hands out references tied to itself.
        unsafe { &*self.locked.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; &mut self makes the reference unique.
        unsafe { &mut *self.locked.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard took the lock in `Locked::lock` and is its only holder.
        unsafe { self.locked.raw.unlock() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ROUNDS;
    use std::thread;

    #[test]
    fn guard_gives_one_thread_at_a_time() {
        const THREADS: usize = 3;
        // Plain, non-atomic data: only the lock orders the increments.
        let locked = Locked::new(0usize);
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        let mut guard = locked.lock();
                        let seen = *guard;
                        thread::yield_now();
                        *guard = seen + 1;
                    }
                });
            }
        });
        assert_eq!(*locked.lock(), THREADS * ROUNDS);
    }

    #[test]
    fn raw_lock_and_data_mut_exclude_guards() {
        let locked = Locked::new(Vec::new());
        thread::scope(|s| {
            s.spawn(|| {
                for i in 0..ROUNDS {
                    locked.raw().lock();
                    // SAFETY: we hold the lock; the reference ends before the unlock.
                    unsafe { locked.data_mut() }.push(i);
                    // SAFETY: locked above, on this thread.
                    unsafe { locked.raw().unlock() };
                }
            });
            for i in 0..ROUNDS {
                locked.lock().push(ROUNDS + i);
            }
        });
        let mut all = std::mem::take(&mut *locked.lock());
        all.sort_unstable();
        assert_eq!(all, (0..2 * ROUNDS).collect::<Vec<_>>());
    }

    #[test]
    fn into_lock_keeps_the_lock_until_a_raw_unlock() {
        let locked = Locked::new(1);
        let raw = locked.lock().into_lock();
        assert!(
            locked.raw.raw.try_lock().is_none(),
            "still held after the guard is gone"
        );
        // SAFETY: held since `lock` above, on this thread; no data reference is alive.
        unsafe { raw.unlock() };
        assert!(
            locked.raw.raw.try_lock().is_some(),
            "free after the raw unlock"
        );
        // SAFETY: just locked by try_lock, on this thread.
        unsafe { locked.raw().unlock() };
        assert_eq!(*locked.lock(), 1);
    }
}
