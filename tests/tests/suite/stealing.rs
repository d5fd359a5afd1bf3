//! Work stealing: goroutines spawned on one worker get run by the others.
//!
//! Whether an idle worker wakes up in time to steal depends on OS scheduling, so these tests
//! do not hope for it: the first goroutine to start on each worker holds that worker (it
//! spins without yielding, and goroutines are not preempted) until a goroutine has started
//! on a *different* worker. With one worker held, the goroutines still queued can only run
//! if another worker steals them; the runtime wakes an idle worker when a goroutine is pushed
//! onto a local deque, so the test passes if and only if stealing works. A bounded spin turns
//! "nobody ever stole" into a failure with a message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;

use scheduler::{JoinHandle, Runtime, WaitGroup};
use scheduler_tests::{HANG_LIMIT, SPIN_LIMIT, ThreadSet, busy_work, spin_until, watchdog};

/// Busy-work rounds per goroutine: a few milliseconds each in a debug build.
const ROUNDS: u64 = 1_000_000;

/// A runtime of `procs` workers and no spare worker. The goroutines here wait on a std mutex
/// (`ThreadSet`) and yield their thread while they spin, so on a loaded machine the monitor
/// may rightly judge a worker blocked and start a spare for it, which would then run
/// goroutines too: these tests count the base workers that took part in a fan-out.
fn workers_only(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .max_spare_workers(0)
        .build()
        .unwrap()
}

#[test]
fn steal_balances_cpu_fanout_over_both_workers() {
    let ran_on = watchdog("cpu fan-out", HANG_LIMIT, || {
        let rt = workers_only(2);
        rt.block_on(|| {
            let threads = ThreadSet::new();
            let handles: Vec<JoinHandle<(ThreadId, u64)>> = (0..64_u64)
                .map(|i| {
                    let threads = threads.clone();
                    scheduler::spawn(move || {
                        let me = threads.record_current();
                        spin_until(
                            "a goroutine waits for one to start on the other worker \
                             (no worker stole from the spawning worker's deque)",
                            SPIN_LIMIT,
                            || threads.len() >= 2,
                        );
                        (me, busy_work(i + 1, ROUNDS))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    let (thread, result) = h.join().unwrap();
                    assert_ne!(result, 0);
                    thread
                })
                .collect::<Vec<ThreadId>>()
        })
    });
    let mut distinct = ran_on.clone();
    distinct.sort_by_key(|t| format!("{t:?}"));
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        2,
        "64 goroutines spawned on one worker ran on {} thread(s), expected both workers",
        distinct.len()
    );
}

#[test]
fn steal_spreads_fanout_to_every_worker_of_four() {
    // Each worker is held by its first goroutine until all four workers have started one, so
    // the three workers that did not spawn must all have stolen.
    const PROCS: usize = 4;
    let workers = watchdog("fan-out on 4 procs", HANG_LIMIT, || {
        let rt = workers_only(PROCS);
        rt.block_on(|| {
            let threads = ThreadSet::new();
            let wg = WaitGroup::new();
            for i in 0..256_u64 {
                let threads = threads.clone();
                wg.go(move || {
                    threads.record_current();
                    spin_until(
                        "a goroutine waits until every worker has started one",
                        SPIN_LIMIT,
                        || threads.len() >= PROCS,
                    );
                    busy_work(i + 1, ROUNDS / 10)
                });
            }
            wg.wait();
            threads.len()
        })
    });
    assert_eq!(workers, PROCS);
}

#[test]
fn steal_takes_goroutines_spawned_by_a_goroutine_deep_in_a_tree() {
    // Goroutines spawned by a non-main goroutine, on whichever worker it runs, are stolen too.
    let (threads, total) = watchdog("nested fan-out", HANG_LIMIT, || {
        let rt = workers_only(2);
        let threads = ThreadSet::new();
        let total = Arc::new(AtomicUsize::new(0));
        let (t, n) = (threads.clone(), total.clone());
        rt.block_on(move || {
            let spawner = scheduler::spawn(move || {
                let wg = WaitGroup::new();
                for _ in 0..32 {
                    let (t, n) = (t.clone(), n.clone());
                    wg.go(move || {
                        t.record_current();
                        spin_until("nested fan-out waits for a thief", SPIN_LIMIT, || {
                            t.len() >= 2
                        });
                        n.fetch_add(1, Ordering::Relaxed);
                    });
                }
                wg.wait();
            });
            spawner.join().unwrap();
        });
        (threads.len(), total.load(Ordering::Relaxed))
    });
    assert_eq!(total, 32);
    assert_eq!(threads, 2);
}
