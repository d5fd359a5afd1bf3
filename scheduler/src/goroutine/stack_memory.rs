//! The system calls behind goroutine stacks: mapping stack memory, guard pages, and giving
//! the memory of unused stacks back to the kernel, each batched where the kernel allows.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};

/// `madvise` advice that installs guard markers (Linux 6.13+; not yet in every libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The pidfd that names the calling process in `process_madvise` (Linux 6.14+).
const PIDFD_SELF_THREAD_GROUP: libc::c_int = -10001;

/// Most ranges one `process_madvise` call takes (the kernel's `UIO_MAXIOV`).
const MAX_RANGES_PER_CALL: usize = 1024;

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

/// Whether `process_madvise` on this process works for guard markers: unknown until tried,
/// then yes or no for good. Relaxed: a hint, like `GUARD_MODE`; a stale read costs one more
/// try.
static BATCHED_ADVICE: AtomicU8 = AtomicU8::new(BATCH_UNKNOWN);
const BATCH_UNKNOWN: u8 = 0;
const BATCH_YES: u8 = 1;
const BATCH_NO: u8 = 2;

/// Makes `[addr, addr + page)` inaccessible.
///
/// # Safety
/// The page lies inside a mapping owned by the caller, and nothing uses it.
pub(crate) unsafe fn install_guard(addr: usize, page: usize) -> io::Result<()> {
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

/// Makes the page at each of `addrs` inaccessible, with one system call per
/// [`MAX_RANGES_PER_CALL`] pages where the kernel takes guard markers through
/// `process_madvise` (Linux 6.14+), else one per page. A fresh stack's guard is most of the
/// cost of carving it that is not the kernel's page-table work: a system call in a VM costs
/// about as much as the marker itself.
///
/// # Safety
/// Every page lies inside a mapping owned by the caller, and nothing uses any of them.
pub(crate) unsafe fn install_guards(addrs: &[usize], page: usize) -> io::Result<()> {
    let mut rest = addrs;
    if GUARD_MODE.load(Ordering::Relaxed) == GUARD_MADVISE
        && BATCHED_ADVICE.load(Ordering::Relaxed) != BATCH_NO
    {
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(rest.len().min(MAX_RANGES_PER_CALL));
            let ranges: Vec<libc::iovec> = batch
                .iter()
                .map(|&addr| libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: page,
                })
                .collect();
            // SAFETY: `ranges` describes pages of the caller's mappings that nothing uses
            // (contract); the call reads the array, which lives across it, and advises only
            // those pages.
            let done = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    PIDFD_SELF_THREAD_GROUP,
                    ranges.as_ptr(),
                    ranges.len(),
                    MADV_GUARD_INSTALL,
                    0,
                )
            };
            if done != (batch.len() * page) as libc::c_long {
                // Not supported here (an older kernel, a seccomp filter), or stopped part way:
                // the pages not done, and every later batch, go one call each. Installing a
                // marker twice is harmless.
                BATCHED_ADVICE.store(BATCH_NO, Ordering::Relaxed);
                break;
            }
            BATCHED_ADVICE.store(BATCH_YES, Ordering::Relaxed);
            rest = after;
        }
    }
    for &addr in rest {
        // SAFETY: the caller's contract, page by page.
        unsafe { install_guard(addr, page)? };
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

/// Gives the memory of the ranges `[start, end)` back to the kernel, which zero-fills their
/// pages when they are next touched. Sorts `ranges` and releases ranges that are one guard
/// page apart in one call, guard included: `MADV_DONTNEED` leaves guard markers in place.
/// Under the mprotect fallback each range goes alone, since its guard is a mapping of its own.
///
/// # Safety
/// Every range is read-write memory of the caller's private anonymous mappings that nothing
/// uses, and the page between two ranges that lie one page apart is a guard page.
pub(crate) unsafe fn release_memory(ranges: &mut [(usize, usize)], page: usize) {
    ranges.sort_unstable();
    let merge = !guards_split_mappings();
    let mut iter = ranges.iter().copied();
    let Some(mut run) = iter.next() else {
        return;
    };
    for (start, end) in iter.chain(std::iter::once((usize::MAX, usize::MAX))) {
        if merge && start == run.1 + page {
            run.1 = end;
            continue;
        }
        // SAFETY: the run is made of ranges the caller gave up (contract) and of the guard
        // pages between them, which hold no data; MADV_DONTNEED on private anonymous memory
        // only zero-fills it, and keeps guard markers.
        unsafe {
            libc::madvise(
                run.0 as *mut libc::c_void,
                run.1 - run.0,
                libc::MADV_DONTNEED,
            );
        }
        run = (start, end);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether writing to `addr` kills a process with SIGSEGV: tried in a child process, which
    /// does nothing else before it exits.
    pub(crate) fn faults_on_write(addr: usize) -> bool {
        // SAFETY: the child only makes async-signal-safe calls and one write, then exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: in the child: the default action for SIGSEGV (not the overflow handler
            // other tests may have installed) and no core file; then a write to a guard page
            // faults, else the byte is the mapping's.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                ptr::write_volatile(addr as *mut u8, 1);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV
    }

    /// Slots of one usable page each, below each a guard page.
    fn guarded_slots(slots: usize) -> (usize, usize) {
        let page = page_size();
        let base = map_stack_memory(slots * 2 * page).unwrap();
        let guards: Vec<usize> = (0..slots).map(|i| base + i * 2 * page).collect();
        // SAFETY: the pages are the lowest of each slot of the mapping just made.
        unsafe { install_guards(&guards, page).unwrap() };
        (base, page)
    }

    #[test]
    fn released_memory_reads_as_zero_and_guards_stay() {
        let slots = 4;
        let (base, page) = guarded_slots(slots);
        let mut ranges: Vec<(usize, usize)> = (0..slots)
            .rev()
            .map(|i| (base + (2 * i + 1) * page, base + (2 * i + 2) * page))
            .collect();
        for &(start, _) in &ranges {
            // SAFETY: the page is read-write memory of the mapping.
            unsafe { *(start as *mut u8) = 7 };
        }
        // SAFETY: nothing uses the pages any more; the pages between the ranges are guards.
        unsafe { release_memory(&mut ranges, page) };
        for &(start, _) in &ranges {
            // SAFETY: as above; released pages read as zero.
            assert_eq!(unsafe { *(start as *const u8) }, 0);
        }
        for i in 0..slots {
            assert!(faults_on_write(base + 2 * i * page), "guard {i} lost");
        }
        // SAFETY: the mapping made above, used by nothing else.
        unsafe { libc::munmap(base as *mut libc::c_void, slots * 2 * page) };
    }
}
