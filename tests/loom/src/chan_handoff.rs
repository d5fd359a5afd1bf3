//! Channel hand-off against a time-out: a value handed to a blocked receiver (or taken from a
//! blocked sender) whose wait is timing out is delivered exactly once or stays with its
//! sender, never lost and never duplicated.
//!
//! Mirrors `chan/core.rs`: `State::try_send`, `try_recv`, `take_from_sender`, `enqueue_recv`,
//! `enqueue_send`, `dequeue_recv`, `dequeue_send` and `remove_slot`; `chan/ops.rs`:
//! `RecvOp`/`SendOp`'s `try_complete`, `enqueue`, `withdraw`, `collect` and
//! `SendOp::take_value`; `select/mod.rs`: `select_one` with `Mode::Until` (the deadline
//! checked before registering, then `wait_until`). The blocked party is a plain thread whose
//! deadline a clock thread passes at any moment (`waiter.rs`'s model); a goroutine's wait ends
//! by the same CAS, fired by its worker's timer.
//!
//! The values are not `Clone`: one that two parties both end up holding, or that nobody
//! holds, fails the final assertion.

use std::collections::VecDeque;

use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::block_kind::BlockKind;
use crate::check;
use crate::clock::{self, Deadline};
use crate::waiter::Waiter;

/// A channel's value; deliberately neither `Copy` nor `Clone`.
#[derive(Debug, PartialEq, Eq)]
struct Value(u32);

struct Slot {
    waiter: std::sync::Arc<Waiter>,
    token: usize,
    value: Mutex<Option<Value>>,
}

impl Slot {
    fn new(waiter: &std::sync::Arc<Waiter>, token: usize, value: Option<Value>) -> Arc<Slot> {
        Arc::new(Slot {
            waiter: waiter.clone(),
            token,
            value: Mutex::new(value),
        })
    }
}

enum TrySend {
    Full(Value),
    Closed(Value),
}

enum TryRecv {
    Empty,
    Closed,
}

struct State {
    buf: VecDeque<Value>,
    cap: usize,
    closed: bool,
    recvq: VecDeque<Arc<Slot>>,
    sendq: VecDeque<Arc<Slot>>,
}

/// A rendezvous channel (capacity 0): `Chan::new(0, ..)`.
struct Chan {
    state: Mutex<State>,
}

impl Chan {
    fn rendezvous() -> Arc<Chan> {
        Arc::new(Chan {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                cap: 0,
                closed: false,
                recvq: VecDeque::new(),
                sendq: VecDeque::new(),
            }),
        })
    }
}

impl State {
    fn try_send(&mut self, mut value: Value) -> Result<(), TrySend> {
        if self.closed {
            return Err(TrySend::Closed(value));
        }
        while let Some(slot) = self.recvq.pop_front() {
            *slot.value.lock().unwrap() = Some(value);
            if slot.waiter.notify(slot.token) {
                return Ok(());
            }
            // That receiver stopped waiting: next one.
            value = slot
                .value
                .lock()
                .unwrap()
                .take()
                .expect("value just stored");
        }
        if self.buf.len() < self.cap {
            self.buf.push_back(value);
            return Ok(());
        }
        Err(TrySend::Full(value))
    }

    fn try_recv(&mut self) -> Result<Value, TryRecv> {
        if let Some(value) = self.buf.pop_front() {
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

    fn take_from_sender(&mut self) -> Option<Value> {
        while let Some(slot) = self.sendq.pop_front() {
            let value = slot
                .value
                .lock()
                .unwrap()
                .take()
                .expect("a blocked sender offers a value");
            if slot.waiter.notify(slot.token) {
                return Some(value);
            }
            *slot.value.lock().unwrap() = Some(value);
        }
        None
    }

    fn enqueue_recv(&mut self, slot: Arc<Slot>) {
        self.recvq.push_back(slot);
    }

    fn enqueue_send(&mut self, slot: Arc<Slot>) {
        self.sendq.push_back(slot);
    }

    fn dequeue_recv(&mut self, slot: &Arc<Slot>) {
        remove_slot(&mut self.recvq, slot);
    }

    fn dequeue_send(&mut self, slot: &Arc<Slot>) {
        remove_slot(&mut self.sendq, slot);
    }
}

fn remove_slot(queue: &mut VecDeque<Arc<Slot>>, slot: &Arc<Slot>) {
    if let Some(pos) = queue.iter().rposition(|s| Arc::ptr_eq(s, slot)) {
        queue.remove(pos);
    }
}

/// A `select` arm: `RecvOp` or `SendOp`, over the channel state its caller has locked.
trait Op {
    fn try_complete(&mut self, state: &mut State) -> bool;
    fn enqueue(&mut self, state: &mut State, waiter: &std::sync::Arc<Waiter>, token: usize);
    fn withdraw(&mut self, state: &mut State);
    fn collect(&mut self);
}

struct RecvOp {
    slot: Option<Arc<Slot>>,
    /// `Some(None)`: closed (`RecvError`).
    outcome: Option<Option<Value>>,
}

impl Op for RecvOp {
    fn try_complete(&mut self, state: &mut State) -> bool {
        match state.try_recv() {
            Ok(value) => self.outcome = Some(Some(value)),
            Err(TryRecv::Closed) => self.outcome = Some(None),
            Err(TryRecv::Empty) => return false,
        }
        true
    }

    fn enqueue(&mut self, state: &mut State, waiter: &std::sync::Arc<Waiter>, token: usize) {
        let slot = Slot::new(waiter, token, None);
        state.enqueue_recv(slot.clone());
        self.slot = Some(slot);
    }

    fn withdraw(&mut self, state: &mut State) {
        if let Some(slot) = self.slot.take() {
            state.dequeue_recv(&slot);
        }
    }

    fn collect(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.outcome = Some(slot.value.lock().unwrap().take());
        }
    }
}

struct SendOp {
    value: Option<Value>,
    slot: Option<Arc<Slot>>,
    /// `Err(value)`: closed (`SendError`).
    outcome: Option<Result<(), Value>>,
}

impl Op for SendOp {
    fn try_complete(&mut self, state: &mut State) -> bool {
        let Some(value) = self.value.take() else {
            return false;
        };
        match state.try_send(value) {
            Ok(()) => self.outcome = Some(Ok(())),
            Err(TrySend::Closed(value)) => self.outcome = Some(Err(value)),
            Err(TrySend::Full(value)) => {
                self.value = Some(value);
                return false;
            }
        }
        true
    }

    fn enqueue(&mut self, state: &mut State, waiter: &std::sync::Arc<Waiter>, token: usize) {
        let slot = Slot::new(waiter, token, self.value.take());
        state.enqueue_send(slot.clone());
        self.slot = Some(slot);
    }

    fn withdraw(&mut self, state: &mut State) {
        if let Some(slot) = self.slot.take() {
            state.dequeue_send(&slot);
            self.value = slot.value.lock().unwrap().take();
        }
    }

    fn collect(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.outcome = Some(match slot.value.lock().unwrap().take() {
                None => Ok(()),
                Some(value) => Err(value),
            });
        }
    }
}

/// `select_one(op, Mode::Until(deadline))`; `chan` is the op's channel, whose lock is the
/// arm's.
fn select_one(chan: &Chan, op: &mut dyn Op, deadline: &Deadline) -> bool {
    let mut state = chan.state.lock().unwrap();
    if op.try_complete(&mut state) {
        return true;
    }
    // `wait_deadline`: a deadline already past means no wait at all.
    if deadline.passed() {
        return false;
    }
    let waiter = Waiter::for_thread(BlockKind::Other);
    op.enqueue(&mut state, &waiter, 0);
    drop(state);
    let won = clock::wait_thread_until(&waiter, deadline) == Some(0);
    if won {
        op.collect();
    } else {
        let mut state = chan.state.lock().unwrap();
        op.withdraw(&mut state);
    }
    won
}

/// A sender's `try_send` meets a receiver in `recv_timeout`: the value ends with exactly one
/// of them.
#[test]
fn send_to_a_receiver_timing_out() {
    check(|| {
        let chan = Chan::rendezvous();
        let deadline = Deadline::new();
        let receiver = {
            let (chan, deadline) = (chan.clone(), deadline.clone());
            thread::spawn(move || {
                let mut op = RecvOp {
                    slot: None,
                    outcome: None,
                };
                select_one(&chan, &mut op, &deadline);
                op.outcome.map(|v| v.expect("the channel is never closed"))
            })
        };
        let clock = {
            let (deadline, sleeper) = (deadline.clone(), receiver.thread().clone());
            thread::spawn(move || deadline.pass(&sleeper))
        };
        let kept = match chan.state.lock().unwrap().try_send(Value(7)) {
            Ok(()) => None,
            Err(TrySend::Full(value)) => Some(value),
            Err(TrySend::Closed(_)) => unreachable!("the channel is never closed"),
        };
        let received = receiver.join().unwrap();
        clock.join().unwrap();
        match (received, kept) {
            (Some(v), None) | (None, Some(v)) => assert_eq!(v, Value(7)),
            (received, kept) => panic!("received {received:?}, kept {kept:?}"),
        }
    });
}

/// A receiver's `try_recv` meets a sender in `send_timeout`: the value ends with exactly one
/// of them (a sender that timed out gets it back).
#[test]
fn receive_from_a_sender_timing_out() {
    check(|| {
        let chan = Chan::rendezvous();
        let deadline = Deadline::new();
        let sender = {
            let (chan, deadline) = (chan.clone(), deadline.clone());
            thread::spawn(move || {
                let mut op = SendOp {
                    value: Some(Value(7)),
                    slot: None,
                    outcome: None,
                };
                if select_one(&chan, &mut op, &deadline) {
                    assert!(
                        matches!(op.outcome, Some(Ok(()))),
                        "the channel is never closed"
                    );
                    None
                } else {
                    // `send_timeout` gives the value back.
                    Some(op.value.take().expect("a send that lost keeps its value"))
                }
            })
        };
        let clock = {
            let (deadline, sleeper) = (deadline.clone(), sender.thread().clone());
            thread::spawn(move || deadline.pass(&sleeper))
        };
        let received = match chan.state.lock().unwrap().try_recv() {
            Ok(value) => Some(value),
            Err(TryRecv::Empty) => None,
            Err(TryRecv::Closed) => unreachable!("the channel is never closed"),
        };
        let kept = sender.join().unwrap();
        clock.join().unwrap();
        match (received, kept) {
            (Some(v), None) | (None, Some(v)) => assert_eq!(v, Value(7)),
            (received, kept) => panic!("received {received:?}, kept {kept:?}"),
        }
    });
}
