//! Worker threads and the monitor thread do not outlive their runtime. This file holds a single test so that its
//! process runs no other test: the thread counts it reads from `/proc/self/task` then move
//! only because of the runtimes it creates.

use std::time::{Duration, Instant};

use scheduler_tests::{
    HANG_LIMIT, monitor_thread_count, runtime, thread_names, watchdog, worker_thread_count,
};

/// Polls `count` until it equals `expected` or `limit` passes; returns the last count.
///
/// A joined thread may linger in `/proc/self/task` for a moment: `pthread_join` returns when
/// the kernel clears the thread's tid, slightly before the thread is reaped.
fn settle(expected: usize, limit: Duration, count: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let now = count();
        if now == expected || Instant::now() >= deadline {
            return now;
        }
        std::thread::yield_now();
    }
}

#[test]
fn dropped_runtimes_leave_no_runtime_threads_behind() {
    const CYCLES: usize = 50;
    const PROCS: usize = 4;
    watchdog("create/drop cycles", HANG_LIMIT, || {
        let before = thread_names().len();
        assert_eq!(worker_thread_count(), 0, "workers before any runtime");
        for cycle in 0..CYCLES {
            let rt = runtime(PROCS);
            // The workers and the monitor exist while the runtime does (a new thread names
            // itself once it runs, so its name may show up a moment after `build` returned)...
            assert_eq!(thread_names().len(), before + PROCS + 1, "cycle {cycle}");
            let named = settle(PROCS, Duration::from_secs(10), worker_thread_count);
            assert_eq!(named, PROCS, "cycle {cycle}: worker threads by name");
            let monitors = settle(1, Duration::from_secs(10), monitor_thread_count);
            assert_eq!(monitors, 1, "cycle {cycle}: monitor thread by name");
            let v = rt.block_on(move || {
                let hs: Vec<_> = (0..8).map(|i| scheduler::spawn(move || i)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
            });
            assert_eq!(v, 28);
            drop(rt);
            // ...and are gone (joined) once it is dropped.
            let left = settle(0, Duration::from_secs(10), worker_thread_count);
            assert_eq!(left, 0, "cycle {cycle}: worker threads survived the drop");
            let left = settle(0, Duration::from_secs(10), monitor_thread_count);
            assert_eq!(
                left, 0,
                "cycle {cycle}: the monitor thread survived the drop"
            );
        }
        // Also after shutdown_timeout, and after a runtime that was never used.
        runtime(PROCS).shutdown_timeout(HANG_LIMIT).unwrap();
        drop(runtime(PROCS));
        let after = settle(before, Duration::from_secs(10), || thread_names().len());
        assert_eq!(after, before, "threads before {before}, after {after}");
    });
}
