//! The wait kernel: how anything in the crate waits, at the bottom of every layer.
//!
//! It imports nothing of the crate. What is here:
//!
//! * [`waiter`]: one blocked party (a goroutine or a plain thread) and the one-CAS protocol
//!   that ends its wait exactly once, by a notification or a time-out; the queue of waiters a
//!   primitive keeps;
//! * [`lock`]: the raw lock that every primitive's state sits behind, which `select` takes in
//!   address order for all its arms at once;
//! * [`timers`]: the heap of timers a worker fires, and the process-wide timer thread;
//! * [`block_kind`]: what a parked goroutine waits for, for the metrics, and the [`Site`]
//!   (the user's line) it waits at, for the goroutine dump;
//! * [`cancelled`]: the payload a cancelled goroutine unwinds with;
//! * [`census`]: which threads of the process could still wake a goroutine, for deadlock
//!   detection.
//!
//! How a *goroutine* parks while it waits, and how it is woken, belongs to the scheduler
//! above (`crate::sched::wait`, `crate::sched::wake`), which the kernel reaches only through
//! the [`Wake`](waiter::Wake) trait.

pub(crate) mod block_kind;
pub(crate) mod cancelled;
pub(crate) mod census;
pub(crate) mod lock;
pub(crate) mod timers;
pub(crate) mod waiter;

pub(crate) use block_kind::{BlockKind, Site};
pub use cancelled::Cancelled;
