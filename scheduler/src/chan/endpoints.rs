//! [`Sender`] and [`Receiver`]: the two ends of a channel.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{Chan, TryRecv, TrySend};
use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::ops::{RecvOp, SendOp};
use super::parked;
use crate::sched::current::can_suspend;
use crate::select::{Mode, select_one};
use crate::wait::{BlockKind, Site};

/// The sending end of a channel. Clone it to send from several goroutines.
///
/// The channel closes when every `Sender` is dropped, or when [`close`](Self::close) is called.
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving end of a channel. Clone it to receive from several goroutines; each value is
/// received once.
///
/// Iterating over a receiver (`for v in &rx`) receives until the channel is closed and empty.
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, blocking while the channel is full (for a rendezvous channel: until a
    /// receiver takes it).
    ///
    /// Inside a goroutine, only the goroutine blocks. A value handed to a receiver that was
    /// already waiting goes straight to it, and that receiver runs next on its worker.
    ///
    /// # Errors
    ///
    /// The value back in a [`SendError`] if the channel is closed (also when it closes while
    /// this send waits).
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let site = Location::caller();
        if can_suspend() {
            return parked::send(&self.chan, value, site);
        }
        let mut op = SendOp::on(&self.chan, value);
        select_one(&mut op, Mode::Block, BlockKind::ChannelSend, site);
        op.outcome()
    }

    /// Sends if that is possible without blocking.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.state.lock().try_send(value).map_err(|e| match e {
            TrySend::Full(v) => TrySendError::Full(v),
            TrySend::Closed(v) => TrySendError::Disconnected(v),
        })
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Disconnected`], with the value.
    #[track_caller]
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_mode(value, Mode::after(timeout), Location::caller())
    }

    /// Sends, waiting for room until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    #[track_caller]
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_mode(value, Mode::Until(deadline), Location::caller())
    }

    fn send_mode(&self, value: T, mode: Mode, site: Site) -> Result<(), SendTimeoutError<T>> {
        let mut op = SendOp::on(&self.chan, value);
        if select_one(&mut op, mode, BlockKind::ChannelSend, site) {
            op.outcome()
                .map_err(|SendError(v)| SendTimeoutError::Disconnected(v))
        } else {
            let value = op
                .take_value()
                .expect("an unsent value stays with the operation");
            Err(SendTimeoutError::Timeout(value))
        }
    }

    /// Closes the channel, like Go's `close(ch)`: receivers get what is buffered, then
    /// [`RecvError`]; every send from now on fails. Every blocked receiver and sender wakes.
    ///
    /// Returns false if the channel was already closed (Go would panic; closing twice is
    /// harmless here).
    pub fn close(&self) -> bool {
        self.chan.state.lock().close()
    }
}

/// The queries both ends answer the same way.
macro_rules! channel_queries {
    ($end:ident) => {
        impl<T> $end<T> {
            /// Whether the channel is closed (values may still be buffered).
            pub fn is_closed(&self) -> bool {
                self.chan.state.lock().is_closed()
            }

            /// Values buffered now.
            pub fn len(&self) -> usize {
                self.chan.state.lock().len()
            }

            /// Whether nothing is buffered now.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The buffer's capacity: `Some(0)` for a rendezvous channel, `None` if unbounded.
            pub fn capacity(&self) -> Option<usize> {
                let cap = self.chan.state.lock().cap();
                (cap != usize::MAX).then_some(cap)
            }
        }
    };
}

channel_queries!(Sender);
channel_queries!(Receiver);

impl<T> Receiver<T> {
    /// Receives a value, blocking until one is available.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and empty.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_at(Location::caller())
    }

    /// [`recv`](Self::recv), waiting at `site` (the line that made an iterator, for one).
    #[inline]
    fn recv_at(&self, site: Site) -> Result<T, RecvError> {
        if can_suspend() {
            return parked::recv(&self.chan, site);
        }
        let mut op = RecvOp::on(&self.chan);
        select_one(&mut op, Mode::Block, BlockKind::ChannelReceive, site);
        op.outcome()
    }

    /// Receives if a value is available now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.state.lock().try_recv().map_err(|e| match e {
            TryRecv::Empty => TryRecvError::Empty,
            TryRecv::Closed => TryRecvError::Disconnected,
        })
    }

    /// Receives, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_mode(Mode::after(timeout), Location::caller())
    }

    /// Receives, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    #[track_caller]
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_mode(Mode::Until(deadline), Location::caller())
    }

    fn recv_mode(&self, mode: Mode, site: Site) -> Result<T, RecvTimeoutError> {
        let mut op = RecvOp::on(&self.chan);
        if select_one(&mut op, mode, BlockKind::ChannelReceive, site) {
            op.outcome()
                .map_err(|RecvError| RecvTimeoutError::Disconnected)
        } else {
            Err(RecvTimeoutError::Timeout)
        }
    }

    /// An iterator that receives until the channel is closed and empty. Its receives wait at
    /// the line that called `iter` (for `for v in &rx`, the line of the `for`).
    #[track_caller]
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            rx: self,
            site: Location::caller(),
        }
    }

    /// An iterator over the values available now, without blocking.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.state.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.state.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.state.lock().drop_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.state.lock().drop_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// Receives until the channel is closed and empty; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
    /// Where the iterator was made: its receives wait there. (`next` is mostly called from
    /// inside std, `sum`, `collect`..., whose line would say nothing.)
    site: Site,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv_at(self.site).ok()
    }
}

/// Receives what is available without blocking; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Receives until the channel is closed and empty, owning the receiver. Its receives wait at
/// the line that made it, as [`Iter`]'s.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
    site: Site,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv_at(self.site).ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    #[track_caller]
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    #[track_caller]
    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            rx: self,
            site: Location::caller(),
        }
    }
}
