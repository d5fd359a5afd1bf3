//! The scheduler: workers, their queues, stealing, and the idle/park protocol.
//!
//! `docs/design.md` tells the whole story; each file here holds one part of it:
//! [`worker`] (the loop and its queues), [`idle`] (who searches, who sleeps, and why no wakeup
//! is lost), [`parker`] (one worker's sleep), [`wake`] (making a parked goroutine runnable),
//! [`context`] (what the current thread is running), [`shared`] (what workers share),
//! [`stats`] (the counters behind the runtime's metrics), [`monitor`] (the thread that notices
//! goroutines running too long and stuck workers), [`spare`] (the workers it starts for
//! workers blocked in system calls) and [`deadlock`] (when `block_on` reports one).

pub(crate) mod admission;
pub(crate) mod blocking;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod deadlock;
pub(crate) mod idle;
pub(crate) mod join_handle;
pub(crate) mod monitor;
pub(crate) mod parker;
pub(crate) mod shared;
pub(crate) mod spare;
pub(crate) mod spawn_error;
pub(crate) mod stats;
pub(crate) mod timers;
pub(crate) mod wait;
pub(crate) mod wake;
pub(crate) mod worker;

pub(crate) use shared::Shared;
pub(crate) use wake::unpark_owned;
