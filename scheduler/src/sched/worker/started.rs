//! The registry of a worker's started goroutines: each with its coroutine and stack limit.
//!
//! A goroutine that has started lives here until it finishes, on its home worker; its
//! `Header::slot` is its index. A forced shutdown finds the parked ones here. Keeping the
//! coroutine here rather than in the goroutine's header keeps the goroutines that have not
//! started (the many, in a burst of spawns) small.

use std::cell::UnsafeCell;
use std::sync::Arc;

use crate::goroutine::task::{Coro, Runnable, TaskRef};

/// A started goroutine in its worker's registry.
pub(super) struct Started {
    /// Held without a reference count: a started goroutine keeps itself alive (its
    /// coroutine's closure owns a `TaskRef`) until it finishes, and it is removed then.
    task: *const dyn Runnable,
    pub(super) coro: Coro,
    /// Lowest usable address of the goroutine's stack.
    pub(super) stack_limit: usize,
}

/// Every started, unfinished goroutine of one worker (its home).
///
/// Only the worker loop registers and removes entries, never while a goroutine runs, so a
/// pointer to an entry taken for a resume stays valid through it.
#[derive(Default)]
pub(super) struct Registry {
    entries: UnsafeCell<Vec<Started>>,
}

impl Registry {
    /// Registers a goroutine that starts on this worker; returns its slot.
    ///
    /// # Safety
    /// The worker loop, between goroutines (see the type's doc); `task` starts here, on its
    /// home thread.
    pub(super) unsafe fn register(&self, task: &TaskRef, coro: Coro, stack_limit: usize) -> usize {
        // SAFETY: the worker loop, between goroutines (caller's contract): no other reference
        // to the entries is alive.
        let entries = unsafe { &mut *self.entries.get() };
        let slot = entries.len();
        // SAFETY: this is the goroutine's home worker thread from now on.
        unsafe { task.header().set_slot(slot) };
        entries.push(Started {
            task: Arc::as_ptr(task),
            coro,
            stack_limit,
        });
        slot
    }

    /// The entry at `slot`, for one resume.
    ///
    /// # Safety
    /// The worker loop; the pointer is used only until the resume ends, and no entry is
    /// registered or removed meanwhile.
    pub(super) unsafe fn entry(&self, slot: usize) -> *mut Started {
        // SAFETY: as the caller's contract says; `slot` is a registered goroutine's.
        unsafe { (*self.entries.get()).as_mut_ptr().add(slot) }
    }

    /// Removes the finished goroutine at `slot`, moving the last entry into its place.
    ///
    /// # Safety
    /// The worker loop, between goroutines.
    pub(super) unsafe fn unregister(&self, slot: usize) -> Started {
        // SAFETY: the worker loop, between goroutines (caller's contract).
        let entries = unsafe { &mut *self.entries.get() };
        let finished = entries.swap_remove(slot);
        if let Some(moved) = entries.get(slot) {
            // SAFETY: every registered goroutine is alive (`Started::task` doc) and has this
            // worker, this thread, as its home.
            unsafe { (*moved.task).header().set_slot(slot) };
        }
        finished
    }

    /// How many started goroutines are registered.
    pub(super) fn len(&self) -> usize {
        // SAFETY: a read of the length only; entries are pushed and removed on this thread, by
        // the worker loop, never during this call.
        unsafe { (*self.entries.get()).len() }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A counted reference to every registered goroutine.
    ///
    /// # Safety
    /// The worker loop, between goroutines.
    pub(super) unsafe fn tasks(&self) -> Vec<TaskRef> {
        // SAFETY: the worker loop, between goroutines (caller's contract).
        let entries = unsafe { &*self.entries.get() };
        entries
            .iter()
            .map(|entry| {
                // SAFETY: the pointer came from `Arc::as_ptr` and the goroutine is alive
                // (`Started::task` doc), so its count is at least one while we add ours.
                unsafe {
                    Arc::increment_strong_count(entry.task);
                    Arc::from_raw(entry.task)
                }
            })
            .collect()
    }
}
