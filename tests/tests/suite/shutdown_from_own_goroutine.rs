//! Shutting a runtime down from one of its own goroutines is refused with a panic (it would
//! wait for itself), as `Runtime::shutdown_timeout` documents. In its own file: if the refusal
//! aborts the process instead of panicking, only this test binary dies.

use std::time::Duration;

use scheduler_tests::{HANG_LIMIT, run_in_own_goroutine, runtime, watchdog};

#[test]
fn shutdown_timeout_from_own_goroutine_panics_instead_of_aborting() {
    // Regression: `shutdown_timeout(self)` panics while it still owns the runtime, and the
    // runtime's `Drop` then runs during the unwind; it used to panic again there ("panic in a
    // destructor during cleanup"), aborting the process.
    let msg = watchdog("shutdown_timeout from own goroutine", HANG_LIMIT, || {
        run_in_own_goroutine(runtime(2), |rt| {
            let _ = rt.shutdown_timeout(Duration::from_millis(10));
        })
    });
    let msg = msg.expect("shutting a runtime down from its own goroutine must panic");
    assert!(msg.contains("own goroutines"), "message: {msg:?}");
}
