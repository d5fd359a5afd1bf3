//! The census of the process's threads that deadlock detection needs: which threads could
//! still wake a goroutine, and which cannot.
//!
//! `block_on` reports a deadlock only when nothing can ever wake the runtime's goroutines
//! again (`crate::sched::deadlock`). Goroutines, timers and pollers are the scheduler's to
//! judge; this module judges the other threads of the process. A thread can wake a goroutine
//! only through one of this crate's values (a `Sender`, a `WaitGroup`, a `Context`, a
//! `Runtime`...), so what matters is which threads may hold one. Each thread of the process is
//! one of:
//!
//! * **a thread of the crate** ([`CrateThread`]): a runtime's worker, spare, monitor or
//!   blocking-pool thread (its owner is that runtime, judged by the scheduler), or one of the
//!   process-wide service threads (timers, I/O, the dump on `SIGQUIT`: owner 0, which run no
//!   user code);
//! * **waiting**: a plain thread blocked in one of the crate's waits with no deadline (a
//!   `recv`, a `join`, `block_on` itself...). It only goes on when something wakes it, and
//!   every such wake is counted ([`note_wake`]);
//! * **a bystander**: a thread that never used the crate, and was created by a thread that
//!   had not used it either (transitively). It holds none of the crate's values: they are
//!   made by a thread that uses the crate, and reach another thread by a move into its
//!   closure when it is created, which only a user can do, or by one of the crate's channels,
//!   which makes the receiver a user;
//! * **a user**: any other thread. It may hold a value of the crate and use it later.
//!
//! # How a user is recognised: the marker signal
//!
//! Linux copies a thread's signal mask to every thread it creates, and shows each thread's
//! mask in `/proc/self/task/<tid>/status`. So a thread that uses the crate blocks one
//! real-time signal, [`marker_signal`], once ([`note_use`]), and every thread it creates from
//! then on is born blocking it too: the mark follows the lineage of threads that could have
//! been handed a value. The worker threads carry the mark, so threads that goroutines create
//! are users as well. Nothing else changes: the signal is one the crate never sends, a
//! process-directed signal goes to a thread that does not block it, and `std::process`
//! clears the mask of the processes it starts.
//!
//! # What counts as using the crate
//!
//! Calling a `Runtime`'s `block_on` or `spawn`, creating a channel, a `WaitGroup` or a
//! `Context`, or waiting in one of the crate's primitives on a plain thread. Not building a
//! `Runtime`: a thread spawned after `Runtime::new` by a thread that holds nothing else of
//! the crate holds nothing of it either.
//!
//! # What it cannot see
//!
//! A bystander that is handed a value through memory shared by other means (a `std` channel,
//! a global) and uses it later without first waiting in the crate, and a bystander holding a
//! `static` `scheduler::sync::Mutex` taken without contention. Both need a thread that
//! predates every use of the crate by its creator; such a program is declared deadlocked too
//! early. docs/caveats.md says so.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// A kernel thread id.
pub(crate) type Tid = i32;

/// The owner id of the process-wide service threads.
pub(crate) const SERVICE_THREADS: usize = 0;

/// What the census knows of the threads that asked to be known.
struct Known {
    /// Threads of the crate, with their owner (a runtime's id, or [`SERVICE_THREADS`]).
    crate_threads: Vec<(Tid, usize)>,
    /// Plain threads in a wait with no deadline, each with how many such waits it is in.
    waiting: Vec<(Tid, usize)>,
}

static KNOWN: Mutex<Known> = Mutex::new(Known {
    crate_threads: Vec::new(),
    waiting: Vec::new(),
});

/// Changed whenever a thread that the census may have judged unable to act could start to:
/// a waiting plain thread is woken, a thread starts using the crate.
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread carries the marker already.
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

/// The real-time signal whose blocking marks a thread that uses the crate (module doc).
pub(crate) fn marker_signal() -> libc::c_int {
    // Three below the last: glibc keeps the first real-time signals for itself, and tools
    // that borrow one usually take the first free or the very last.
    libc::SIGRTMAX() - 3
}

/// Records that the calling thread uses the crate: it, and every thread it creates from now
/// on, may hold the crate's values. A thread-local check once it is done.
#[inline]
pub(crate) fn note_use() {
    if !MARKED.with(Cell::get) {
        mark_this_thread();
    }
}

#[cold]
fn mark_this_thread() {
    MARKED.with(|m| m.set(true));
    mask_marker(libc::SIG_BLOCK);
    // SeqCst: the checker reads the epoch before and after its look (`Look::epoch`).
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// Blocks (`SIG_BLOCK`) or unblocks (`SIG_UNBLOCK`) the marker signal for the calling thread.
/// (Not under Miri, which runs the wait kernel's tests on plain threads and has no signal
/// masks; the census is not needed there.)
#[cfg_attr(miri, allow(unused_variables))]
fn mask_marker(how: libc::c_int) {
    #[cfg(not(miri))]
    // SAFETY: `set` is a valid, initialised signal set for the duration of the calls, and
    // `pthread_sigmask` with a null old-set pointer only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, marker_signal());
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Counts the wake of a plain thread that waits in the crate: called by the waker before it
/// wakes the thread.
#[inline]
pub(crate) fn note_wake() {
    // SeqCst: as in `mark_this_thread`.
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// The census's change count: a look is valid if it did not change meanwhile.
pub(crate) fn epoch() -> u64 {
    // SeqCst: see `mark_this_thread`.
    EPOCH.load(Ordering::SeqCst)
}

/// The calling thread's kernel thread id (0 under Miri: see `mask_marker`), asked of the
/// kernel once per thread: a plain thread registers itself at every wait with no deadline.
pub(crate) fn gettid() -> Tid {
    thread_local! {
        static TID: Cell<Tid> = const { Cell::new(0) };
    }
    TID.with(|tid| {
        if tid.get() == 0 {
            tid.set(ask_tid());
        }
        tid.get()
    })
}

fn ask_tid() -> Tid {
    #[cfg(miri)]
    return 0;
    // SAFETY: `gettid` has no preconditions.
    #[cfg(not(miri))]
    unsafe {
        libc::gettid()
    }
}

/// Registers the calling thread as a thread of the crate owned by `owner` (a runtime's id, or
/// [`SERVICE_THREADS`]) until the guard drops. It is marked as a user too, so that threads
/// created by the code it runs (goroutines, blocking jobs) are.
pub(crate) fn crate_thread(owner: usize) -> CrateThread {
    note_use();
    let tid = gettid();
    KNOWN.lock().crate_threads.push((tid, owner));
    CrateThread { tid }
}

/// A thread of the crate, known as such while this lives ([`crate_thread`]).
pub(crate) struct CrateThread {
    tid: Tid,
}

impl Drop for CrateThread {
    fn drop(&mut self) {
        forget(&mut KNOWN.lock().crate_threads, self.tid, |_| true);
    }
}

/// Removes `tid`'s entry from `list` if `remove` says so, given a mutable reference to the
/// entry's value (which it may change instead).
fn forget(list: &mut Vec<(Tid, usize)>, tid: Tid, remove: impl FnOnce(&mut usize) -> bool) {
    if let Some(at) = list.iter().position(|&(t, _)| t == tid)
        && remove(&mut list[at].1)
    {
        list.swap_remove(at);
    }
}

/// Marks the calling plain thread as waiting in the crate with no deadline until the guard
/// drops. The waker counts the wake first ([`note_wake`]), so a check that saw the thread
/// waiting and finished before the wake is right, and one that overlaps it is void.
pub(crate) fn waiting() -> Waiting {
    note_use();
    let tid = gettid();
    let mut known = KNOWN.lock();
    match known.waiting.iter_mut().find(|(t, _)| *t == tid) {
        Some((_, depth)) => *depth += 1,
        None => known.waiting.push((tid, 1)),
    }
    Waiting { tid }
}

/// A plain thread's wait with no deadline ([`waiting`]).
pub(crate) struct Waiting {
    tid: Tid,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        forget(&mut KNOWN.lock().waiting, self.tid, |depth| {
            *depth -= 1;
            *depth == 0
        });
    }
}

/// What the census makes of one thread (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThreadClass {
    /// A thread of the crate, with its owner.
    Crate(usize),
    /// A plain thread waiting in the crate with no deadline.
    Waiting,
    /// A thread that never used the crate, nor did any of its creators.
    Bystander,
    /// A thread that may hold a value of the crate and use it.
    User,
}

/// Every thread of the process with its class, or `None` if the system does not tell
/// (no `/proc`).
pub(crate) fn look() -> Option<Vec<(Tid, ThreadClass)>> {
    let tids: Vec<Tid> = std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let known = KNOWN.lock();
    let classes = tids
        .into_iter()
        .map(|tid| {
            let class =
                if let Some(&(_, owner)) = known.crate_threads.iter().find(|&&(t, _)| t == tid) {
                    ThreadClass::Crate(owner)
                } else if known.waiting.iter().any(|&(t, _)| t == tid) {
                    ThreadClass::Waiting
                } else if is_marked(tid) == Some(false) {
                    ThreadClass::Bystander
                } else {
                    // Marked, or exited meanwhile (judged as a user: the look is then stale, and
                    // the caller looks again later).
                    ThreadClass::User
                };
            (tid, class)
        })
        .collect();
    Some(classes)
}

/// Whether thread `tid` of this process blocks the marker signal; `None` if its status
/// cannot be read (it exited).
fn is_marked(tid: Tid) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))?
        .trim();
    let mask = u64::from_str_radix(mask, 16).ok()?;
    Some(mask & (1 << (marker_signal() - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clears the calling thread's mark: the test harness's thread may carry one (with
    /// `--test-threads=1` every test runs on the main thread, which earlier tests marked).
    fn unmark_this_thread() {
        MARKED.with(|m| m.set(false));
        mask_marker(libc::SIG_UNBLOCK);
    }

    #[test]
    fn a_user_marks_the_threads_it_creates_and_only_those() {
        // A thread that has not used the crate creates a bystander...
        let (class_before, class_after) = std::thread::spawn(|| {
            unmark_this_thread();
            let bystander = std::thread::spawn(|| {
                let tid = gettid();
                let classes = look().expect("/proc is mounted");
                classes.into_iter().find(|&(t, _)| t == tid).map(|(_, c)| c)
            })
            .join()
            .unwrap();
            // ...then uses it, and creates a user.
            note_use();
            let user = std::thread::spawn(|| {
                let tid = gettid();
                let classes = look().expect("/proc is mounted");
                classes.into_iter().find(|&(t, _)| t == tid).map(|(_, c)| c)
            })
            .join()
            .unwrap();
            (bystander, user)
        })
        .join()
        .unwrap();
        assert_eq!(class_before, Some(ThreadClass::Bystander));
        assert_eq!(class_after, Some(ThreadClass::User));
    }

    #[test]
    fn crate_threads_and_waiting_threads_are_known_while_their_guards_live() {
        let tid = gettid();
        let class = || {
            look()
                .unwrap()
                .into_iter()
                .find(|&(t, _)| t == tid)
                .map(|(_, c)| c)
        };
        {
            let _waiting = waiting();
            assert_eq!(class(), Some(ThreadClass::Waiting));
            let _nested = waiting();
            assert_eq!(class(), Some(ThreadClass::Waiting));
        }
        // It used the crate by waiting in it.
        assert_eq!(class(), Some(ThreadClass::User));
        let guard = crate_thread(42);
        assert_eq!(class(), Some(ThreadClass::Crate(42)));
        drop(guard);
        assert_eq!(class(), Some(ThreadClass::User));
    }
}
