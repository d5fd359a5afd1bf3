//! Helpers for the crate's unit tests.
//!
//! The protocols that need no goroutine (the waiter, the join flag, the parker, the channel
//! queues) are tested on plain threads, so that Miri can run them (see "Testing" in
//! `docs/design.md`).

use std::cell::UnsafeCell;

/// Iterations of a racing test: enough to hit both orders of a race on real threads, few
/// enough that Miri, which explores interleavings instead, finishes in seconds.
pub(crate) const ROUNDS: usize = if cfg!(miri) { 4 } else { 200 };

/// A value shared between threads with no synchronization of its own. A test writes it on
/// one thread and reads it on another, and only the protocol under test orders the two
/// accesses: the test checks the value, and under Miri the data race detector checks that
/// the protocol creates the happens-before edge it promises.
pub(crate) struct Unsynced<T>(UnsafeCell<T>);

// SAFETY: every access goes through `set` or `get`, whose callers promise that no other
// thread accesses the value concurrently; T: Send lets the value move between threads.
unsafe impl<T: Send> Sync for Unsynced<T> {}

impl<T: Copy> Unsynced<T> {
    pub(crate) const fn new(value: T) -> Unsynced<T> {
        Unsynced(UnsafeCell::new(value))
    }

    /// # Safety
    /// No other thread accesses the value concurrently.
    pub(crate) unsafe fn set(&self, value: T) {
        // SAFETY: exclusive access for the duration of the write (caller's contract).
        unsafe { *self.0.get() = value }
    }

    /// # Safety
    /// No other thread writes the value concurrently.
    pub(crate) unsafe fn get(&self) -> T {
        // SAFETY: no concurrent write (caller's contract).
        unsafe { *self.0.get() }
    }
}
