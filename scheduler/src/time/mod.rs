//! Time: sleeping goroutines, and timers that wake them.
//!
//! [`sleep`] and [`sleep_until`] park a goroutine (or block a plain thread) until a deadline;
//! [`sleep_ctx`] also returns when a context ends. [`after`] and [`tick`] deliver the time on a
//! channel, for use in [`select!`](crate::select!). [`Timer`] and [`Ticker`] are the same with
//! a handle that stops them and sets them again (Go's `time.NewTimer` and `time.NewTicker`),
//! and [`after_func`](fn@after_func) runs a function in a new goroutine after a time (Go's
//! `time.AfterFunc`).
//!
//! # Accuracy
//!
//! A goroutine's timer lives on its worker. An idle worker sleeps in the kernel exactly until
//! its earliest timer is due, so on an idle machine a timer fires late by the OS's wakeup
//! latency: typically 50-200 us, well under a millisecond. A busy worker fires due timers
//! between goroutines; a goroutine that computes without blocking or yielding delays the
//! timers of its worker until it does (or reaches a [`checkpoint`](crate::checkpoint) after
//! its time slice).

mod after_func;
mod arming;
mod channels;
mod sleep;
mod ticker;
mod timer;

pub(crate) use after_func::after_func_on;
pub use after_func::{AfterFunc, after_func};
pub use channels::{after, tick};
pub use sleep::{sleep, sleep_ctx, sleep_until};
pub use ticker::Ticker;
pub use timer::Timer;
