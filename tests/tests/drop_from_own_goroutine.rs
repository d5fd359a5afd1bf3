//! Dropping a runtime from one of its own goroutines cannot wait for itself: the runtime
//! detaches and winds down on its own once its last goroutine finishes. In its own file
//! because it counts the process's worker and monitor threads, which other tests would
//! disturb.

use std::time::Instant;

use scheduler_tests::{
    HANG_LIMIT, monitor_thread_count, run_in_own_goroutine, runtime, watchdog, worker_thread_count,
};

#[test]
fn drop_from_own_goroutine_detaches_and_workers_exit_when_goroutines_finish() {
    let before = worker_thread_count();
    let monitors_before = monitor_thread_count();
    let result = watchdog("drop from own goroutine", HANG_LIMIT, || {
        run_in_own_goroutine(runtime(2), drop)
    });
    assert!(
        result.is_none(),
        "dropping a runtime from its own goroutine must not panic: {result:?}"
    );
    // No sleep stands in for synchronisation here: the exit is observed, with a bound that
    // turns "never exits" into a failure.
    let deadline = Instant::now() + HANG_LIMIT;
    while worker_thread_count() > before || monitor_thread_count() > monitors_before {
        assert!(
            Instant::now() < deadline,
            "the detached runtime's workers or monitor did not exit"
        );
        std::thread::yield_now();
    }
}
