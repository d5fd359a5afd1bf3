//! `WaitGroup`: waiting from goroutines and plain threads, reuse, `go`, and misuse.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{HANG_LIMIT, expect_panic, panic_message, runtime, watchdog};

#[test]
fn wait_group_wakes_goroutine_and_thread_waiters_together() {
    watchdog("goroutine + thread waiters", HANG_LIMIT, || {
        let rt = runtime(2);
        for round in 0..50 {
            let wg = WaitGroup::new();
            wg.add(1);
            let released = Arc::new(AtomicBool::new(false));
            let (ready_tx, ready_rx) = mpsc::channel();

            // Ten goroutine waiters and three plain-thread waiters on one group.
            let goroutines: Vec<JoinHandle<bool>> = (0..10)
                .map(|_| {
                    let (wg, released, ready) = (wg.clone(), released.clone(), ready_tx.clone());
                    rt.spawn(move || {
                        ready.send(()).unwrap();
                        wg.wait();
                        released.load(Ordering::Relaxed)
                    })
                })
                .collect();
            let threads: Vec<std::thread::JoinHandle<bool>> = (0..3)
                .map(|_| {
                    let (wg, released, ready) = (wg.clone(), released.clone(), ready_tx.clone());
                    std::thread::spawn(move || {
                        ready.send(()).unwrap();
                        wg.wait();
                        released.load(Ordering::Relaxed)
                    })
                })
                .collect();
            for _ in 0..13 {
                ready_rx.recv().unwrap();
            }
            // Every waiter is in (or about to enter) `wait`; none may have returned early.
            assert_eq!(wg.count(), 1);
            assert!(goroutines.iter().all(|h| !h.is_finished()));
            released.store(true, Ordering::Relaxed);
            wg.done();
            for h in goroutines {
                assert!(
                    h.join().unwrap(),
                    "round {round}: a goroutine waiter returned before done()"
                );
            }
            for t in threads {
                assert!(
                    t.join().unwrap(),
                    "round {round}: a thread waiter returned before done()"
                );
            }
        }
    });
}

#[test]
fn wait_group_reused_over_many_rounds() {
    watchdog("wait group reuse", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let wg = WaitGroup::new();
            let work = Arc::new(AtomicUsize::new(0));
            for round in 1..=20 {
                for _ in 0..round {
                    wg.add(1);
                    let (wg, work) = (wg.clone(), work.clone());
                    drop(scheduler::spawn(move || {
                        scheduler::yield_now();
                        work.fetch_add(1, Ordering::Relaxed);
                        wg.done();
                    }));
                }
                wg.wait();
                assert_eq!(wg.count(), 0, "round {round}");
                // Everything done before `done` is visible after `wait`.
                assert_eq!(
                    work.load(Ordering::Relaxed),
                    round * (round + 1) / 2,
                    "round {round}: wait returned before every done"
                );
            }
        });
    });
}

#[test]
fn wait_group_waited_from_plain_thread_for_goroutines() {
    watchdog("thread waits for goroutines", HANG_LIMIT, || {
        let rt = runtime(2);
        let wg = WaitGroup::new();
        for round in 0..20 {
            let hits = Arc::new(AtomicUsize::new(0));
            for _ in 0..50 {
                wg.add(1);
                let (wg, hits) = (wg.clone(), hits.clone());
                rt.spawn(move || {
                    hits.fetch_add(1, Ordering::Relaxed);
                    wg.done();
                });
            }
            wg.wait();
            assert_eq!(hits.load(Ordering::Relaxed), 50, "round {round}");
        }
    });
}

#[test]
fn wait_group_wait_returns_at_once_when_zero() {
    watchdog("wait at zero", HANG_LIMIT, || {
        let wg = WaitGroup::new();
        wg.wait(); // plain thread
        assert_eq!(wg.count(), 0);
        let rt = runtime(1);
        rt.block_on(move || {
            wg.wait(); // goroutine
            wg.add(2);
            assert_eq!(wg.count(), 2);
            wg.done();
            wg.done();
            wg.wait();
            assert_eq!(wg.count(), 0);
        });
    });
}

#[test]
fn wait_group_go_counts_done_even_when_the_closure_panics() {
    watchdog("wg.go with panics", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let wg = WaitGroup::new();
            let handles: Vec<JoinHandle<usize>> = (0..20)
                .map(|i| {
                    wg.go(move || {
                        scheduler::yield_now();
                        if i % 2 == 0 {
                            panic!("wg.go goroutine {i} fails");
                        }
                        i
                    })
                })
                .collect();
            // Would hang if a panicking closure skipped its `done`.
            wg.wait();
            assert_eq!(wg.count(), 0);
            for (i, h) in handles.into_iter().enumerate() {
                match h.join() {
                    Ok(v) => {
                        assert_eq!(i % 2, 1, "goroutine {i} should have panicked");
                        assert_eq!(v, i);
                    }
                    Err(payload) => {
                        assert_eq!(i % 2, 0, "goroutine {i} should have returned");
                        assert_eq!(
                            panic_message(&*payload),
                            Some(format!("wg.go goroutine {i} fails").as_str())
                        );
                    }
                }
            }
        });
    });
}

#[test]
fn wait_group_go_outside_a_runtime_panics() {
    let wg = WaitGroup::new();
    let msg = expect_panic(|| {
        wg.go(|| ());
    });
    assert!(msg.contains("outside a runtime"), "message: {msg:?}");
    assert_eq!(
        wg.count(),
        0,
        "a refused go must not leave the counter raised"
    );
}

#[test]
fn wait_group_negative_counter_panics() {
    let wg = WaitGroup::new();
    let msg = expect_panic(|| wg.done());
    assert_eq!(msg, "scheduler: negative WaitGroup counter");
    // The counter stays at zero and the group still works.
    assert_eq!(wg.count(), 0);
    wg.add(1);
    wg.done();
    assert_eq!(wg.count(), 0);
    assert_eq!(
        expect_panic(|| wg.done()),
        "scheduler: negative WaitGroup counter"
    );
}

#[test]
fn wait_group_negative_counter_in_a_goroutine_fails_its_join() {
    watchdog("negative counter in a goroutine", HANG_LIMIT, || {
        let rt = runtime(1);
        let err = rt
            .spawn(|| WaitGroup::new().done())
            .join()
            .expect_err("done below zero must panic");
        assert_eq!(
            panic_message(&*err),
            Some("scheduler: negative WaitGroup counter")
        );
        // The worker survived.
        assert_eq!(rt.block_on(|| 3), 3);
    });
}

#[test]
fn wait_group_clones_share_one_counter() {
    let a = WaitGroup::new();
    let b = a.clone();
    a.add(3);
    assert_eq!(b.count(), 3);
    b.done();
    assert_eq!(a.count(), 2);
    assert!(format!("{a:?}").contains("count: 2"));
    a.done();
    b.done();
    assert_eq!(a.count(), 0);
}

/// Runs `rounds` rounds of `add(1)` then `wait()` on one group, each completed by a helper
/// thread's `done()`. With `poll_first`, every other round polls `count()` down to zero
/// before it calls `wait()`, so that `wait` returns at once and the next round starts while
/// the helper may still be inside that `done()`. Returns the first round whose `wait`
/// returned before its own `done`, with the rounds done then and the counter.
fn first_early_wait_return(rounds: usize, poll_first: bool) -> Option<(usize, usize, usize)> {
    let wg = WaitGroup::new();
    let done_rounds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (w, d, s) = (wg.clone(), done_rounds.clone(), stop.clone());
    // Completes each round as soon as it sees it opened.
    let helper = std::thread::spawn(move || {
        loop {
            while w.count() == 0 {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::yield_now();
            }
            d.fetch_add(1, Ordering::Relaxed);
            w.done();
        }
    });
    let mut failure = None;
    for round in 1..=rounds {
        wg.add(1);
        if poll_first && round % 2 == 0 {
            while wg.count() != 0 {
                std::thread::yield_now();
            }
        }
        wg.wait();
        // Everything before the round's `done` happens-before `wait` returns.
        let completed = done_rounds.load(Ordering::Relaxed);
        if completed < round {
            failure = Some((round, completed, wg.count()));
            // Let the helper finish the open round so that it can stop.
            wg.wait();
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    helper.join().unwrap();
    failure
}

#[test]
fn wait_group_reuse_is_not_released_by_the_previous_rounds_done() {
    // Reuse as documented: the only waiter's `wait` has returned before the next `add`, so
    // each `wait` must return only after the `done` of its own round. Plain threads only: the
    // race is in the WaitGroup itself, and it needs two CPUs to show. (Regression: the final
    // `done` of a round used to drop the counter to zero and only afterwards lock and take the
    // waiter list, so a waiter of the next round that registered in between was released by
    // the old `done` while the counter was 1; it showed within 0.4k-60k rounds.)
    const ROUNDS: usize = 30_000;
    watchdog("WaitGroup reuse rounds", HANG_LIMIT, || {
        for poll_first in [false, true] {
            if let Some((round, completed, count)) = first_early_wait_return(ROUNDS, poll_first) {
                panic!(
                    "round {round} (poll_first: {poll_first}): wait returned with only \
                     {completed} rounds done (counter {count}): released by the previous \
                     round's done"
                );
            }
        }
    });
}
