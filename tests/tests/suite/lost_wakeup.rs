//! Many short block/wake cycles, each a chance to lose a wakeup (a wake that races with the
//! waiter parking, a worker that parks just as work arrives). Every test runs under the
//! watchdog, so a lost wakeup fails with a message instead of hanging the suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{HANG_LIMIT, runtime, watchdog};

#[test]
fn spawn_done_wait_cycles_in_a_goroutine_never_hang() {
    const CYCLES: usize = 20_000;
    let done = watchdog("20k spawn/done/wait cycles", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let hits = Arc::new(AtomicUsize::new(0));
            for cycle in 0..CYCLES {
                // A fresh group per cycle: reuse is covered in wait_group.rs.
                let wg = WaitGroup::new();
                wg.add(1);
                let (wg2, hits2) = (wg.clone(), hits.clone());
                drop(scheduler::spawn(move || {
                    hits2.fetch_add(1, Ordering::Relaxed);
                    wg2.done();
                }));
                wg.wait();
                assert_eq!(hits.load(Ordering::Relaxed), cycle + 1);
            }
            hits.load(Ordering::Relaxed)
        })
    });
    assert_eq!(done, CYCLES);
}

#[test]
fn spawn_join_cycles_from_a_plain_thread_never_hang() {
    const CYCLES: usize = 5_000;
    let sum = watchdog("plain-thread spawn/join cycles", HANG_LIMIT, || {
        let rt = runtime(2);
        (0..CYCLES)
            .map(|i| rt.spawn(move || i).join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(sum, CYCLES * (CYCLES - 1) / 2);
}

#[test]
fn plain_thread_waits_for_goroutine_done_cycles_never_hang() {
    const CYCLES: usize = 5_000;
    watchdog("plain-thread WaitGroup cycles", HANG_LIMIT, || {
        let rt = runtime(2);
        let hits = Arc::new(AtomicUsize::new(0));
        for cycle in 0..CYCLES {
            let wg = WaitGroup::new();
            wg.add(1);
            let (wg2, hits2) = (wg.clone(), hits.clone());
            rt.spawn(move || {
                hits2.fetch_add(1, Ordering::Relaxed);
                wg2.done();
            });
            wg.wait();
            assert_eq!(hits.load(Ordering::Relaxed), cycle + 1);
        }
    });
}

#[test]
fn block_on_cycles_never_hang() {
    const CYCLES: usize = 5_000;
    let sum = watchdog("block_on cycles", HANG_LIMIT, || {
        let rt = runtime(2);
        (0..CYCLES).map(|i| rt.block_on(move || i)).sum::<usize>()
    });
    assert_eq!(sum, CYCLES * (CYCLES - 1) / 2);
}

#[test]
fn gate_release_wakes_every_parked_goroutine_each_round() {
    // Each round parks goroutines on a gate (on both workers), then opens it from the main
    // goroutine: wakes cross threads and race with goroutines that are still parking.
    const ROUNDS: usize = 1_000;
    const WAITERS: usize = 8;
    let released = watchdog("gate rounds", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let released = Arc::new(AtomicUsize::new(0));
            for _ in 0..ROUNDS {
                let gate = WaitGroup::new();
                gate.add(1);
                let finished = WaitGroup::new();
                for _ in 0..WAITERS {
                    let (gate, released) = (gate.clone(), released.clone());
                    finished.go(move || {
                        gate.wait();
                        released.fetch_add(1, Ordering::Relaxed);
                    });
                }
                // Let some of them start and park before the gate opens.
                scheduler::yield_now();
                gate.done();
                finished.wait();
            }
            released.load(Ordering::Relaxed)
        })
    });
    assert_eq!(released, ROUNDS * WAITERS);
}

#[test]
fn join_chains_across_workers_never_hang() {
    // Each goroutine joins the one spawned before it, so wakes ripple down a chain whose links
    // sit on different workers.
    const ROUNDS: usize = 200;
    const LINKS: usize = 50;
    watchdog("join chains", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            for round in 0..ROUNDS {
                let mut prev: JoinHandle<usize> = scheduler::spawn(|| 0);
                for _ in 0..LINKS {
                    prev = scheduler::spawn(move || {
                        scheduler::yield_now();
                        prev.join().unwrap() + 1
                    });
                }
                assert_eq!(prev.join().unwrap(), LINKS, "round {round}");
            }
        });
    });
}
