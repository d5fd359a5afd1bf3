//! Goroutines that borrow from their spawner's stack: the machinery under `scheduler::scope`
//! and a `Runtime::block_on` whose closure is not `'static`.
//!
//! # Why borrowing is sound
//!
//! A goroutine that borrows runs a closure whose lifetime the type system cannot see past its
//! spawn: [`erase`] boxes it with its real lifetime and hands the scheduler the same box
//! typed `'static`. That is sound only if the closure, and everything it captured, is gone
//! (run to the end, or dropped unstarted) before the borrowed data can go. The owner of the
//! borrows (the goroutine or thread that called `scope` or `block_on`) therefore waits for a
//! [`Tally`] of its children to reach zero before it returns or unwinds out of the frame
//! that holds the data, and a child counts itself out only after its closure's environment
//! is dropped ([`Erased`]'s drop).
//!
//! The owner cannot leave early, whatever happens to it:
//! * its own closure panics, or is cancelled (unwinds with `Cancelled`): `scope` runs it under
//!   `catch_unwind`, so the unwind stops before the frame with the borrowed data, and the owner
//!   waits there, not unwinding, then resumes the unwind;
//! * it is cancelled while it waits: the wait ([`Tally::wait_all`]) ignores cancellation (it
//!   parks the goroutine without the wait kernel's cancellation check), and the children,
//!   cancelled by the same forced shutdown or by the owner (`scope` cancels them when its
//!   closure was cancelled), end;
//! * it is a plain thread: nothing interrupts a thread's wait.
//!
//! A child that never ends keeps its owner waiting: the price of the borrow, as with
//! `std::thread::scope`. Forgetting a handle changes nothing: the owner waits on the tally,
//! not on handles.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use parking_lot::Mutex;

use super::current;
use super::wait::WaitHere;
use crate::goroutine::task::TaskRef;
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

/// The children of one owner (module doc): how many are unfinished, the first panic nobody
/// took, and the owner's waiter.
#[derive(Default)]
pub(crate) struct Tally {
    /// Children whose closure environment is not dropped yet.
    running: AtomicUsize,
    /// The first panic (or cancellation) payload of a child whose result nobody took.
    unclaimed_panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The owner, while it waits for `running` to reach zero.
    owner: Mutex<Option<Arc<Waiter>>>,
    /// The children, to cancel them.
    children: Mutex<Vec<TaskRef>>,
}

impl Tally {
    /// A child is about to be spawned.
    pub(crate) fn add(&self) {
        // Relaxed: the owner reads the count only after the child's decrement, which is AcqRel.
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a spawned child, so that [`cancel_all`](Self::cancel_all) reaches it.
    pub(crate) fn track(&self, child: TaskRef) {
        self.children.lock().push(child);
    }

    /// A child's closure environment is gone: wakes the owner if it was the last.
    fn done(&self) {
        // AcqRel: Release publishes the child's writes (its result) to the owner, which reads
        // the count with Acquire; Acquire orders the take of the owner's waiter after it.
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(owner) = self.owner.lock().take()
        {
            owner.notify(0);
        }
    }

    /// Cancels every child (`JoinHandle::cancel`'s way): for an owner that is itself cancelled.
    pub(crate) fn cancel_all(&self) {
        for child in self.children.lock().iter() {
            child.header().set_cancelled();
            super::wake::unpark(child);
        }
    }

    /// Waits until every child's closure is gone, parking the calling goroutine (or blocking
    /// the calling thread), and not cancellably: see the module doc. A goroutine cancelled
    /// while it waits cancels the children instead; its caller unwinds once they ended.
    pub(crate) fn wait_all(&self, site: Site) {
        // Acquire: pairs with the children's AcqRel decrements (their results are visible).
        while self.running.load(Ordering::Acquire) != 0 {
            let waiter = Waiter::for_current(BlockKind::Join);
            {
                let mut owner = self.owner.lock();
                // Acquire: as above; under the lock, so a child that takes the slot after its
                // decrement finds our waiter, and one that decremented before we looked is
                // seen here.
                if self.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                *owner = Some(waiter.clone());
            }
            if waiter.is_goroutine() {
                // Not `WaitHere::wait`, which unwinds a cancelled goroutine: parked until the
                // last child notifies us, cancelled or not. A cancelled owner cancels its
                // children, so that the wait ends; the caller unwinds after it
                // (`current::continue_cancellation`).
                // SAFETY: the waiter is the running goroutine's, whose header lives while it
                // runs.
                let header = unsafe { &*current::running_header() };
                let mut children_cancelled = false;
                while waiter.is_waiting() {
                    if header.is_cancelled() && !children_cancelled {
                        children_cancelled = true;
                        self.cancel_all();
                    }
                    current::park_current(BlockKind::Join, site);
                }
            } else {
                waiter.wait_thread_until(None);
            }
        }
    }

    /// Takes the first panic of a child whose result nobody took.
    pub(crate) fn take_unclaimed_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.unclaimed_panic.lock().take()
    }
}

/// Where a child leaves its result, shared by the child and its handle.
pub(crate) struct Slot<T> {
    result: Mutex<Option<thread::Result<T>>>,
    tally: Arc<Tally>,
}

impl<T> Slot<T> {
    /// The child's result, if its closure ran (it may have panicked or been cancelled).
    pub(crate) fn take(&self) -> Option<thread::Result<T>> {
        self.result.lock().take()
    }
}

impl<T> Drop for Slot<T> {
    /// A panic nobody took is the owner's to re-raise (the first one).
    fn drop(&mut self) {
        if let Some(Err(payload)) = self.result.get_mut().take() {
            let mut unclaimed = self.tally.unclaimed_panic.lock();
            if unclaimed.is_none() {
                *unclaimed = Some(payload);
            }
        }
    }
}

/// A child's closure with its real lifetime `'a`, its slot, and its tally: dropped (run or
/// not) in that order, the tally's count last.
struct Erased<'a, F, T> {
    f: Option<F>,
    slot: Option<Arc<Slot<T>>>,
    tally: Arc<Tally>,
    _borrow: PhantomData<&'a ()>,
}

impl<F: FnOnce() -> T, T> Erased<'_, F, T> {
    fn run(&mut self) {
        let f = self
            .f
            .take()
            .expect("scheduler: internal error: a scoped closure ran twice");
        // Caught here, so that the result (or the panic, or the cancellation) goes to the
        // slot, and the goroutine itself finishes normally.
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        if let Some(slot) = &self.slot {
            *slot.result.lock() = Some(result);
        }
    }
}

impl<F, T> Drop for Erased<'_, F, T> {
    fn drop(&mut self) {
        drop(self.f.take());
        drop(self.slot.take());
        self.tally.done();
    }
}

/// Boxes `f` as a `'static` closure for the scheduler, counted in `tally`, with the slot its
/// result goes to. The tally must have been [`add`](Tally::add)ed for it.
///
/// # Safety
///
/// The caller (the owner of `tally`) waits with [`Tally::wait_all`] before anything `f` or
/// `T` borrows for `'a` can go away, whatever happens (module doc).
pub(crate) unsafe fn erase<'a, F, T>(
    tally: &Arc<Tally>,
    f: F,
) -> (Box<dyn FnOnce() + Send + 'static>, Arc<Slot<T>>)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let slot = Arc::new(Slot {
        result: Mutex::new(None),
        tally: tally.clone(),
    });
    let mut erased = Erased {
        f: Some(f),
        slot: Some(slot.clone()),
        tally: tally.clone(),
        _borrow: PhantomData,
    };
    let main: Box<dyn FnOnce() + Send + 'a> = Box::new(move || erased.run());
    // SAFETY: only the lifetime changes (same layout, same vtable). Everything `'a` covers is
    // inside the box, and the box is dropped (run or not) before `Tally::done` counts it out,
    // which the caller waits for before `'a` ends (the function's contract).
    let main: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(main) };
    (main, slot)
}

/// A re-raise of the owner's closure's panic or cancellation, or of the first unclaimed
/// panic of a child, after every child ended: `scope`'s and `block_on`'s last step.
pub(crate) fn finish<T>(tally: &Tally, result: thread::Result<T>) -> T {
    match result {
        Err(payload) => panic::resume_unwind(payload),
        Ok(value) => match tally.take_unclaimed_panic() {
            Some(payload) => panic::resume_unwind(payload),
            None => value,
        },
    }
}

/// Whether `payload` is a cancellation's.
pub(crate) fn is_cancellation(payload: &(dyn Any + Send)) -> bool {
    payload.is::<crate::wait::Cancelled>()
}

/// Waits until every child of `tally` ended, also when the caller unwinds: a guard for the
/// plain thread of `block_on`, between its spawn and its ordinary wait (an unwinding thread
/// may block; nothing there unwinds but a bug, and the borrowed frame must outlive the child
/// all the same).
pub(crate) struct WaitAllOnDrop<'t> {
    pub(crate) tally: &'t Tally,
    pub(crate) site: Site,
}

impl Drop for WaitAllOnDrop<'_> {
    fn drop(&mut self) {
        self.tally.wait_all(self.site);
    }
}
