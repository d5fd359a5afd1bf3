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
use std::sync::Arc;

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

use super::stack_memory::{
    guards_split_mappings, install_guard, install_guards, map_stack_memory, page_size,
    release_memory,
};

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

/// How many released stacks a worker keeps before handing some back to the arena.
const POOL_CAPACITY: usize = 256;

/// How many stacks a worker takes from the arena, or hands back to it, under one lock.
const POOL_BATCH: usize = 32;

/// How many handed-back stacks the arena keeps with their memory resident for good. The
/// rest keep theirs until [`StackArena::trim`] finds them unused for a whole trim period.
const WARM_STACKS: usize = 1024;

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
    /// Stacks handed back by workers, with whatever memory their goroutines touched still
    /// resident; the most recently handed back last, taken first.
    warm: Vec<GuardedStack>,
    /// The fewest stacks `warm` held since the last trim: the oldest that many were not needed
    /// in the whole period.
    low_water: usize,
    /// Stacks whose memory was released.
    cold: Vec<GuardedStack>,
    /// Stack slots mapped: `CHUNK_STACKS` per region.
    capacity: usize,
    /// Stack slots promised to goroutines admitted and not finished (and to the workers'
    /// batches of such promises); never above `capacity`.
    reserved: usize,
}

/// What [`StackArena::counts`] reports.
pub(crate) struct StackCounts {
    pub(crate) mapped: usize,
    pub(crate) free_resident: usize,
    pub(crate) free_released: usize,
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
                low_water: 0,
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

    /// One stack (see [`take_batch`](Self::take_batch)).
    #[cfg(test)]
    pub(crate) fn take(&self) -> io::Result<GuardedStack> {
        let mut one = Vec::new();
        self.take_batch(&mut one, 1)?;
        Ok(one.pop().expect("take_batch gives at least one stack"))
    }

    /// Adds between one and `want` stacks to `out`: handed-back ones with resident memory if
    /// any, else released ones, else fresh ones carved from one region (mapping a new region
    /// if none has slots left). Fails only if no stack is free here and no region can be
    /// mapped: the free stacks that the promises guarantee are then in the workers' pools.
    pub(crate) fn take_batch(&self, out: &mut Vec<GuardedStack>, want: usize) -> io::Result<()> {
        debug_assert!(want > 0, "take_batch of no stacks");
        let mut guards = Vec::new();
        {
            let mut inner = self.inner.lock();
            let inner = &mut *inner;
            let from = if inner.warm.is_empty() {
                &mut inner.cold
            } else {
                &mut inner.warm
            };
            if !from.is_empty() {
                out.extend(from.drain(from.len().saturating_sub(want)..));
                inner.low_water = inner.low_water.min(inner.warm.len());
                return Ok(());
            }
            if inner.unused.is_empty() {
                self.map_region(inner)?;
            }
            let unused = inner.unused.pop().expect("a region with stacks left");
            let count = unused.left.min(want);
            if unused.left > count {
                inner.unused.push(Unused {
                    next: unused.next + count * self.slot(),
                    left: unused.left - count,
                    ..unused
                });
            }
            for i in 0..count {
                let start = unused.next + i * self.slot();
                if !unused.guarded {
                    guards.push(start);
                }
                out.push(GuardedStack {
                    limit: start + self.page,
                    top: start + self.slot(),
                });
            }
        }
        // Outside the lock: the stacks are out of the arena, and only `out`'s owner, which
        // hands none out before this returns, knows them.
        // SAFETY: each page is the lowest of a slot of a region of ours that no stack was
        // carved from before, so nothing uses it.
        if let Err(err) = unsafe { install_guards(&guards, self.page) } {
            // Guard markers cost only page-table memory; with none left the process could not
            // run a goroutine anyway. Never hand out a stack without its guard.
            eprintln!("scheduler: cannot install a goroutine stack's guard page: {err}");
            std::process::abort();
        }
        Ok(())
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

    /// Takes back stacks a worker does not keep. No system call: their memory stays resident
    /// until a [`trim`](Self::trim) finds them unused for a whole period.
    fn give_back(&self, stacks: impl Iterator<Item = GuardedStack>) {
        self.inner.lock().warm.extend(stacks);
    }

    /// How many stack slots are mapped, and how many free stacks the arena holds with their
    /// memory resident and released (the workers' pools not counted).
    pub(crate) fn counts(&self) -> StackCounts {
        let inner = self.inner.lock();
        StackCounts {
            mapped: inner.capacity,
            free_resident: inner.warm.len(),
            free_released: inner.cold.len(),
        }
    }

    /// Whether stacks beyond the [`WARM_STACKS`] kept for good hold resident memory, which
    /// trims will release.
    pub(crate) fn has_surplus(&self) -> bool {
        self.inner.lock().warm.len() > WARM_STACKS
    }

    /// Releases the memory of the handed-back stacks that were not needed since the previous
    /// trim (beyond the [`WARM_STACKS`] kept), in as few system calls as their addresses
    /// allow, off the arena's lock. Called periodically by the runtime's monitor thread, as
    /// Go's scavenger returns unused heap memory in the background: a goroutine that finishes
    /// pays no system call, and a burst of goroutines that finish together releases their
    /// stacks a region at a time rather than one stack at a time. Returns how many stacks
    /// were released.
    pub(crate) fn trim(&self) -> usize {
        let surplus = {
            let mut inner = self.inner.lock();
            let excess = inner.low_water.saturating_sub(WARM_STACKS);
            // The oldest `excess` stacks, at the bottom of `warm`, were there all period.
            let keep = inner.warm.split_off(excess);
            inner.low_water = keep.len();
            std::mem::replace(&mut inner.warm, keep)
        };
        if surplus.is_empty() {
            return 0;
        }
        let mut ranges: Vec<(usize, usize)> = surplus.iter().map(|s| (s.limit, s.top)).collect();
        // SAFETY: the ranges are the usable memory of stacks out of every list, which no
        // goroutine runs on (they were handed back) and nobody else can reach; adjacent slots
        // are one guard page apart.
        unsafe { release_memory(&mut ranges, self.page) };
        let released = surplus.len();
        self.inner.lock().cold.extend(surplus);
        released
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

    /// A stack for a goroutine that is about to start: a recycled one when there is one, else
    /// a batch from the arena.
    pub(crate) fn take(&mut self) -> io::Result<GuardedStack> {
        if self.free.is_empty() {
            self.arena.take_batch(&mut self.free, POOL_BATCH)?;
        }
        Ok(self
            .free
            .pop()
            .expect("take_batch gives at least one stack"))
    }

    /// Hands every cached stack back to the arena.
    pub(crate) fn flush(&mut self) {
        self.arena.give_back(self.free.drain(..));
    }

    /// Returns the stack of a finished goroutine for reuse; past [`POOL_CAPACITY`], hands the
    /// [`POOL_BATCH`] least recently used back to the arena.
    pub(crate) fn give(&mut self, stack: GuardedStack) {
        self.free.push(stack);
        if self.free.len() > POOL_CAPACITY {
            self.arena.give_back(self.free.drain(..POOL_BATCH));
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

    /// Writes `value` to the top byte of `stack`, or reads it.
    fn top_byte(stack: &GuardedStack, value: Option<u8>) -> u8 {
        let top = (stack.top - 1) as *mut u8;
        // SAFETY: the byte is inside the stack's read-write range, and no goroutine uses it.
        unsafe {
            if let Some(value) = value {
                *top = value;
            }
            *top
        }
    }

    #[test]
    fn carved_batches_are_guarded() {
        let arena = StackArena::new(MIN_STACK_SIZE);
        let mut stacks = Vec::new();
        arena.take_batch(&mut stacks, POOL_BATCH).unwrap();
        assert_eq!(stacks.len(), POOL_BATCH);
        for stack in &stacks {
            top_byte(stack, Some(1));
            assert!(
                crate::goroutine::stack_memory::tests::faults_on_write(stack.limit - page_size()),
                "no guard below the stack at {:#x}",
                stack.limit
            );
        }
    }

    #[test]
    fn trims_release_only_stacks_unused_for_a_whole_period() {
        let arena = StackArena::new(MIN_STACK_SIZE);
        let extra = 10;
        let stacks: Vec<_> = (0..WARM_STACKS + extra)
            .map(|_| arena.take().unwrap())
            .collect();
        for stack in &stacks {
            top_byte(stack, Some(7));
        }
        arena.give_back(stacks.into_iter());
        assert!(arena.has_surplus());
        // Handed back during this period: kept.
        assert_eq!(arena.trim(), 0);
        // Five taken again during the next period: only the other five of the surplus go.
        let mut taken = Vec::new();
        arena.take_batch(&mut taken, 5).unwrap();
        assert_eq!(taken.len(), 5);
        assert!(taken.iter().all(|s| top_byte(s, None) == 7));
        assert_eq!(arena.trim(), extra - 5);
        assert!(!arena.has_surplus());
        assert_eq!(arena.trim(), 0);
        // The released stacks come last, zero-filled; the kept ones still hold their bytes.
        let mut rest = Vec::new();
        while rest.len() < WARM_STACKS + extra - 5 {
            arena.take_batch(&mut rest, POOL_BATCH).unwrap();
        }
        let zeroed = rest.iter().filter(|s| top_byte(s, None) == 0).count();
        assert_eq!(zeroed, extra - 5);
    }
}
