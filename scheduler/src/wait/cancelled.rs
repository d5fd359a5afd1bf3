//! The payload a cancelled goroutine unwinds with.

use std::fmt;

/// The panic payload of a goroutine that
/// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) cancelled because it had
/// not finished by the deadline: its [`JoinHandle::join`](crate::JoinHandle::join) returns
/// `Err` holding this.
///
/// ```
/// # let payload: Box<dyn std::any::Any + Send> = Box::new(scheduler::Cancelled);
/// assert!(payload.is::<scheduler::Cancelled>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("goroutine cancelled by a runtime shutdown")
    }
}
