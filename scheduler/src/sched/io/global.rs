//! The process-wide poller for waiters that are not goroutines (plain threads, blocking-pool
//! jobs, goroutines that wait while unwinding): one thread, started at the first such wait,
//! that polls for ever and wakes them as the workers wake their goroutines.

use std::io;
use std::sync::{Arc, OnceLock};
use std::thread;

use super::poller::Poller;

static GLOBAL: OnceLock<Arc<Poller>> = OnceLock::new();

/// The process-wide poller if its thread was started.
pub(crate) fn started() -> Option<&'static Arc<Poller>> {
    GLOBAL.get()
}

/// The process-wide poller, with its thread started.
pub(crate) fn poller() -> io::Result<&'static Arc<Poller>> {
    if let Some(poller) = GLOBAL.get() {
        return Ok(poller);
    }
    let poller = Poller::new()?;
    let mut started = None;
    let poller = GLOBAL.get_or_init(|| {
        started = Some(poller.clone());
        poller
    });
    if let Some(owner) = started {
        thread::Builder::new()
            .name("scheduler-io".into())
            .spawn(move || {
                let _census =
                    crate::wait::census::crate_thread(crate::wait::census::SERVICE_THREADS);
                loop {
                    owner.poll(None);
                }
            })
            .expect("scheduler: cannot start the process-wide I/O poller thread");
    }
    Ok(poller)
}
