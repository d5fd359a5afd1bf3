//! Readiness I/O under the workers: each worker's poller, the registration of a file
//! descriptor with the pollers its waiters sleep in, and the process-wide poller for waiters
//! that are not goroutines.
//!
//! A file descriptor in non-blocking mode is registered, edge-triggered, with the poller of
//! every worker whose goroutines wait on it ([`registration`]), the first time one of them
//! waits. A goroutine whose system call would block parks on a kernel
//! [`Waiter`](crate::wait::waiter::Waiter) queued on the registration; the poller's owner
//! ([`poller`]) dispatches the edge to that queue, and the wake takes the same path as every
//! other wake, so the goroutine runs again on its own worker. A worker with goroutines waiting
//! for I/O sleeps in its poller instead of on its parker (`worker/park.rs`), and a busy one
//! polls without blocking now and then, so readiness is never starved. Plain threads (and
//! goroutines that unwind, which wait as threads) register with the [`global`] poller, whose
//! thread delivers their wakes.
//!
//! `docs/design.md` ("Network I/O") argues the choices: `mio` rather than `polling`, a poller
//! per worker rather than one shared, edge-triggered registration with a per-direction edge
//! count rather than re-arming a one-shot interest at every wait.

pub(crate) mod global;
pub(crate) mod poller;
pub(crate) mod registration;

use std::io;
use std::sync::Arc;

use super::current;
use poller::Poller;

/// The poller that delivers readiness to a waiter made for the caller: its worker's for a
/// goroutine that can park, the process-wide one for a plain thread (or an unwinding
/// goroutine, which waits as a thread). Matches `WaitHere::for_current`.
pub(crate) fn poller_for_current() -> io::Result<Arc<Poller>> {
    if !one_shared_poller()
        && !std::thread::panicking()
        && let Some(poller) = current::with_worker(|worker| match worker {
            Some(worker) if worker.current_header().is_some() => Some(worker.poller()),
            _ => None,
        })
    {
        return poller;
    }
    global::poller().cloned()
}

/// The environment variable that, set to `1` when a process first waits for I/O, sends every
/// wait to the process-wide poller: one shared poller whose thread wakes every goroutine
/// across threads, as a shared netpoller would. For measuring the per-worker design against
/// that one (docs/benchmarks.md); not for production.
pub(crate) const SHARED_POLLER_ENV: &str = "SCHEDULER_SHARED_POLLER";

fn one_shared_poller() -> bool {
    static SHARED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHARED.get_or_init(|| std::env::var_os(SHARED_POLLER_ENV).is_some_and(|v| v == "1"))
}
