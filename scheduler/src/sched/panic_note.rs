//! Names the goroutine in the panic message of a goroutine that panics.
//!
//! std's panic hook names the thread (`thread 'scheduler-worker-0' panicked at ...`), which
//! says nothing about which goroutine it was. The first runtime of the process wraps the hook
//! in place then with one that, on a worker thread running a goroutine, prints a line naming
//! the goroutine first (id, name, spawn site), then calls the hook it wrapped. A hook set
//! later replaces both, as `std::panic::set_hook` always does.

use std::sync::Once;

use super::current;

/// Wraps the process's panic hook (module doc), once.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(goroutine) = running_goroutine() {
                eprintln!("scheduler: panic in {goroutine}:");
            }
            previous(info);
        }));
    });
}

/// `goroutine 7 "name" (spawned at src/main.rs:12:5)` for the goroutine running on this
/// thread, if one runs.
fn running_goroutine() -> Option<String> {
    current::with_worker(|worker| {
        let header = worker?.current_header()?;
        // SAFETY: the header of the goroutine running right here, whose TaskRef its worker
        // holds for the whole resume.
        Some(unsafe { &*header }.describe())
    })
}
