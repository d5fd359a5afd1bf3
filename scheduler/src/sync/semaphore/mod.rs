//! A weighted counting semaphore, Go's `x/sync/semaphore.Weighted`: bound how many goroutines,
//! or how many units of a resource, are in use at once.
//!
//! * [`raw`]: the semaphore: its state word, its queue of weighted requests, and the
//!   hand-over that serves them in arrival order;
//! * [`acquire`]: taking borrowed permits, one or `n` at a time, with or without a bound on
//!   the wait;
//! * [`owned`]: the same for permits that own a reference to the semaphore and move into
//!   goroutines;
//! * [`permit`]: the permits, which return what they hold when dropped.

mod acquire;
mod owned;
mod permit;
mod raw;

pub use permit::{OwnedSemaphorePermit, SemaphorePermit};
pub use raw::Semaphore;
