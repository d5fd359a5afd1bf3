//! The channel itself: a buffer, two queues of blocked parties and a closed flag, under one
//! lock, as Go's `hchan`.
//!
//! Invariants (under the lock):
//! * `recvq` holds receivers only while the buffer is empty, and `sendq` holds senders only
//!   while the buffer is full (for a rendezvous channel, capacity 0, "full" always holds), so at
//!   most one of them holds parties that are still waiting.
//! * A party in a queue may have stopped waiting (timed out, or another `select` arm won):
//!   whoever dequeues it tries to end its wait, and on failure skips it.
//! * Once `closed`, no value enters the buffer and both queues are empty.
//! * A party is notified only when its slot is final: a receiver's holds the value handed to
//!   it, a sender's is empty (its value was taken) or, after a close, still holds the value. A
//!   notified party reads its slot without the channel's lock.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::parked::{ParkedRef, ParkedSlot};
use crate::sync::locked::Locked;
use crate::sync::waiter::Waiter;

/// A blocked party in one of a channel's queues.
pub(crate) enum Party<T> {
    /// A `select!` arm, or a timed, cancellable or plain-thread wait: a shared slot whose wait
    /// may end otherwise (timeout, another arm), so completing it may fail.
    Select(Arc<Slot<T>>),
    /// A goroutine parked in a plain send or receive, its slot on its own stack
    /// ([`super::parked`]): completing it always succeeds.
    Parked(ParkedRef<T>),
}

/// A blocked send or receive: the waiter, the token that tells it which operation completed,
/// and the value moving between the two sides.
pub(crate) struct Slot<T> {
    pub(crate) waiter: Arc<Waiter>,
    pub(crate) token: usize,
    /// A sender's offered value, or the value handed to a receiver. Only touched under the
    /// channel's lock; the mutex is there to make the slot shareable, and is never contended.
    pub(crate) value: Mutex<Option<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn new(waiter: &Arc<Waiter>, token: usize, value: Option<T>) -> Arc<Slot<T>> {
        Arc::new(Slot {
            waiter: waiter.clone(),
            token,
            value: Mutex::new(value),
        })
    }
}

/// Why a non-blocking send failed; carries the value back.
pub(crate) enum TrySend<T> {
    Full(T),
    Closed(T),
}

/// Why a non-blocking receive failed.
pub(crate) enum TryRecv {
    Empty,
    Closed,
}

pub(crate) struct State<T> {
    buf: VecDeque<T>,
    /// `usize::MAX` for an unbounded channel; 0 for a rendezvous.
    cap: usize,
    closed: bool,
    /// Live `Sender`s; the channel closes when the last one drops (unless `keep_open`).
    pub(crate) senders: usize,
    /// Live `Receiver`s; sends fail once the last one drops.
    pub(crate) receivers: usize,
    /// Never closed by the count of senders: for timer channels, which Go never closes.
    keep_open: bool,
    recvq: VecDeque<Party<T>>,
    sendq: VecDeque<Party<T>>,
}

/// A channel shared by its senders and receivers.
pub(crate) struct Chan<T> {
    pub(crate) state: Locked<State<T>>,
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize, keep_open: bool) -> Arc<Chan<T>> {
        Arc::new(Chan {
            state: Locked::new(State {
                buf: VecDeque::new(),
                cap,
                closed: false,
                senders: 1,
                receivers: 1,
                keep_open,
                recvq: VecDeque::new(),
                sendq: VecDeque::new(),
            }),
        })
    }
}

impl<T> State<T> {
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends without blocking: straight to a waiting receiver, else into the buffer.
    pub(crate) fn try_send(&mut self, mut value: T) -> Result<(), TrySend<T>> {
        if self.closed {
            return Err(TrySend::Closed(value));
        }
        while let Some(party) = self.recvq.pop_front() {
            match party {
                Party::Select(slot) => {
                    *slot.value.lock() = Some(value);
                    if slot.waiter.notify(slot.token) {
                        return Ok(());
                    }
                    // That receiver stopped waiting (timed out, or chose another arm): next.
                    value = slot.value.lock().take().expect("value just stored");
                }
                Party::Parked(parked) => {
                    // SAFETY: we hold the channel's lock (`&mut self`) and took it out of the
                    // queue.
                    unsafe { parked.complete(|slot| *slot = Some(value)) };
                    return Ok(());
                }
            }
        }
        if self.buf.len() < self.cap {
            self.buf.push_back(value);
            return Ok(());
        }
        Err(TrySend::Full(value))
    }

    /// Receives without blocking: from the buffer (refilling it from a blocked sender), else
    /// straight from a blocked sender.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecv> {
        if let Some(value) = self.buf.pop_front() {
            // Room in the buffer now: move the first still-waiting sender's value in.
            if let Some(sent) = self.take_from_sender() {
                self.buf.push_back(sent);
            }
            return Ok(value);
        }
        if let Some(sent) = self.take_from_sender() {
            return Ok(sent);
        }
        if self.closed {
            Err(TryRecv::Closed)
        } else {
            Err(TryRecv::Empty)
        }
    }

    /// Takes the value of the first blocked sender that is still waiting, and ends its wait.
    ///
    /// The value is taken before the sender is notified: once notified, the sender reads its
    /// slot without the channel's lock (`SendOp::collect`), and a value still there would mean
    /// the channel closed. If the notification fails, the value goes back to the slot for its
    /// sender to take.
    fn take_from_sender(&mut self) -> Option<T> {
        while let Some(party) = self.sendq.pop_front() {
            match party {
                Party::Select(slot) => {
                    let value = slot
                        .value
                        .lock()
                        .take()
                        .expect("a blocked sender offers a value");
                    if slot.waiter.notify(slot.token) {
                        return Some(value);
                    }
                    *slot.value.lock() = Some(value);
                }
                Party::Parked(parked) => {
                    // SAFETY: we hold the channel's lock (`&mut self`) and took it out of the
                    // queue.
                    let value = unsafe { parked.complete(Option::take) };
                    return Some(value.expect("a blocked sender offers a value"));
                }
            }
        }
        None
    }

    pub(crate) fn enqueue_recv(&mut self, party: Party<T>) {
        self.recvq.push_back(party);
    }

    pub(crate) fn enqueue_send(&mut self, party: Party<T>) {
        self.sendq.push_back(party);
    }

    /// Removes a receiver's slot that is still queued.
    pub(crate) fn dequeue_recv(&mut self, slot: &Arc<Slot<T>>) {
        remove_party(
            &mut self.recvq,
            |p| matches!(p, Party::Select(s) if Arc::ptr_eq(s, slot)),
        );
    }

    /// Removes a sender's slot that is still queued.
    pub(crate) fn dequeue_send(&mut self, slot: &Arc<Slot<T>>) {
        remove_party(
            &mut self.sendq,
            |p| matches!(p, Party::Select(s) if Arc::ptr_eq(s, slot)),
        );
    }

    /// Removes a parked receiver's slot that is still queued.
    pub(crate) fn dequeue_parked_recv(&mut self, slot: &ParkedSlot<T>) {
        remove_party(
            &mut self.recvq,
            |p| matches!(p, Party::Parked(r) if r.points_to(slot)),
        );
    }

    /// Removes a parked sender's slot that is still queued.
    pub(crate) fn dequeue_parked_send(&mut self, slot: &ParkedSlot<T>) {
        remove_party(
            &mut self.sendq,
            |p| matches!(p, Party::Parked(r) if r.points_to(slot)),
        );
    }

    /// Closes the channel: wakes every blocked receiver (who then finds it closed and empty)
    /// and every blocked sender (who gets its value back). Returns false if already closed.
    pub(crate) fn close(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        for party in self.recvq.drain(..).chain(self.sendq.drain(..)) {
            match party {
                Party::Select(slot) => {
                    slot.waiter.notify(slot.token);
                }
                // SAFETY: we hold the channel's lock (`&mut self`) and took it out of the
                // queue. The value stays: a receiver finds none, a sender gets its own back.
                Party::Parked(parked) => unsafe { parked.complete(|_| ()) },
            }
        }
        true
    }

    /// The last `Sender` went away.
    pub(crate) fn drop_sender(&mut self) {
        self.senders -= 1;
        if self.senders == 0 && !self.keep_open {
            self.close();
        }
    }

    /// The last `Receiver` went away: nobody can receive, so sends fail from now on.
    pub(crate) fn drop_receiver(&mut self) {
        self.receivers -= 1;
        if self.receivers == 0 {
            self.close();
        }
    }
}

fn remove_party<T>(queue: &mut VecDeque<Party<T>>, is_it: impl Fn(&Party<T>) -> bool) {
    // Search from the back: a slot still queued when its wait ended is usually recent.
    if let Some(pos) = queue.iter().rposition(is_it) {
        queue.remove(pos);
    }
}
