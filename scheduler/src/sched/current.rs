//! What the current thread is: a worker of some runtime (and which), running a goroutine or
//! not. This is the only thread-local state of the scheduler.
//!
//! A started goroutine never leaves its worker thread, so a pointer read here stays valid for
//! the goroutine across its suspensions. The thread-local is read out of line all the same
//! (`worker_ptr`), so that no caller caches its address across a stack switch
//! (llvm-project#98479), and the worker is handed out only for the length of a closure
//! ([`with_worker`], [`with_shared`]).

use std::cell::{Cell, UnsafeCell};
use std::panic;
use std::sync::Arc;

use super::shared::Shared;
use super::worker::WorkerLocal;
use crate::goroutine::locals::Locals;
use crate::goroutine::task::{Handover, Header, Suspend, TaskRef};
use crate::wait::lock::RawLock;
use crate::wait::{BlockKind, Site};

thread_local! {
    /// The worker running on this thread, if it is one; set for the worker's whole life.
    static WORKER: Cell<*const WorkerLocal> = const { Cell::new(std::ptr::null()) };
}

/// Marks the current thread as running `worker` until the returned guard is dropped.
pub(crate) fn enter(worker: &WorkerLocal) -> EnterGuard<'_> {
    WORKER.with(|w| {
        assert!(w.get().is_null(), "scheduler: a thread runs one worker");
        w.set(worker);
    });
    EnterGuard { _worker: worker }
}

/// Clears the current worker on drop.
pub(crate) struct EnterGuard<'a> {
    _worker: &'a WorkerLocal,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(std::ptr::null()));
    }
}

/// The worker running on this thread, as a pointer (null outside a worker).
///
/// Out of line, so that no caller caches the thread-local's address across a stack switch
/// (llvm-project#98479).
#[inline(never)]
fn worker_ptr() -> *const WorkerLocal {
    WORKER.with(|w| w.get())
}

/// Runs `f` with the worker running on this thread (`None` outside a worker).
///
/// The reference lives for the call only (`f` is generic over its lifetime), so no caller can
/// keep it past the worker's life. A goroutine may suspend inside `f`: it resumes on the
/// same thread, whose worker outlives every goroutine it started.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerLocal>) -> R) -> R {
    let ptr = worker_ptr();
    // SAFETY: the pointer is set by `enter` and cleared by its guard before the WorkerLocal is
    // dropped; everything that runs on this thread in between (the worker loop and the
    // goroutines it resumes, which never change thread) runs inside that span, and the
    // reference handed to `f` cannot outlive the call.
    f(unsafe { ptr.as_ref() })
}

/// Whether this thread is a worker of some runtime.
pub(crate) fn on_worker() -> bool {
    !worker_ptr().is_null()
}

/// The goroutine running on this thread, if any.
pub(crate) fn current_task() -> Option<TaskRef> {
    with_worker(|w| w.and_then(|w| w.current_task()))
}

/// Whether the monitor asked the running goroutine to yield (false outside a goroutine).
pub(crate) fn preemption_requested() -> bool {
    // Outside a goroutine the worker's epoch is that of its last resume, or of a park: a
    // request for it makes `yield_current` find no goroutine, so no check is needed here.
    with_worker(|w| w.is_some_and(|w| w.preemption_requested()))
}

/// Whether the caller may suspend its goroutine: it runs inside one, and that goroutine is not
/// unwinding a panic.
///
/// std keeps the "panicking" count per OS thread. A goroutine suspended in the middle of an
/// unwind (a destructor that blocks) would leave that count raised for every other goroutine
/// of its worker: their `std::thread::panicking()` would be true, their std mutex guards would
/// poison, and a panic in any of them would abort as a panic during a panic. So a goroutine
/// that is unwinding never suspends: its waits block the worker thread instead.
pub(crate) fn can_suspend() -> bool {
    in_goroutine() && !std::thread::panicking()
}

/// Whether the calling code runs inside a goroutine.
pub(crate) fn in_goroutine() -> bool {
    with_worker(|w| w.is_some_and(|w| w.current_header().is_some()))
}

/// Whether the caller may run a not-yet-started goroutine of the runtime `shared` on its own
/// stack, as `join` does: it is a goroutine of that runtime (so the runtime's calls work in
/// the joined closure), it is not unwinding, and at least half of its stack is still free.
pub(crate) fn can_run_inline(shared: *const ()) -> bool {
    with_worker(|worker| {
        let Some(worker) = worker else {
            return false;
        };
        if !std::ptr::eq(Arc::as_ptr(worker.shared()).cast(), shared) || std::thread::panicking() {
            return false;
        }
        let limit = crate::goroutine::overflow::running_stack_limit();
        if limit == 0 {
            return false;
        }
        // The address of a local is (close to) the current stack pointer.
        let here = &limit as *const usize as usize;
        here.saturating_sub(limit) >= worker.shared().stack_size / 2
    })
}

/// Suspends the running goroutine until something calls [`super::unpark`] on it; it counts as
/// blocked on `kind` meanwhile, and the goroutine dump shows it waiting at `site` (the user's
/// line, which the public blocking call took with `#[track_caller]` and handed down). May
/// return spuriously: callers re-check their condition. Must be called inside a goroutine.
///
/// Does not unwind a cancelled goroutine: the caller looks at the goroutine's
/// [`Header::is_cancelled`] (before it parks and after each return), ends its wait if nobody
/// granted it anything yet, and only then unwinds with [`unwind_cancelled`]. A wait that was
/// granted (a lock handed over, a permit, a value) completes normally, and the goroutine
/// unwinds at its next suspension point instead: cancellation is sticky.
pub(crate) fn park_current(kind: BlockKind, site: Site) {
    // SAFETY: the header belongs to the goroutine running right here, whose TaskRef the worker
    // holds for the whole resume.
    let header = unsafe { &*running_header() };
    header.set_parked_as(kind, site);
    // SAFETY: the header belongs to the goroutine running right here, whose TaskRef the worker
    // holds for the whole resume; it started, so its yielder is set, and we are on its home
    // thread: the running goroutine suspends itself through its own yielder.
    unsafe { header.yielder() }.suspend(Suspend::Park);
}

/// Starts the unwind of a cancelled goroutine. Its caller has ended every wait of its own.
///
/// A goroutine suspends only when it is not unwinding ([`can_suspend`]), so when called from
/// a wait this starts the goroutine's one and only unwind. `resume_unwind` skips the panic
/// hook: nothing is printed.
pub(crate) fn unwind_cancelled() -> ! {
    if cfg!(panic = "abort") {
        // Unreachable in practice: a runtime built with panic = "abort" refuses to cancel
        // started goroutines (`WorkerLocal::cancel_started`) and never sets the flag.
        eprintln!("scheduler: cannot unwind a cancelled goroutine under panic = \"abort\"");
        std::process::abort();
    }
    panic::resume_unwind(Box::new(crate::wait::Cancelled))
}

/// Suspends the running goroutine like [`park_current`], with `lock` held: its worker puts
/// its reference to the goroutine in `keeper`, then releases the lock once the goroutine is
/// parked, so whoever takes the lock next and finds the goroutine waiting can wake it at once
/// (with the reference from `keeper`). It waits at `site` as with `park_current`, and as
/// there a cancelled goroutine does not unwind here: its worker does not park it (it comes
/// back at once), and the caller withdraws its wait, then calls [`continue_cancellation`].
/// Must be called inside a goroutine that may suspend, with `lock` locked and `keeper` empty.
pub(crate) fn park_current_unlocking(
    lock: &RawLock,
    keeper: &UnsafeCell<Option<TaskRef>>,
    kind: BlockKind,
    site: Site,
) {
    // SAFETY: as in `park_current`.
    let header = unsafe { &*running_header() };
    header.set_parked_as(kind, site);
    let handover = Handover { lock, keeper };
    // SAFETY: as in `park_current`: the running goroutine suspends itself through its own
    // yielder. The lock and the keeper outlive the suspension: the caller borrows them for
    // this whole call, and the worker is done with both before anything can resume us.
    unsafe { header.yielder() }.suspend(Suspend::ParkUnlocking(handover));
}

/// Suspends the running goroutine behind the others that are ready on its worker.
/// Returns false (and does nothing) outside a goroutine, or when it may not suspend
/// ([`can_suspend`]).
// Into both callers: `yield_now` is the hot one (a yield costs about 300 instructions, and a
// call here would add ten); `checkpoint` calls it only on its cold path.
#[inline(always)]
pub(crate) fn yield_current() -> bool {
    let Some(header) = running_header_or_null() else {
        return false;
    };
    if std::thread::panicking() {
        return false;
    }
    // SAFETY: the header belongs to the goroutine running right here, whose TaskRef the worker
    // holds for the whole resume; it started, so its yielder is set, and we are on its home
    // thread.
    let header = unsafe { &*header };
    // SAFETY: as above: the running goroutine suspends itself through its own yielder.
    unsafe { header.yielder() }.suspend(Suspend::Yield);
    unwind_if_cancelled(header);
    true
}

/// The header of the goroutine running on this thread.
pub(crate) fn running_header() -> *const Header {
    running_header_or_null().expect("scheduler: internal error: suspend outside a goroutine")
}

/// The goroutine-local values of the code running here: the running goroutine's, or, while a
/// `join` of it runs another goroutine inline, that one's ([`Locals::run_inline`]). `None`
/// outside a goroutine.
///
/// The pointer is valid while the calling code runs (it points into the header of the
/// goroutine whose stack this is, which outlives every frame on it), and the slot may be
/// touched on this thread only.
#[inline]
pub(crate) fn running_locals() -> Option<*const Locals> {
    // SAFETY: the header of the goroutine running right here, whose TaskRef the worker holds
    // for the whole resume; the place is only projected, not read.
    running_header_or_null().map(|header| unsafe { &raw const (*header).locals })
}

/// The header of the goroutine running on this thread, if one runs.
#[inline(always)]
fn running_header_or_null() -> Option<*const Header> {
    with_worker(|w| w.and_then(|w| w.current_header()))
}

/// Starts the unwind of a goroutine that a forced shutdown cancelled, at one of its
/// suspension points.
fn unwind_if_cancelled(header: &Header) {
    if header.is_cancelled() {
        unwind_cancelled();
    }
}

/// After a goroutine ran inline on the caller's stack: if the caller was cancelled while in
/// it, the cancellation's unwind stopped at the inline goroutine's `catch_unwind`, which
/// recorded it as that goroutine's result. It belongs to the caller: start it again here.
pub(crate) fn continue_cancellation() {
    if let Some(header) = running_header_or_null() {
        // SAFETY: the header of the goroutine running right here.
        unwind_if_cancelled(unsafe { &*header });
    }
}

/// Runs `f` with the runtime whose goroutine is calling, for the free functions that need
/// one. As with [`with_worker`], the reference lives for the call only.
///
/// # Panics
///
/// Outside a goroutine, with a message naming `what`, at the caller's line
/// (`#[track_caller]`).
#[track_caller]
pub(crate) fn with_shared<R>(what: &str, f: impl FnOnce(&Arc<Shared>) -> R) -> R {
    // The panic is raised here, not in a closure, so that it reports the caller's line.
    match with_worker(|worker| worker.map(|worker| f(worker.shared()))) {
        Some(result) => result,
        None => panic!(
            "scheduler: {what} called outside a runtime; call it inside a goroutine, \
             or use Runtime::spawn / Runtime::block_on"
        ),
    }
}
