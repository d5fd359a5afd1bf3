//! Time: sleeping goroutines, and timers that wake them.
//!
//! [`sleep`] and [`sleep_until`] park a goroutine (or block a plain thread) until a deadline.

mod sleep;
pub(crate) mod timers;

pub use sleep::{sleep, sleep_until};
