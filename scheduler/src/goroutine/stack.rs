//! Goroutine stacks: one anonymous mapping each, with a guard page below, recycled through a
//! per-worker pool so that spawning does not map memory on its hot path.
//!
//! A fresh stack costs an `mmap`, an `mprotect` and, when it is finally released, a `munmap`
//! (about 5 us together, plus TLB shootdowns on a multi-core machine); a recycled one costs a
//! `Vec::pop`. A goroutine that has not started yet owns no stack at all, so a million queued
//! goroutines cost only their closures.

use std::io;
use std::ptr;

use corosensei::stack::{Stack, StackPointer};

/// Default usable stack size of a goroutine: 256 KiB.
///
/// Rust cannot move a stack to grow it (unlike Go), so the size is fixed when the goroutine
/// starts. 256 KiB is enough for ordinary Rust code, formatting, and a panic that captures a
/// backtrace; only the pages a goroutine touches become resident, so an idle goroutine costs
/// about one 4 KiB page plus 512 bytes of page table. Raise it with
/// [`Builder::stack_size`](crate::Builder::stack_size) for deep recursion.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest stack size [`Builder::stack_size`](crate::Builder::stack_size) accepts: 16 KiB.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Largest stack size [`Builder::stack_size`](crate::Builder::stack_size) accepts: 1 GiB.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// How many released stacks a worker keeps for reuse before it unmaps them.
const POOL_CAPACITY: usize = 256;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).expect("scheduler: sysconf(_SC_PAGESIZE) failed")
}

/// A goroutine stack: `len` bytes of anonymous memory whose lowest page is inaccessible.
///
/// Invariants: `[bottom, bottom + len)` is a mapping owned by this value; the page at `bottom`
/// is `PROT_NONE` and every other page is read-write.
pub(crate) struct GuardedStack {
    bottom: usize,
    len: usize,
}

// SAFETY: a GuardedStack is plain memory with no thread affinity; the mapping may be used and
// released from any thread.
unsafe impl Send for GuardedStack {}

impl GuardedStack {
    /// Maps a stack with `size` usable bytes (rounded up to whole pages) plus one guard page.
    pub(crate) fn new(size: usize) -> io::Result<GuardedStack> {
        let page = page_size();
        let usable = size.div_ceil(page) * page;
        let len = usable + page;
        // SAFETY: an anonymous private mapping at an address the kernel chooses aliases no
        // existing memory. MAP_NORESERVE: untouched stack pages do not count against commit.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = GuardedStack {
            bottom: addr as usize,
            len,
        };
        // SAFETY: the first page lies inside the mapping just created and owned by `stack`.
        if unsafe { libc::mprotect(addr, page, libc::PROT_NONE) } != 0 {
            // `stack` is dropped here, which unmaps the region.
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Usable bytes above the guard page.
    #[cfg(test)]
    pub(crate) fn usable_size(&self) -> usize {
        self.len - page_size()
    }
}

impl Drop for GuardedStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by self (invariant) and no coroutine runs on it any
        // more: corosensei hands a stack back only after its coroutine finished.
        unsafe { libc::munmap(self.bottom as *mut libc::c_void, self.len) };
    }
}

// SAFETY: [limit(), base()) is read-write memory owned by self, and the page just below
// limit(), [bottom, bottom + page), is PROT_NONE (invariant), which is the guard page the trait
// requires: an overflow past limit() faults instead of touching other memory.
unsafe impl Stack for GuardedStack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.bottom + self.len).expect("stack top is not null")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.bottom + page_size()).expect("stack limit is not null")
    }
}

/// A worker's cache of released stacks, all of one size.
///
/// Owned by one worker thread; never shared.
pub(crate) struct StackPool {
    size: usize,
    free: Vec<GuardedStack>,
}

impl StackPool {
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            size,
            free: Vec::new(),
        }
    }

    /// A stack for a goroutine that is about to start: a recycled one when there is one.
    pub(crate) fn take(&mut self) -> io::Result<GuardedStack> {
        match self.free.pop() {
            Some(stack) => Ok(stack),
            None => GuardedStack::new(self.size),
        }
    }

    /// Returns the stack of a finished goroutine for reuse.
    pub(crate) fn give(&mut self, stack: GuardedStack) {
        if self.free.len() < POOL_CAPACITY {
            self.free.push(stack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_size_rounds_up_to_pages() {
        let stack = GuardedStack::new(MIN_STACK_SIZE + 1).unwrap();
        assert_eq!(stack.usable_size(), MIN_STACK_SIZE + page_size());
        assert_eq!(
            stack.base().get() - stack.limit().get(),
            stack.usable_size()
        );
    }

    #[test]
    fn pool_recycles_stacks() {
        let mut pool = StackPool::new(MIN_STACK_SIZE);
        let stack = pool.take().unwrap();
        let top = stack.base();
        pool.give(stack);
        assert_eq!(pool.take().unwrap().base(), top);
    }
}
