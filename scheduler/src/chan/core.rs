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
use crate::wait::lock::Locked;
use crate::wait::waiter::Waiter;

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

/// The channel's state on plain threads (no runtime), so that Miri can run them: parties
/// are `Party::Select` slots with thread waiters. (`Party::Parked` needs a goroutine.)
#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::wait::WaitHere;
    use crate::testing::ROUNDS;
    use crate::wait::BlockKind;
    use std::thread;
    use std::time::{Duration, Instant};

    fn waiting_slot(value: Option<u32>, token: usize) -> Arc<Slot<u32>> {
        Slot::new(&Waiter::for_current(BlockKind::Other), token, value)
    }

    fn sent(result: Result<(), TrySend<u32>>) -> Result<(), &'static str> {
        match result {
            Ok(()) => Ok(()),
            Err(TrySend::Full(_)) => Err("full"),
            Err(TrySend::Closed(_)) => Err("closed"),
        }
    }

    fn received(result: Result<u32, TryRecv>) -> Result<u32, &'static str> {
        result.map_err(|e| match e {
            TryRecv::Empty => "empty",
            TryRecv::Closed => "closed",
        })
    }

    #[test]
    fn buffer_is_fifo_up_to_its_capacity() {
        let chan = Chan::new(2, false);
        let mut state = chan.state.lock();
        assert_eq!(state.cap(), 2);
        assert_eq!(sent(state.try_send(1)), Ok(()));
        assert_eq!(sent(state.try_send(2)), Ok(()));
        match state.try_send(3) {
            Err(TrySend::Full(3)) => {}
            _ => panic!("a full buffer refuses the value and gives it back"),
        }
        assert_eq!(state.len(), 2);
        assert_eq!(received(state.try_recv()), Ok(1));
        assert_eq!(sent(state.try_send(4)), Ok(()));
        assert_eq!(received(state.try_recv()), Ok(2));
        assert_eq!(received(state.try_recv()), Ok(4));
        assert_eq!(received(state.try_recv()), Err("empty"));
    }

    #[test]
    fn rendezvous_without_a_receiver_is_full() {
        let chan = Chan::new(0, false);
        let mut state = chan.state.lock();
        assert_eq!(sent(state.try_send(1)), Err("full"));
        assert_eq!(state.len(), 0);
        assert_eq!(received(state.try_recv()), Err("empty"));
    }

    #[test]
    fn send_hands_the_value_straight_to_a_queued_receiver() {
        for cap in [0, 1] {
            let chan = Chan::new(cap, false);
            let mut state = chan.state.lock();
            let slot = waiting_slot(None, 4);
            state.enqueue_recv(Party::Select(slot.clone()));
            assert_eq!(sent(state.try_send(9)), Ok(()));
            assert_eq!(state.len(), 0, "not through the buffer");
            assert_eq!(slot.waiter.token(), Some(4));
            assert_eq!(*slot.value.lock(), Some(9));
        }
    }

    #[test]
    fn send_skips_receivers_that_stopped_waiting() {
        let chan = Chan::new(0, false);
        let mut state = chan.state.lock();
        let (gone, waiting) = (waiting_slot(None, 0), waiting_slot(None, 1));
        assert!(gone.waiter.time_out());
        state.enqueue_recv(Party::Select(gone.clone()));
        state.enqueue_recv(Party::Select(waiting.clone()));
        assert_eq!(sent(state.try_send(5)), Ok(()));
        assert_eq!(*gone.value.lock(), None, "the value was taken back");
        assert_eq!(*waiting.value.lock(), Some(5));
        // Only receivers that stopped waiting: the value comes back as Full.
        let gone = waiting_slot(None, 0);
        assert!(gone.waiter.time_out());
        state.enqueue_recv(Party::Select(gone.clone()));
        match state.try_send(6) {
            Err(TrySend::Full(6)) => {}
            _ => panic!("the value must come back"),
        }
        assert_eq!(*gone.value.lock(), None);
    }

    #[test]
    fn recv_refills_the_buffer_from_a_queued_sender_in_order() {
        let chan = Chan::new(1, false);
        let mut state = chan.state.lock();
        assert_eq!(sent(state.try_send(1)), Ok(()));
        let sender = waiting_slot(Some(2), 7);
        state.enqueue_send(Party::Select(sender.clone()));
        assert_eq!(received(state.try_recv()), Ok(1));
        assert_eq!(sender.waiter.token(), Some(7));
        assert_eq!(
            *sender.value.lock(),
            None,
            "its value moved into the buffer"
        );
        assert_eq!(state.len(), 1);
        assert_eq!(received(state.try_recv()), Ok(2));
    }

    #[test]
    fn rendezvous_recv_takes_from_the_first_sender_still_waiting() {
        let chan = Chan::new(0, false);
        let mut state = chan.state.lock();
        let (gone, first, second) = (
            waiting_slot(Some(1), 0),
            waiting_slot(Some(2), 0),
            waiting_slot(Some(3), 0),
        );
        assert!(gone.waiter.time_out());
        for slot in [&gone, &first, &second] {
            state.enqueue_send(Party::Select(slot.clone()));
        }
        assert_eq!(received(state.try_recv()), Ok(2));
        assert_eq!(
            *gone.value.lock(),
            Some(1),
            "a sender that left keeps its value"
        );
        assert!(second.waiter.is_waiting());
        assert_eq!(received(state.try_recv()), Ok(3));
        assert_eq!(received(state.try_recv()), Err("empty"));
    }

    #[test]
    fn close_wakes_every_queued_party() {
        // Receivers: woken with no value.
        let chan = Chan::new(0, false);
        let mut state = chan.state.lock();
        let receivers = [waiting_slot(None, 1), waiting_slot(None, 2)];
        for slot in &receivers {
            state.enqueue_recv(Party::Select(slot.clone()));
        }
        assert!(state.close());
        assert!(!state.close(), "already closed");
        assert!(state.is_closed());
        for (token, slot) in (1..).zip(&receivers) {
            assert_eq!(slot.waiter.token(), Some(token));
            assert_eq!(*slot.value.lock(), None);
        }
        match state.try_send(3) {
            Err(TrySend::Closed(3)) => {}
            _ => panic!("a closed channel refuses the value and gives it back"),
        }
        assert_eq!(received(state.try_recv()), Err("closed"));
        drop(state);

        // Senders: woken with their value still in the slot.
        let chan = Chan::new(0, false);
        let mut state = chan.state.lock();
        let sender = waiting_slot(Some(8), 0);
        state.enqueue_send(Party::Select(sender.clone()));
        assert!(state.close());
        assert_eq!(sender.waiter.token(), Some(0));
        assert_eq!(*sender.value.lock(), Some(8));
    }

    #[test]
    fn buffered_values_outlive_a_close() {
        let chan = Chan::new(2, false);
        let mut state = chan.state.lock();
        assert_eq!(sent(state.try_send(1)), Ok(()));
        assert!(state.close());
        assert_eq!(received(state.try_recv()), Ok(1));
        assert_eq!(received(state.try_recv()), Err("closed"));
    }

    #[test]
    fn dequeue_removes_only_the_withdrawn_party() {
        let chan = Chan::new(0, false);
        let mut state = chan.state.lock();
        let (withdrawn, stays) = (waiting_slot(None, 0), waiting_slot(None, 1));
        state.enqueue_recv(Party::Select(withdrawn.clone()));
        state.enqueue_recv(Party::Select(stays.clone()));
        state.dequeue_recv(&withdrawn);
        state.dequeue_recv(&withdrawn); // not queued any more: nothing happens
        assert_eq!(sent(state.try_send(1)), Ok(()));
        assert!(
            withdrawn.waiter.is_waiting(),
            "a withdrawn receiver is not notified"
        );
        assert_eq!(*stays.value.lock(), Some(1));
        assert_eq!(sent(state.try_send(2)), Err("full"), "nobody is left");

        let (withdrawn, stays) = (waiting_slot(Some(3), 0), waiting_slot(Some(4), 1));
        state.enqueue_send(Party::Select(withdrawn.clone()));
        state.enqueue_send(Party::Select(stays.clone()));
        state.dequeue_send(&withdrawn);
        assert_eq!(received(state.try_recv()), Ok(4));
        assert!(withdrawn.waiter.is_waiting());
        assert_eq!(*withdrawn.value.lock(), Some(3));
        assert_eq!(received(state.try_recv()), Err("empty"));
    }

    #[test]
    fn the_last_sender_or_receiver_closes_the_channel() {
        let chan = Chan::<u32>::new(1, false);
        let mut state = chan.state.lock();
        state.senders += 1;
        state.drop_sender();
        assert!(!state.is_closed(), "one sender is left");
        state.drop_sender();
        assert!(state.is_closed());

        let chan = Chan::<u32>::new(1, false);
        chan.state.lock().drop_receiver();
        assert!(chan.state.lock().is_closed());

        let chan = Chan::<u32>::new(1, true);
        chan.state.lock().drop_sender();
        assert!(!chan.state.lock().is_closed(), "a timer channel stays open");
    }

    /// A blocking send from a plain thread, done as `select` does it with a `SendOp`: try,
    /// else queue a slot and wait, then collect. Gives the value back if the channel closed.
    fn send(chan: &Chan<u32>, value: u32) -> Result<(), u32> {
        let mut state = chan.state.lock();
        let value = match state.try_send(value) {
            Ok(()) => return Ok(()),
            Err(TrySend::Closed(value)) => return Err(value),
            Err(TrySend::Full(value)) => value,
        };
        let waiter = Waiter::for_current(BlockKind::Other);
        let slot = Slot::new(&waiter, 0, Some(value));
        state.enqueue_send(Party::Select(slot.clone()));
        drop(state);
        waiter.wait(std::panic::Location::caller());
        // A receiver took the value; if it is still here, the close woke us.
        match slot.value.lock().take() {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// A receive from a plain thread that gives up at `deadline`, done as `select` does it
    /// with a `RecvOp`. `Err(false)`: timed out; `Err(true)`: closed.
    fn recv_until(chan: &Chan<u32>, deadline: Instant) -> Result<u32, bool> {
        let mut state = chan.state.lock();
        match state.try_recv() {
            Ok(value) => return Ok(value),
            Err(TryRecv::Closed) => return Err(true),
            Err(TryRecv::Empty) => {}
        }
        let waiter = Waiter::for_current(BlockKind::Other);
        let slot = Slot::new(&waiter, 0, None);
        state.enqueue_recv(Party::Select(slot.clone()));
        drop(state);
        let won = waiter
            .wait_until(Some(deadline), std::panic::Location::caller())
            .is_some();
        let mut state = chan.state.lock();
        if won {
            // A sender left its value; a close left none.
            return slot.value.lock().take().ok_or(true);
        }
        state.dequeue_recv(&slot);
        // A sender that found us timed out took its value back.
        assert_eq!(
            *slot.value.lock(),
            None,
            "a value was left with a receiver that left"
        );
        Err(false)
    }

    #[test]
    fn values_are_neither_lost_nor_duplicated() {
        const SENDERS: u32 = 2;
        const RECEIVERS: usize = 2;
        let per_sender = ROUNDS.min(50) as u32;
        for cap in [0, 1] {
            let chan = Chan::new(cap, false);
            let chan = &*chan;
            let mut got: Vec<u32> = thread::scope(|s| {
                let receivers: Vec<_> = (0..RECEIVERS)
                    .map(|_| {
                        s.spawn(|| {
                            let mut got = Vec::new();
                            loop {
                                // Short waits, so that receivers also time out and leave
                                // stale slots in the queue for senders to skip.
                                let deadline = Instant::now() + Duration::from_micros(10);
                                match recv_until(chan, deadline) {
                                    Ok(value) => got.push(value),
                                    Err(true) => return got,
                                    Err(false) => {}
                                }
                            }
                        })
                    })
                    .collect();
                let senders: Vec<_> = (0..SENDERS)
                    .map(|sender| {
                        s.spawn(move || {
                            for i in 0..per_sender {
                                // Now and then, pause long enough for receivers to time out.
                                if i % 4 == 3 {
                                    thread::sleep(Duration::from_micros(50));
                                }
                                assert_eq!(send(chan, sender * 1000 + i), Ok(()));
                            }
                        })
                    })
                    .collect();
                for sender in senders {
                    sender.join().unwrap();
                }
                assert!(chan.state.lock().close());
                receivers
                    .into_iter()
                    .flat_map(|r| r.join().unwrap())
                    .collect()
            });
            got.sort_unstable();
            let expected: Vec<u32> = (0..SENDERS)
                .flat_map(|sender| (0..per_sender).map(move |i| sender * 1000 + i))
                .collect();
            assert_eq!(got, expected, "capacity {cap}");
        }
    }
}
