//! The scheduler: workers, their queues, stealing, and the idle/park protocol. It sits on the
//! goroutine layer and the wait kernel, and imports nothing of the primitives above it.
//!
//! `docs/design.md` tells the whole story; each file here holds one part of it:
//!
//! * running goroutines: [`worker`] (the loop and its queues), [`current`] (what the current
//!   thread is running: its worker, its goroutine; suspending it), [`wake`] (making a parked
//!   goroutine runnable), [`wait`] (how a goroutine waits on a kernel waiter), [`timers`]
//!   (setting a timer where the caller runs), [`join_handle`] (waiting for a goroutine);
//! * I/O: [`io`] (each worker's readiness poller, and the registrations of file descriptors
//!   with them);
//! * sharing work: [`shared`] (what workers share, the spawn path), [`idle`] (who searches,
//!   who sleeps, and why no wakeup is lost), [`parker`] (one worker's sleep), [`admission`]
//!   (the `max_goroutines` gate);
//! * watching: [`monitor`] (goroutines running too long, stuck workers), [`spare`] (workers
//!   started for workers blocked in system calls), [`deadlock`] (when `block_on` reports
//!   one), [`stall`] (telling the user about goroutines that hold their worker), [`stats`]
//!   (the counters behind the runtime's metrics), [`registry`] (every live goroutine, for the
//!   dump), [`clock`] (the coarse clock that stamps parks), [`trace`] (recording an execution
//!   trace);
//! * the rest of a runtime: [`blocking`] (the pool of `spawn_blocking`), [`config`] (its
//!   settings), [`spawn_error`] (why a spawn is refused), [`panic_note`] (naming the
//!   goroutine in a panic message).

pub(crate) mod admission;
pub(crate) mod blocking;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod current;
pub(crate) mod deadlock;
pub(crate) mod idle;
pub(crate) mod inbox;
pub(crate) mod io;
pub(crate) mod join_handle;
pub(crate) mod monitor;
pub(crate) mod panic_note;
pub(crate) mod parker;
pub(crate) mod registry;
pub(crate) mod scoped;
pub(crate) mod shared;
pub(crate) mod spare;
pub(crate) mod spawn_error;
pub(crate) mod stall;
pub(crate) mod stats;
pub(crate) mod timers;
pub(crate) mod trace;
pub(crate) mod wait;
pub(crate) mod wake;
pub(crate) mod worker;

pub(crate) use shared::Shared;
pub(crate) use wake::unpark_owned;
