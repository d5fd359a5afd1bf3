//! Channels: Go's `chan`, multi-producer and multi-consumer.
//!
//! [`bounded`] makes a channel with a buffer of `cap` values; `bounded(0)` is a *rendezvous*
//! channel (Go's unbuffered `make(chan T)`), where a send completes only when a receiver takes
//! the value, handed over directly. [`unbounded`] never blocks senders.
//!
//! Blocking calls park a goroutine and block a plain thread, so channels connect goroutines
//! with each other and with the outside world. Every blocking call has a variant with a
//! timeout, a deadline and a [`Context`](crate::context::Context), and
//! [`select!`](crate::select!) waits on several operations at once.
//!
//! # Examples
//!
//! ```
//! use scheduler::chan;
//!
//! let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
//! let total = rt.block_on(|| {
//!     let (tx, rx) = chan::bounded(0);
//!     for i in 1..=10 {
//!         let tx = tx.clone();
//!         scheduler::spawn(move || tx.send(i).unwrap());
//!     }
//!     drop(tx); // the channel closes when the last sender is gone
//!     rx.iter().sum::<i32>()
//! });
//! assert_eq!(total, 55);
//! ```

mod core;
mod endpoints;
// Also holds `ContextError`, public at `scheduler::context::ContextError`.
pub(crate) mod error;
mod ops;
mod parked;

pub use endpoints::{IntoIter, Iter, Receiver, Sender, TryIter};
pub use error::{
    RecvCtxError, RecvError, RecvTimeoutError, SendCtxError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
#[doc(hidden)]
pub use ops::{AsReceiver, AsSender, RecvOp, SendOp};

use self::core::Chan;
use crate::wait::census;

/// A channel with a buffer of `cap` values; `cap == 0` makes a rendezvous channel.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    census::note_use();
    pair(Chan::new(cap, false))
}

/// A channel whose buffer grows as needed: sends never block.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    census::note_use();
    pair(Chan::new(usize::MAX, false))
}

/// A channel that does not close when its senders are gone (timer channels: Go never closes
/// them, so a second receive blocks instead of failing).
pub(crate) fn never_closing<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    pair(Chan::new(cap, true))
}

fn pair<T>(chan: std::sync::Arc<Chan<T>>) -> (Sender<T>, Receiver<T>) {
    (Sender { chan: chan.clone() }, Receiver { chan })
}
