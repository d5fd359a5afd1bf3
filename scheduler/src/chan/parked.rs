//! The fast blocking path of a plain `send` or `recv` made by a goroutine: no allocation, no
//! waiter object, as Go's `chansend`/`chanrecv` with a `sudog`.
//!
//! The blocked party's [`ParkedSlot`] lives on the goroutine's own stack, and the channel's
//! queue points at it. Two rules keep that sound:
//!
//! 1. The goroutine queues its slot and suspends *while holding the channel's lock*; its
//!    worker releases the lock only after it has marked the goroutine parked
//!    ([`park_current_unlocking`]). So a party that finds the slot (which takes the lock)
//!    always finds a parked goroutine, and its wake-up is never early.
//! 2. Whoever takes the slot out of the queue, under the lock, completes it in full before it
//!    lets go: it writes or takes the value, wakes the goroutine, and only then sets `done`
//!    (Release). After that store it no longer touches the slot. The goroutine, once awake,
//!    reads `done` (Acquire): if set, the slot is its own again and it returns (freeing the
//!    slot); if not (a forced shutdown woke it), it takes the lock and withdraws the slot,
//!    which it can do only while nobody is completing it.
//!
//! Timed, cancellable and `select!` waits, plain threads and goroutines that are unwinding use
//! the general path (`select_one`), whose slots are reference-counted.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use super::core::{Chan, Party, State, TryRecv, TrySend};
use super::error::{RecvError, SendError};
use crate::goroutine::task::TaskRef;
use crate::sched::current::{self, park_current_unlocking};
use crate::sched::unpark_owned;
use crate::wait::lock::Guard;
use crate::wait::{BlockKind, Site};

/// A goroutine blocked in a plain send or receive. Lives on that goroutine's stack.
pub(crate) struct ParkedSlot<T> {
    /// The blocked goroutine, filled by its worker as it parks; taken by whoever completes
    /// the slot, to wake it.
    task: UnsafeCell<Option<TaskRef>>,
    /// A sender's value until a receiver takes it; the value handed to a receiver.
    value: UnsafeCell<Option<T>>,
    /// Set (Release) by the completer as its last access; read (Acquire) by the owner.
    done: AtomicBool,
}

/// A queue's pointer to a [`ParkedSlot`].
pub(crate) struct ParkedRef<T>(NonNull<ParkedSlot<T>>);

// SAFETY: a ParkedRef is only dereferenced under the channel's lock, by the party that holds
// it (rule 2 of the module doc), and it moves a `T` across threads like a channel does, so it
// may be sent wherever `T` may.
unsafe impl<T: Send> Send for ParkedRef<T> {}

impl<T> ParkedRef<T> {
    pub(crate) fn points_to(&self, slot: &ParkedSlot<T>) -> bool {
        std::ptr::eq(self.0.as_ptr(), slot)
    }

    /// Ends the wait of the parked goroutine: `f` updates its value (hands one to a receiver,
    /// takes a sender's, or leaves it for a close), then the goroutine is woken and the slot
    /// marked done.
    ///
    /// # Safety
    /// The caller holds the lock of the channel from whose queue it took this reference out.
    pub(crate) unsafe fn complete<R>(self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        // SAFETY: a slot in a channel's queue stays alive until it is marked done (its owner
        // frees it only after seeing `done`, or after withdrawing it under the lock, which we
        // hold); the owner touches `value` and `task` only after `done` or under the lock.
        let slot = unsafe { self.0.as_ref() };
        // SAFETY: as above: nobody else accesses the cells now.
        let result = f(unsafe { &mut *slot.value.get() });
        // SAFETY: as above.
        let task = unsafe { (*slot.task.get()).take() }
            .expect("scheduler: internal error: a parked channel party without its goroutine");
        unpark_owned(task);
        // Release: publishes the value written above to the owner, who reads `done` with
        // Acquire. The last access to the slot.
        slot.done.store(true, Ordering::Release);
        result
    }
}

/// How a parked wait ended.
enum Waited<T> {
    /// Completed by another party: the slot's final value.
    Done(Option<T>),
    /// Woken without completion (a forced shutdown): withdrawn, with the slot's value.
    Withdrawn(Option<T>),
}

/// Which queue of the channel the party waits in.
#[derive(Clone, Copy)]
enum Side {
    Send,
    Recv,
}

/// Queues a slot for the running goroutine, parks it with the lock held (waiting at `site`),
/// and waits until the slot is completed or the goroutine is woken otherwise.
///
/// A goroutine that is already cancelled (it caught its cancellation and waits again) is not
/// parked by its worker (`WorkerLocal::resume`): it comes back at once, withdraws, and unwinds
/// in its caller, so that it cannot block a forced shutdown again.
fn wait<T>(
    chan: &Chan<T>,
    mut state: Guard<'_, State<T>>,
    side: Side,
    value: Option<T>,
    site: Site,
) -> Waited<T> {
    let slot = ParkedSlot {
        task: UnsafeCell::new(None),
        value: UnsafeCell::new(value),
        done: AtomicBool::new(false),
    };
    let party = Party::Parked(ParkedRef(NonNull::from(&slot)));
    match side {
        Side::Send => state.enqueue_send(party),
        Side::Recv => state.enqueue_recv(party),
    }
    // From here until the slot is done or withdrawn, the channel's queue points into this
    // frame. Should the frame go by unwinding (the goroutine's stack torn down while it is
    // parked), the guard takes the slot out of the queue first.
    let guard = WithdrawOnUnwind {
        chan,
        slot: &slot,
        side,
    };
    // Rule 1: the lock is released by the worker once this goroutine is parked.
    let kind = match side {
        Side::Send => BlockKind::ChannelSend,
        Side::Recv => BlockKind::ChannelReceive,
    };
    park_current_unlocking(state.into_lock(), &slot.task, kind, site);
    // Acquire: pairs with the completer's Release store; the value it wrote is visible.
    let withdrawn = !slot.done.load(Ordering::Acquire) && guard.withdraw_if_open();
    std::mem::forget(guard);
    if withdrawn {
        Waited::Withdrawn(slot.value.into_inner())
    } else {
        Waited::Done(slot.value.into_inner())
    }
}

/// Keeps a channel's queue from pointing into a goroutine's frame that goes away: taken out of
/// the queue, under the lock, unless a completer marked it done.
struct WithdrawOnUnwind<'a, T> {
    chan: &'a Chan<T>,
    slot: &'a ParkedSlot<T>,
    side: Side,
}

impl<T> WithdrawOnUnwind<'_, T> {
    /// Takes the slot out of its queue unless it is done; true if it was still queued.
    // Out of line: a wait woken by its completer (the usual end) sees `done` before calling.
    #[cold]
    fn withdraw_if_open(&self) -> bool {
        let mut state = self.chan.state.lock();
        // Relaxed: under the lock, which orders us after any completer (it sets `done` before
        // it unlocks).
        if self.slot.done.load(Ordering::Relaxed) {
            return false;
        }
        match self.side {
            Side::Send => state.dequeue_parked_send(self.slot),
            Side::Recv => state.dequeue_parked_recv(self.slot),
        }
        true
    }
}

impl<T> Drop for WithdrawOnUnwind<'_, T> {
    fn drop(&mut self) {
        self.withdraw_if_open();
    }
}

/// A plain `send` by a goroutine that may suspend, called at `site`.
pub(crate) fn send<T>(chan: &Chan<T>, mut value: T, site: Site) -> Result<(), SendError<T>> {
    loop {
        let mut state = chan.state.lock();
        match state.try_send(value) {
            Ok(()) => return Ok(()),
            Err(TrySend::Closed(v)) => return Err(SendError(v)),
            Err(TrySend::Full(v)) => value = v,
        }
        match wait(chan, state, Side::Send, Some(value), site) {
            // A receiver took the value; if it is still here, a close woke us.
            Waited::Done(None) => return Ok(()),
            Waited::Done(Some(v)) => return Err(SendError(v)),
            Waited::Withdrawn(v) => {
                value = v.expect("scheduler: internal error: a withdrawn send lost its value");
                // Woken by a forced shutdown: unwind from here. Otherwise try again.
                current::continue_cancellation();
            }
        }
    }
}

/// A plain `recv` by a goroutine that may suspend, called at `site`.
pub(crate) fn recv<T>(chan: &Chan<T>, site: Site) -> Result<T, RecvError> {
    loop {
        let mut state = chan.state.lock();
        match state.try_recv() {
            Ok(value) => return Ok(value),
            Err(TryRecv::Closed) => return Err(RecvError),
            Err(TryRecv::Empty) => {}
        }
        match wait(chan, state, Side::Recv, None, site) {
            // A sender handed us a value; none means a close woke us.
            Waited::Done(value) => return value.ok_or(RecvError),
            Waited::Withdrawn(_) => current::continue_cancellation(),
        }
    }
}
