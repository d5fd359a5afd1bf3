//! Stack overflow in a goroutine: a message that names the goroutine, then `abort`, instead of
//! a bare SIGSEGV.
//!
//! A goroutine's stack has a guard page just below its limit (see [`super::stack`]), so an
//! overflow faults there. The kernel cannot push a signal frame onto a stack that has no room
//! left, so a handler for that fault needs a stack of its own: every worker thread installs an
//! *alternate signal stack* ([`AltStack`], `sigaltstack(2)`) for its life, and the process gets
//! one SIGSEGV and SIGBUS handler ([`install_handler`], `SA_ONSTACK | SA_SIGINFO`), installed
//! once, when the first runtime starts, and kept for the life of the process.
//!
//! The handler must know which goroutine runs on the faulting thread, without locks or
//! `RefCell` borrows (the fault may strike in the middle of either). So each worker keeps a
//! plain record in a thread-local ([`RUNNING`]): the running goroutine's stack limit and id,
//! stored just before each resume and cleared just after ([`set_running`], [`clear_running`]:
//! plain stores, no atomics), and its runtime's stack size, stored once. A goroutine that `join`
//! runs inline runs on its joiner's stack, and the record rightly stays the joiner's.
//!
//! The rule (see [`is_overflow`]): a signal is the running goroutine's overflow when the kernel
//! raised it for a fault (`si_code > 0`: only then is `si_addr` the faulting address) and
//! `si_addr` lies in `[limit - page - BELOW_GUARD, limit)`: the guard page, or at most
//! [`BELOW_GUARD`] bytes below it. Rust code probes every page of a frame larger than a page,
//! so its overflow always faults in the guard page itself. Code built without stack probes (C
//! through FFI) can move the stack pointer past the guard in one step: below the guard of most
//! stacks lies the neighbouring stack, which is writable, so such a jump does not fault at all
//! and nothing can report it; below the lowest stack of a mapped region the memory is usually
//! not mapped, and the fault lands a little lower than the guard. `BELOW_GUARD` catches those.
//!
//! On a match the handler writes one line to stderr (formatted in a fixed buffer on the
//! signal stack; `write(2)` only: no allocation, no lock, no `std::io`) and calls `abort`, so
//! the process dies by SIGABRT. Otherwise it hands the signal to the handler that was installed
//! before (std's, on the threads std made, prints "thread '...' has overflowed its stack" for
//! an overflow of a thread's own stack); if that was `SIG_DFL` or `SIG_IGN`, it restores
//! `SIG_DFL` so that the fault, executed again when the handler returns, kills the process as
//! it would have without us.

use std::cell::Cell;
use std::io;
use std::ptr;
use std::sync::{Once, OnceLock};

use super::stack_memory::{map_stack_memory, page_size};

/// How far below a goroutine's guard page a fault still counts as its overflow: room for the
/// frames of code built without stack probes, which can jump over the guard page (module doc).
const BELOW_GUARD: usize = 64 * 1024;

/// Stack room the signal handler gets on a worker thread, on top of what the kernel needs for
/// the signal frame (`AT_MINSIGSTKSZ`). Ours needs a few hundred bytes; the rest is for a
/// handler we chain to.
const ALT_STACK_ROOM: usize = 64 * 1024;

/// The overflow record of the thread: which goroutine runs, where its stack ends. Written only
/// by the thread's worker, on its native stack; read by the signal handler on the same thread.
struct Running {
    /// Lowest usable address of the running goroutine's stack; 0 while none runs.
    limit: Cell<usize>,
    /// The running goroutine's id; meaningful while `limit` is not 0.
    id: Cell<u64>,
    /// Usable bytes of each stack of the worker's runtime; 0 on a thread that is no worker.
    size: Cell<usize>,
    /// Bytes below `limit` in which a fault counts as an overflow: the guard page plus
    /// [`BELOW_GUARD`].
    reach: Cell<usize>,
}

thread_local! {
    /// This thread's record. `const`-initialised and without a destructor, so reading it is a
    /// plain load, with no lazy initialisation and no registration: fine in a signal handler.
    static RUNNING: Running = const {
        Running {
            limit: Cell::new(0),
            id: Cell::new(0),
            size: Cell::new(0),
            reach: Cell::new(0),
        }
    };
}

/// Records the goroutine the worker is about to resume. The worker's hot path: two stores.
///
/// The stores precede the switch to the goroutine's stack in the program, and the switch is
/// an assembly call the compiler cannot see into, so they are done before any fault on that
/// stack can run the handler, on this same thread.
#[inline]
pub(crate) fn set_running(stack_limit: usize, id: u64) {
    RUNNING.with(|r| {
        r.limit.set(stack_limit);
        r.id.set(id);
    });
}

/// Records that no goroutine runs any more (the resume returned). One store.
#[inline]
pub(crate) fn clear_running() {
    RUNNING.with(|r| r.limit.set(0));
}

/// The lowest usable address of the goroutine running on this thread; 0 while none runs.
///
/// Also what `join` checks before it runs a goroutine on its joiner's stack. Not inlined, so
/// that no caller keeps the thread-local's address across a stack switch (see
/// `sched::context`).
#[inline(never)]
pub(crate) fn running_stack_limit() -> usize {
    RUNNING.with(|r| r.limit.get())
}

/// Whether a fault at `addr` is an overflow of a stack whose lowest usable address is `limit`:
/// `addr` lies in `[limit - reach, limit)`. Never true when `limit` is 0 (nothing runs).
fn is_overflow(addr: usize, limit: usize, reach: usize) -> bool {
    limit != 0 && addr < limit && addr >= limit.saturating_sub(reach)
}

/// The handlers that were installed before ours, read once before ours goes in.
static OLD_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static OLD_BUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Installs the process's SIGSEGV and SIGBUS handler, the first time only.
///
/// Each previous handler is saved before ours replaces it, so the handler never runs without
/// it. A handler installed later by someone else replaces ours; if it does not chain to ours,
/// goroutine overflows die as that handler decides.
pub(crate) fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for (signal, old) in [(libc::SIGSEGV, &OLD_SEGV), (libc::SIGBUS, &OLD_BUS)] {
            // SAFETY: sigaction is plain old data, for which all zeroes is a valid value.
            let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a valid signal number, no new action, and a valid pointer to store the
            // current one in.
            if unsafe { libc::sigaction(signal, ptr::null(), &mut previous) } != 0 {
                continue;
            }
            // Set before ours is installed: the handler finds it whenever it runs. (The
            // OnceLock's Release/Acquire pairs this write with the handler's `get`.)
            let _ = old.set(previous);
            // SAFETY: as above.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: the mask is a field of a local we own; sigemptyset only writes it. (It
            // is empty already after zeroing; this is the portable way to say so.)
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            // SAFETY: `on_fault` has the signature SA_SIGINFO requires, and stays valid for
            // the life of the process (it is a function of this binary).
            unsafe { libc::sigaction(signal, &action, ptr::null_mut()) };
        }
    });
}

/// The SIGSEGV and SIGBUS handler. Async-signal-safe: it reads the thread's record, may write
/// to stderr and abort, or calls the previous handler.
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t; `si_code` is always set.
    let code = unsafe { (*info).si_code };
    // Only a fault raised by the kernel (si_code > 0) has a faulting address in `si_addr`; a
    // signal sent by kill, raise or sigqueue (si_code <= 0) has the sender's pid there.
    let fault = code > 0;
    if fault {
        // SAFETY: as above; for a fault the union holds the sigfault member.
        let addr = unsafe { (*info).si_addr() } as usize;
        let (limit, id, size, reach) =
            RUNNING.with(|r| (r.limit.get(), r.id.get(), r.size.get(), r.reach.get()));
        if is_overflow(addr, limit, reach) {
            let mut message = Message::new();
            message.push(b"scheduler: goroutine ");
            message.push_u64(id);
            message.push(b" overflowed its stack (");
            message.push_u64(size as u64);
            message.push(b" bytes); raise it with Builder::stack_size\n");
            write_stderr(message.as_bytes());
            // SAFETY: abort is async-signal-safe; it ends the process by SIGABRT.
            unsafe { libc::abort() };
        }
    }
    // SAFETY: we are the handler of `signal`, called by the kernel with these arguments.
    unsafe { chain(signal, info, context, fault) };
}

/// Hands a signal that is not a goroutine's overflow to the handler installed before ours.
///
/// The old handler is called directly, on the stack and with the signal mask ours runs with:
/// of its action's flags only `SA_SIGINFO` (how to call it) is honoured; its `sa_mask`,
/// `SA_NODEFER` and `SA_RESETHAND` are not applied.
///
/// # Safety
/// Called from our handler of `signal`, with the arguments the kernel passed it.
unsafe fn chain(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    fault: bool,
) {
    let old = match signal {
        libc::SIGSEGV => OLD_SEGV.get(),
        libc::SIGBUS => OLD_BUS.get(),
        _ => None,
    };
    let Some(old) = old else {
        // Cannot happen (saved before we were installed); act as the default would.
        // SAFETY: as this function's contract.
        unsafe { act_as_default(signal, fault) };
        return;
    };
    match old.sa_sigaction {
        libc::SIG_IGN if !fault => {
            // A sent signal that was ignored before us stays ignored.
        }
        // SAFETY: as this function's contract.
        libc::SIG_DFL | libc::SIG_IGN => unsafe { act_as_default(signal, fault) },
        handler if old.sa_flags & libc::SA_SIGINFO != 0 => {
            type Action = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
            // SAFETY: whoever installed the old action with SA_SIGINFO set put a function of
            // this signature in the field; it is called with the kernel's own arguments.
            let handler: Action = unsafe { std::mem::transmute::<usize, Action>(handler) };
            handler(signal, info, context);
        }
        handler => {
            type Handler = extern "C" fn(libc::c_int);
            // SAFETY: without SA_SIGINFO, the field holds a plain `void (*)(int)` handler.
            let handler: Handler = unsafe { std::mem::transmute::<usize, Handler>(handler) };
            handler(signal);
        }
    }
}

/// Does what the default action would have done with `signal`: restores `SIG_DFL`, then lets
/// a fault execute again (it faults again and kills the process, with the faulting context in
/// any core dump), or sends a signal that was sent to us once more (it stays blocked while this
/// handler runs, and kills the process as soon as the handler returns).
///
/// # Safety
/// Called from our handler of `signal`.
unsafe fn act_as_default(signal: libc::c_int, fault: bool) {
    // SAFETY: plain old data; all zeroes is SIG_DFL with no flags and an empty mask.
    let action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: sigaction is async-signal-safe; a valid signal and action.
    unsafe { libc::sigaction(signal, &action, ptr::null_mut()) };
    if !fault {
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(signal) };
    }
}

/// Writes all of `bytes` to stderr with `write(2)`, retrying after interruptions; gives up
/// silently on any other error (there is no one left to tell).
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write is async-signal-safe; pointer and length describe `bytes`.
        let written =
            unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        if written > 0 {
            bytes = bytes.get(written as usize..).unwrap_or_default();
        } else if written < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            // `last_os_error` only reads errno: no allocation.
            continue;
        } else {
            return;
        }
    }
}

/// A line formatted without allocating: a fixed buffer that drops what does not fit.
struct Message {
    bytes: [u8; 192],
    len: usize,
}

impl Message {
    fn new() -> Message {
        Message {
            bytes: [0; 192],
            len: 0,
        }
    }

    fn push(&mut self, text: &[u8]) {
        for &byte in text {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            }
        }
    }

    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[start..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A worker thread's alternate signal stack, mapped by the thread that starts the worker (so
/// that failing to map it fails the runtime's start) and handed to the worker thread.
pub(crate) struct AltStack {
    /// The mapping: one guard page, then the stack.
    addr: usize,
    len: usize,
    page: usize,
}

// SAFETY: plain memory that no thread uses until `enter` installs it on the thread that owns
// the value.
unsafe impl Send for AltStack {}

impl AltStack {
    /// Maps a signal stack with a guard page below it (an overflow of the handler faults, and,
    /// with the signal blocked while its handler runs, kills the process).
    pub(crate) fn new() -> io::Result<AltStack> {
        let page = page_size();
        // SAFETY: getauxval has no preconditions; it returns 0 for an entry the kernel did not
        // provide.
        let kernel_min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
        let len = page + (ALT_STACK_ROOM + kernel_min.max(libc::SIGSTKSZ)).next_multiple_of(page);
        let addr = map_stack_memory(len)? as *mut libc::c_void;
        let stack = AltStack {
            addr: addr as usize,
            len,
            page,
        };
        // SAFETY: the lowest page of the mapping just made, which nothing uses.
        if unsafe { libc::mprotect(addr, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Installs this stack as the calling thread's signal stack and makes the thread's record
    /// ready for goroutines whose stacks hold `stack_size` usable bytes, until the returned
    /// guard is dropped. Call it on the worker thread, once, before it runs a goroutine.
    pub(crate) fn enter(self, stack_size: usize) -> SignalStackGuard {
        let new = libc::stack_t {
            ss_sp: (self.addr + self.page) as *mut libc::c_void,
            ss_flags: 0,
            ss_size: self.len - self.page,
        };
        // SAFETY: plain old data, overwritten by sigaltstack below.
        let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: `new` describes read-write memory owned by `self`, which the guard keeps
        // until it puts `old` back; the thread is not running on a signal stack now.
        let installed = unsafe { libc::sigaltstack(&new, &mut old) } == 0;
        RUNNING.with(|r| {
            r.size.set(stack_size);
            r.reach.set(self.page + BELOW_GUARD);
            r.limit.set(0);
        });
        SignalStackGuard {
            _stack: self,
            old: installed.then_some(old),
        }
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no thread has it as its signal stack any more:
        // `SignalStackGuard` put the previous one back first.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Keeps a worker thread's signal stack installed; on drop, puts back the one the thread had
/// before (std gives its threads one) and only then frees ours.
pub(crate) struct SignalStackGuard {
    _stack: AltStack,
    /// The thread's previous signal stack; `None` if ours could not be installed.
    old: Option<libc::stack_t>,
}

impl Drop for SignalStackGuard {
    fn drop(&mut self) {
        RUNNING.with(|r| {
            r.limit.set(0);
            r.size.set(0);
            r.reach.set(0);
        });
        if let Some(old) = &self.old {
            // SAFETY: puts back what sigaltstack reported for this thread (a stack still owned
            // by whoever installed it, or SS_DISABLE); we do not run on ours now.
            unsafe { libc::sigaltstack(old, ptr::null_mut()) };
        }
        // `_stack` is dropped (unmapped) after this.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_window_is_guard_page_and_below() {
        let page = 4096;
        let reach = page + BELOW_GUARD;
        let limit = 0x10_0000;
        assert!(is_overflow(limit - 1, limit, reach));
        assert!(is_overflow(limit - page, limit, reach));
        assert!(is_overflow(limit - reach, limit, reach));
        assert!(!is_overflow(limit - reach - 1, limit, reach));
        assert!(!is_overflow(limit, limit, reach));
        assert!(!is_overflow(limit + 8, limit, reach));
        // No goroutine runs: nothing is an overflow, not even address 0.
        assert!(!is_overflow(0, 0, reach));
        assert!(!is_overflow(usize::MAX, 0, reach));
        // A limit lower than the reach does not wrap around.
        assert!(is_overflow(0, 100, reach));
    }

    #[test]
    fn message_formats_numbers_without_allocating() {
        let mut message = Message::new();
        message.push(b"goroutine ");
        message.push_u64(0);
        message.push(b" ");
        message.push_u64(65536);
        message.push(b" ");
        message.push_u64(u64::MAX);
        assert_eq!(
            message.as_bytes(),
            b"goroutine 0 65536 18446744073709551615"
        );
    }

    #[test]
    fn message_drops_what_does_not_fit() {
        let mut message = Message::new();
        for _ in 0..100 {
            message.push(b"abc");
        }
        assert_eq!(message.as_bytes().len(), 192);
    }

    #[test]
    fn signal_stack_is_installed_and_restored() {
        std::thread::spawn(|| {
            let current = || {
                // SAFETY: plain old data, written by sigaltstack.
                let mut now: libc::stack_t = unsafe { std::mem::zeroed() };
                // SAFETY: only queries the calling thread's signal stack.
                unsafe { libc::sigaltstack(ptr::null(), &mut now) };
                (now.ss_sp as usize, now.ss_flags & libc::SS_DISABLE)
            };
            let before = current();
            let stack = AltStack::new().unwrap();
            let ours = stack.addr + stack.page;
            let guard = stack.enter(65536);
            assert_eq!(current(), (ours, 0));
            assert_eq!(RUNNING.with(|r| r.size.get()), 65536);
            drop(guard);
            assert_eq!(current(), before);
            assert_eq!(RUNNING.with(|r| r.size.get()), 0);
        })
        .join()
        .unwrap();
    }
}
