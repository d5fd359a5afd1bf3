//! Channel operations as `select` arms. Plain `send` and `recv` are one-arm selects of these.

use std::sync::Arc;

use super::core::{Chan, Party, Slot, TryRecv, TrySend};
use super::error::{RecvError, SendError};
use super::{Receiver, Sender};
use crate::select::{SelectWaiter, Selectable, sealed};
use crate::wait::lock::RawLock;

/// A receive waiting to happen. Created by `select!`; see [`Receiver`].
#[doc(hidden)]
pub struct RecvOp<'a, T> {
    chan: &'a Chan<T>,
    slot: Option<Arc<Slot<T>>>,
    outcome: Option<Result<T, RecvError>>,
}

/// A send waiting to happen, holding its value. Created by `select!`; see [`Sender`].
#[doc(hidden)]
pub struct SendOp<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    slot: Option<Arc<Slot<T>>>,
    outcome: Option<Result<(), SendError<T>>>,
}

/// What `recv(...)` accepts in `select!`: a receiver or a reference to one.
#[doc(hidden)]
pub trait AsReceiver<T> {
    fn as_receiver(&self) -> &Receiver<T>;
}

impl<T> AsReceiver<T> for Receiver<T> {
    fn as_receiver(&self) -> &Receiver<T> {
        self
    }
}

impl<T, R: AsReceiver<T> + ?Sized> AsReceiver<T> for &R {
    fn as_receiver(&self) -> &Receiver<T> {
        (**self).as_receiver()
    }
}

/// What `send(...)` accepts in `select!`: a sender or a reference to one.
#[doc(hidden)]
pub trait AsSender<T> {
    fn as_sender(&self) -> &Sender<T>;
}

impl<T> AsSender<T> for Sender<T> {
    fn as_sender(&self) -> &Sender<T> {
        self
    }
}

impl<T, S: AsSender<T> + ?Sized> AsSender<T> for &S {
    fn as_sender(&self) -> &Sender<T> {
        (**self).as_sender()
    }
}

impl<'a, T> RecvOp<'a, T> {
    /// A receive on `rx`.
    pub fn new<R: AsReceiver<T> + ?Sized>(rx: &'a R) -> RecvOp<'a, T> {
        RecvOp::on(&rx.as_receiver().chan)
    }

    pub(crate) fn on(chan: &'a Chan<T>) -> RecvOp<'a, T> {
        RecvOp {
            chan,
            slot: None,
            outcome: None,
        }
    }

    /// The outcome of the completed receive.
    ///
    /// # Panics
    /// If the operation did not complete (a `select!` bug).
    pub fn outcome(&mut self) -> Result<T, RecvError> {
        self.outcome
            .take()
            .expect("scheduler: select arm taken without completing")
    }
}

impl<'a, T> SendOp<'a, T> {
    /// A send of `value` on `tx`.
    pub fn new<S: AsSender<T> + ?Sized>(tx: &'a S, value: T) -> SendOp<'a, T> {
        SendOp::on(&tx.as_sender().chan, value)
    }

    pub(crate) fn on(chan: &'a Chan<T>, value: T) -> SendOp<'a, T> {
        SendOp {
            chan,
            value: Some(value),
            slot: None,
            outcome: None,
        }
    }

    /// The outcome of the completed send.
    ///
    /// # Panics
    /// If the operation did not complete (a `select!` bug).
    pub fn outcome(&mut self) -> Result<(), SendError<T>> {
        self.outcome
            .take()
            .expect("scheduler: select arm taken without completing")
    }

    /// The value, if it was not sent.
    pub(crate) fn take_value(&mut self) -> Option<T> {
        self.value.take()
    }
}

impl<T> sealed::Sealed for RecvOp<'_, T> {}
impl<T> sealed::Sealed for SendOp<'_, T> {}

impl<T> Selectable for RecvOp<'_, T> {
    fn lock(&self) -> &RawLock {
        self.chan.state.raw()
    }

    unsafe fn try_complete(&mut self) -> bool {
        // SAFETY: the caller holds the lock; the reference ends with this call.
        let state = unsafe { self.chan.state.data_mut() };
        match state.try_recv() {
            Ok(value) => self.outcome = Some(Ok(value)),
            Err(TryRecv::Closed) => self.outcome = Some(Err(RecvError)),
            Err(TryRecv::Empty) => return false,
        }
        true
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        let slot = Slot::new(&waiter.0, token, None);
        // SAFETY: the caller holds the lock; the reference ends with this call.
        unsafe { self.chan.state.data_mut() }.enqueue_recv(Party::Select(slot.clone()));
        self.slot = Some(slot);
    }

    unsafe fn withdraw(&mut self) {
        if let Some(slot) = self.slot.take() {
            // SAFETY: the caller holds the lock; the reference ends with this statement.
            unsafe { self.chan.state.data_mut() }.dequeue_recv(&slot);
        }
    }

    fn collect(&mut self) {
        if let Some(slot) = self.slot.take() {
            // The sender that chose us dequeued us and left the value; close leaves none.
            self.outcome = Some(slot.value.lock().take().ok_or(RecvError));
        }
    }
}

impl<T> Selectable for SendOp<'_, T> {
    fn lock(&self) -> &RawLock {
        self.chan.state.raw()
    }

    unsafe fn try_complete(&mut self) -> bool {
        let Some(value) = self.value.take() else {
            return false;
        };
        // SAFETY: the caller holds the lock; the reference ends with this call.
        let state = unsafe { self.chan.state.data_mut() };
        match state.try_send(value) {
            Ok(()) => self.outcome = Some(Ok(())),
            Err(TrySend::Closed(value)) => self.outcome = Some(Err(SendError(value))),
            Err(TrySend::Full(value)) => {
                self.value = Some(value);
                return false;
            }
        }
        true
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        let slot = Slot::new(&waiter.0, token, self.value.take());
        // SAFETY: the caller holds the lock; the reference ends with this call.
        unsafe { self.chan.state.data_mut() }.enqueue_send(Party::Select(slot.clone()));
        self.slot = Some(slot);
    }

    unsafe fn withdraw(&mut self) {
        if let Some(slot) = self.slot.take() {
            // SAFETY: the caller holds the lock; the reference ends with this statement.
            unsafe { self.chan.state.data_mut() }.dequeue_send(&slot);
            // Not sent: keep the value (send_timeout gives it back).
            self.value = slot.value.lock().take();
        }
    }

    fn collect(&mut self) {
        if let Some(slot) = self.slot.take() {
            // A receiver took the value; if it is still here, close woke us instead.
            self.outcome = Some(match slot.value.lock().take() {
                None => Ok(()),
                Some(value) => Err(SendError(value)),
            });
        }
    }
}
