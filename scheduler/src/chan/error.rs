//! Errors of channel operations. "Disconnected" means closed: by [`Sender::close`], by
//! dropping every `Sender`, or by dropping every `Receiver`.
//!
//! [`Sender::close`]: super::Sender::close

use std::error::Error;
use std::fmt;

/// Why a [`Context`](crate::context::Context) ended. Public as
/// `scheduler::context::ContextError`; defined beside the channel errors that carry it, since
/// channels sit below contexts (a context's `done` is a channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Its `CancelHandle` (or an ancestor's) cancelled it.
    Canceled,
    /// Its deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Canceled => f.write_str("context canceled"),
            ContextError::DeadlineExceeded => f.write_str("context deadline exceeded"),
        }
    }
}

impl std::error::Error for ContextError {}

/// [`Sender::send`](super::Sender::send) on a closed channel; holds the value back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// [`Sender::try_send`](super::Sender::try_send) failed; holds the value back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full (or, for a rendezvous channel, no receiver is waiting).
    Full(T),
    /// The channel is closed.
    Disconnected(T),
}

/// [`Sender::send_timeout`](super::Sender::send_timeout) failed; holds the value back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// No room before the deadline.
    Timeout(T),
    /// The channel is closed.
    Disconnected(T),
}

/// [`Sender::send_ctx`](super::Sender::send_ctx) failed; holds the value back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendCtxError<T> {
    /// The context ended first.
    Context(ContextError, T),
    /// The channel is closed.
    Disconnected(T),
}

/// [`Receiver::recv`](super::Receiver::recv) on a closed, empty channel.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// [`Receiver::try_recv`](super::Receiver::try_recv) failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// The channel is closed and empty.
    Disconnected,
}

/// [`Receiver::recv_timeout`](super::Receiver::recv_timeout) failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// The channel is closed and empty.
    Disconnected,
}

/// [`Receiver::recv_ctx`](super::Receiver::recv_ctx) failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvCtxError {
    /// The context ended first.
    Context(ContextError),
    /// The channel is closed and empty.
    Disconnected,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the channel was closed.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
}

impl<T> SendCtxError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendCtxError::Context(_, v) | SendCtxError::Disconnected(v) => v,
        }
    }
}

macro_rules! value_debug {
    ($($ty:ident { $($variant:ident),* }),*) => {$(
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$variant(..) => f.write_str(concat!(stringify!($ty), "::", stringify!($variant), "(..)")),)*
                }
            }
        }
    )*};
}

value_debug!(
    TrySendError { Full, Disconnected },
    SendTimeoutError {
        Timeout,
        Disconnected
    },
    SendCtxError {
        Context,
        Disconnected
    }
);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out sending on a channel"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> fmt::Display for SendCtxError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendCtxError::Context(err, _) => write!(f, "sending on a channel: {err}"),
            SendCtxError::Disconnected(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on a closed, empty channel")
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on a closed, empty channel"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out receiving on a channel"),
            RecvTimeoutError::Disconnected => f.write_str("receiving on a closed, empty channel"),
        }
    }
}

impl fmt::Display for RecvCtxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvCtxError::Context(err) => write!(f, "receiving on a channel: {err}"),
            RecvCtxError::Disconnected => f.write_str("receiving on a closed, empty channel"),
        }
    }
}

impl<T> Error for SendError<T> {}
impl<T> Error for TrySendError<T> {}
impl<T> Error for SendTimeoutError<T> {}
impl<T> Error for SendCtxError<T> {}
impl Error for RecvError {}
impl Error for TryRecvError {}
impl Error for RecvTimeoutError {}
impl Error for RecvCtxError {}
