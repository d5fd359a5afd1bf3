//! Goroutine stacks: carved from large shared mappings, each with a guard page below it, and
//! recycled through a per-worker pool so that spawning does not map memory on its hot path.
//!
//! A fresh `mmap` + `mprotect` per stack costs about 5 us and two kernel mappings, and Linux
//! allows 65,530 mappings per process by default, so stacks mapped one by one run out at about
//! 32,700 live goroutines. Here a runtime's [`StackArena`] maps [`CHUNK_STACKS`] stacks at a
//! time as one region and installs each guard page with `madvise(MADV_GUARD_INSTALL)` (Linux
//! 6.13+), which marks page-table entries and does not split the region: a million guarded
//! stacks fit in a few thousand mappings. On older kernels the guard pages fall back to
//! `mprotect`, with the old limit. A goroutine that has not started owns no stack at all.

use std::io;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

/// Default usable stack size of a goroutine: 256 KiB.
///
/// Rust cannot move a stack to grow it (unlike Go), so the size is fixed when the goroutine
/// starts. 256 KiB is enough for ordinary Rust code, formatting, and a panic that captures a
/// backtrace; only the pages a goroutine touches become resident, so an idle goroutine costs
/// about one 4 KiB page plus 512 bytes of page table. Raise it with
/// [`Builder::stack_size`](crate::Builder::stack_size) for deep recursion.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest stack size [`Builder::stack_size`](crate::Builder::stack_size) accepts: 64 KiB.
///
/// Less is not enough for the runtime's own frames on the goroutine stack in a debug build
/// (blocking on a channel inside a `select!`, a panic that formats its message).
pub const MIN_STACK_SIZE: usize = 64 * 1024;

/// Largest stack size [`Builder::stack_size`](crate::Builder::stack_size) accepts: 1 GiB.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Stacks mapped together as one region.
const CHUNK_STACKS: usize = 64;

/// How many released stacks a worker keeps before handing them back to the arena.
const POOL_CAPACITY: usize = 256;

/// How many handed-back stacks the arena keeps with their memory resident. Beyond that their
/// memory is released with `MADV_DONTNEED`, which costs a syscall and TLB shootdowns on every
/// core that ran the process, so a burst of finished goroutines does not pay it per stack.
const WARM_STACKS: usize = 1024;

/// `madvise` advice that installs guard markers (Linux 6.13+; not yet in every libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).expect("scheduler: sysconf(_SC_PAGESIZE) failed")
}

/// How guard pages are made on this kernel, found out on first use. Relaxed throughout: it
/// is a hint that protects no data; a thread that reads a stale value just tries `madvise`
/// once more.
static GUARD_MODE: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);
const GUARD_UNKNOWN: u8 = 0;
const GUARD_MADVISE: u8 = 1;
const GUARD_MPROTECT: u8 = 2;

/// Makes `[addr, addr + page)` inaccessible.
///
/// # Safety
/// The page lies inside a mapping owned by the caller, and nothing uses it.
unsafe fn install_guard(addr: usize, page: usize) -> io::Result<()> {
    let ptr = addr as *mut libc::c_void;
    if GUARD_MODE.load(Ordering::Relaxed) != GUARD_MPROTECT {
        // SAFETY: the page belongs to the caller's mapping (contract).
        if unsafe { libc::madvise(ptr, page, MADV_GUARD_INSTALL) } == 0 {
            GUARD_MODE.store(GUARD_MADVISE, Ordering::Relaxed);
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
        // The kernel does not know the advice: use mprotect from now on.
        GUARD_MODE.store(GUARD_MPROTECT, Ordering::Relaxed);
    }
    // SAFETY: as above.
    if unsafe { libc::mprotect(ptr, page, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps `len` bytes of fresh read-write memory for stacks and returns its address: private,
/// anonymous, and `MAP_NORESERVE`, so untouched pages do not count against the commit limit.
pub(crate) fn map_stack_memory(len: usize) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping at an address the kernel chooses aliases no
    // existing memory.
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
    Ok(addr as usize)
}

/// Whether guard pages split mappings on this kernel (the mprotect fallback), so that the
/// mapping limit (`vm.max_map_count`) bounds how many stacks can exist.
pub(crate) fn guards_split_mappings() -> bool {
    GUARD_MODE.load(Ordering::Relaxed) == GUARD_MPROTECT
}

/// A goroutine stack: `[limit, top)` is read-write, and the page just below `limit` is a
/// guard. Owned by whoever holds this value; the memory belongs to a [`StackArena`], which
/// outlives it.
pub(crate) struct GuardedStack {
    limit: usize,
    top: usize,
}

// SAFETY: a stack is plain memory with no thread affinity.
unsafe impl Send for GuardedStack {}

// SAFETY: [limit(), base()) is read-write memory owned by this stack (struct doc), and the page
// below limit() is a guard page (installed by the arena before the stack is handed out), as the
// trait requires: an overflow past limit() faults instead of touching other memory.
unsafe impl Stack for GuardedStack {
    #[inline]
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top).expect("stack top is not null")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.limit).expect("stack limit is not null")
    }
}

/// All stacks of one runtime: the mappings they live in and the stacks not in use.
///
/// Shared by the runtime's workers; dropped, unmapping everything, after they have exited,
/// when no goroutine runs any more.
pub(crate) struct StackArena {
    page: usize,
    /// Usable bytes per stack (whole pages).
    usable: usize,
    inner: Mutex<ArenaInner>,
}

struct ArenaInner {
    /// Every region mapped, as (address, length).
    regions: Vec<(usize, usize)>,
    /// Stacks not carved yet from the regions, per region: the next address, the count left,
    /// and whether their guard pages are installed already (with `mprotect` they are, at
    /// mapping time; `MADV_GUARD_INSTALL` guards are installed as each stack is carved).
    unused: Vec<Unused>,
    /// Stacks handed back by workers whose pools were full, with their memory resident.
    warm: Vec<GuardedStack>,
    /// The same, beyond `WARM_STACKS`, with their memory released.
    cold: Vec<GuardedStack>,
    /// Stack slots mapped: `CHUNK_STACKS` per region.
    capacity: usize,
    /// Stack slots promised to goroutines admitted and not finished (and to the workers'
    /// batches of such promises); never above `capacity`.
    reserved: usize,
}

/// The part of a region not carved into stacks yet.
#[derive(Clone, Copy)]
struct Unused {
    next: usize,
    left: usize,
    guarded: bool,
}

impl StackArena {
    pub(crate) fn new(stack_size: usize) -> Arc<StackArena> {
        let page = page_size();
        Arc::new(StackArena {
            page,
            usable: stack_size.div_ceil(page) * page,
            inner: Mutex::new(ArenaInner {
                regions: Vec::new(),
                unused: Vec::new(),
                warm: Vec::new(),
                cold: Vec::new(),
                capacity: 0,
                reserved: 0,
            }),
        })
    }

    /// Usable bytes of each stack: the requested size rounded up to whole pages.
    pub(crate) fn usable(&self) -> usize {
        self.usable
    }

    fn slot(&self) -> usize {
        self.usable + self.page
    }

    /// Promises `n` more stack slots, mapping regions until they exist. A goroutine is
    /// admitted only with a slot promised, so that starting it cannot fail for want of
    /// memory: the slots mapped always cover the goroutines that may need one.
    pub(crate) fn reserve(&self, n: usize) -> io::Result<()> {
        let mut inner = self.inner.lock();
        while inner.reserved + n > inner.capacity {
            self.map_region(&mut inner)?;
        }
        inner.reserved += n;
        Ok(())
    }

    /// Takes back `n` promises made by [`reserve`](Self::reserve).
    pub(crate) fn release(&self, n: usize) {
        let mut inner = self.inner.lock();
        debug_assert!(inner.reserved >= n);
        inner.reserved -= n;
    }

    /// A stack: a returned one if any, else carved from a region, else from a new region.
    /// Fails only if no stack is free here and no region can be mapped: the free stacks that
    /// the promises guarantee are then in the workers' pools.
    pub(crate) fn take(&self) -> io::Result<GuardedStack> {
        let mut inner = self.inner.lock();
        if let Some(stack) = inner.warm.pop().or_else(|| inner.cold.pop()) {
            return Ok(stack);
        }
        if inner.unused.is_empty() {
            self.map_region(&mut inner)?;
        }
        let unused = inner.unused.pop().expect("a region with stacks left");
        let start = unused.next;
        if unused.left > 1 {
            inner.unused.push(Unused {
                next: start + self.slot(),
                left: unused.left - 1,
                ..unused
            });
        }
        if !unused.guarded {
            // SAFETY: the page is the lowest of a slot of a region of ours that no stack was
            // carved from yet, so nothing uses it.
            if let Err(err) = unsafe { install_guard(start, self.page) } {
                // Guard markers cost only page-table memory; with none left the process could
                // not run a goroutine anyway. Never hand out a stack without its guard.
                eprintln!("scheduler: cannot install a goroutine stack's guard page: {err}");
                std::process::abort();
            }
        }
        Ok(GuardedStack {
            limit: start + self.page,
            top: start + self.slot(),
        })
    }

    /// Maps a region for `CHUNK_STACKS` stacks, guards each, and adds them to the unused ones.
    fn map_region(&self, inner: &mut ArenaInner) -> io::Result<()> {
        let len = self.slot() * CHUNK_STACKS;
        let addr = map_stack_memory(len)?;
        // Recorded first, so that it is unmapped even if a guard fails below.
        inner.regions.push((addr, len));
        // The first guard also finds out how guards are made on this kernel.
        // SAFETY: the page is the lowest of slot 0, inside the region just mapped, which
        // nothing uses yet.
        unsafe { install_guard(addr, self.page)? };
        // `mprotect` guards split the mapping, and may fail at the mapping limit: make them all
        // now, so that a reserved stack can always be carved. `MADV_GUARD_INSTALL` guards cost
        // no mapping and wait until each stack is carved: a burst of spawns reserves regions
        // for goroutines that mostly never hold a stack at the same time.
        let guarded = guards_split_mappings();
        if guarded {
            for i in 1..CHUNK_STACKS {
                // SAFETY: as above, for slot i.
                unsafe { install_guard(addr + i * self.slot(), self.page)? };
            }
        }
        inner.unused.push(Unused {
            next: addr,
            left: CHUNK_STACKS,
            guarded,
        });
        inner.capacity += CHUNK_STACKS;
        Ok(())
    }

    /// Takes back a stack a worker does not keep. The first [`WARM_STACKS`] keep their memory;
    /// the rest release it to the OS (the address range stays reserved for reuse).
    fn give_back(&self, stack: GuardedStack) {
        let mut inner = self.inner.lock();
        if inner.warm.len() < WARM_STACKS {
            inner.warm.push(stack);
            return;
        }
        // SAFETY: the range is the stack's own usable memory, no goroutine runs on it (it was
        // handed back), and MADV_DONTNEED on private anonymous memory just zero-fills it.
        unsafe {
            libc::madvise(
                stack.limit as *mut libc::c_void,
                stack.top - stack.limit,
                libc::MADV_DONTNEED,
            );
        }
        inner.cold.push(stack);
    }
}

impl Drop for StackArena {
    fn drop(&mut self) {
        for &(addr, len) in &self.inner.get_mut().regions {
            // SAFETY: the region was mapped by this arena, and the arena is dropped only after
            // every worker exited, so no goroutine runs on any of its stacks.
            unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        }
    }
}

/// A worker's cache of released stacks. Owned by one worker thread; never shared.
pub(crate) struct StackPool {
    arena: Arc<StackArena>,
    free: Vec<GuardedStack>,
}

impl StackPool {
    pub(crate) fn new(arena: Arc<StackArena>) -> StackPool {
        StackPool {
            arena,
            free: Vec::new(),
        }
    }

    /// A stack for a goroutine that is about to start: a recycled one when there is one.
    pub(crate) fn take(&mut self) -> io::Result<GuardedStack> {
        match self.free.pop() {
            Some(stack) => Ok(stack),
            None => self.arena.take(),
        }
    }

    /// Hands every cached stack back to the arena.
    pub(crate) fn flush(&mut self) {
        for stack in self.free.drain(..) {
            self.arena.give_back(stack);
        }
    }

    /// Returns the stack of a finished goroutine for reuse.
    pub(crate) fn give(&mut self, stack: GuardedStack) {
        if self.free.len() < POOL_CAPACITY {
            self.free.push(stack);
        } else {
            self.arena.give_back(stack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_size_rounds_up_to_pages() {
        let arena = StackArena::new(MIN_STACK_SIZE + 1);
        let stack = arena.take().unwrap();
        assert_eq!(
            stack.base().get() - stack.limit().get(),
            MIN_STACK_SIZE + page_size()
        );
    }

    #[test]
    fn stacks_do_not_overlap_and_are_writable() {
        let arena = StackArena::new(MIN_STACK_SIZE);
        let stacks: Vec<_> = (0..CHUNK_STACKS + 3)
            .map(|_| arena.take().unwrap())
            .collect();
        let mut ranges: Vec<_> = stacks.iter().map(|s| (s.limit, s.top)).collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            // A guard page separates neighbours.
            assert!(pair[0].1 + page_size() <= pair[1].0, "{pair:?}");
        }
        for s in &stacks {
            // SAFETY: both addresses are inside the stack's read-write range.
            unsafe {
                *(s.limit as *mut u8) = 1;
                *((s.top - 1) as *mut u8) = 1;
            }
        }
    }

    #[test]
    fn pool_recycles_stacks() {
        let mut pool = StackPool::new(StackArena::new(MIN_STACK_SIZE));
        let stack = pool.take().unwrap();
        let top = stack.base();
        pool.give(stack);
        assert_eq!(pool.take().unwrap().base(), top);
    }
}
