//! Spawning goroutines and joining them: volume, nesting, and joins across threads and
//! runtimes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{HANG_LIMIT, runtime, watchdog};

#[test]
fn hundred_thousand_goroutines_spawned_and_joined() {
    const N: u64 = 100_000;
    let sum = watchdog("100k spawn/join", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let handles: Vec<JoinHandle<u64>> =
                (0..N).map(|i| scheduler::spawn(move || i)).collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| {
                    let v = h.join().expect("a goroutine returning its index panicked");
                    assert_eq!(v, i as u64, "join returned another goroutine's result");
                    v
                })
                .sum::<u64>()
        })
    });
    assert_eq!(sum, N * (N - 1) / 2);
}

/// Fibonacci with a goroutine per call: every level spawns, joins, and parks.
fn fib(k: u32) -> u64 {
    if k < 2 {
        return u64::from(k);
    }
    let a = scheduler::spawn(move || fib(k - 1));
    let b = scheduler::spawn(move || fib(k - 2));
    a.join().unwrap() + b.join().unwrap()
}

#[test]
fn nested_fib_with_a_goroutine_per_call() {
    let results = watchdog("nested fib", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| (0..=16).map(fib).collect::<Vec<u64>>())
    });
    let expected: Vec<u64> = (0..=16)
        .scan((0u64, 1u64), |st, _| {
            let v = st.0;
            *st = (st.1, st.0 + st.1);
            Some(v)
        })
        .collect();
    assert_eq!(results, expected);
    assert_eq!(results[16], 987);
}

/// A tree of goroutines `depth` levels deep with `fanout` children each; returns the number
/// of nodes, counted by joins, and also counts every node in `visited`.
fn tree(depth: u32, fanout: usize, visited: Arc<AtomicUsize>) -> usize {
    visited.fetch_add(1, Ordering::Relaxed);
    if depth == 0 {
        return 1;
    }
    let children: Vec<JoinHandle<usize>> = (0..fanout)
        .map(|_| {
            let visited = visited.clone();
            scheduler::spawn(move || tree(depth - 1, fanout, visited))
        })
        .collect();
    1 + children
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum::<usize>()
}

#[test]
fn spawn_tree_counts_every_node() {
    // 1 + 5 + 25 + 125 + 625 + 3125 nodes.
    const NODES: usize = 3906;
    let (joined, visited) = watchdog("spawn tree", HANG_LIMIT, || {
        let rt = runtime(4);
        let visited = Arc::new(AtomicUsize::new(0));
        let v = visited.clone();
        let joined = rt.block_on(move || tree(5, 5, v));
        (joined, visited.load(Ordering::Relaxed))
    });
    assert_eq!(joined, NODES);
    assert_eq!(visited, NODES);
}

#[test]
fn detached_nested_goroutines_all_run() {
    // Every goroutine spawns children and drops their handles; a WaitGroup counts them.
    fn branch(depth: u32, wg: WaitGroup, hits: Arc<AtomicUsize>) {
        hits.fetch_add(1, Ordering::Relaxed);
        if depth > 0 {
            for _ in 0..3 {
                let (wg2, hits) = (wg.clone(), hits.clone());
                wg.add(1);
                drop(scheduler::spawn(move || branch(depth - 1, wg2, hits)));
            }
        }
        wg.done();
    }
    let hits = watchdog("detached tree", HANG_LIMIT, || {
        let rt = runtime(2);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        rt.block_on(move || {
            let wg = WaitGroup::new();
            wg.add(1);
            let wg2 = wg.clone();
            drop(scheduler::spawn(move || branch(6, wg2, h)));
            wg.wait();
            assert_eq!(wg.count(), 0);
        });
        hits.load(Ordering::Relaxed)
    });
    // 1 + 3 + ... + 3^6
    assert_eq!(hits, 1093);
}

#[test]
fn plain_thread_spawns_and_joins() {
    watchdog("plain thread spawn/join", HANG_LIMIT, || {
        let rt = runtime(2);
        let handles: Vec<JoinHandle<String>> = (0..200)
            .map(|i| rt.spawn(move || format!("goroutine {i}")))
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), format!("goroutine {i}"));
        }
        // Goroutines spawned from outside run on worker threads, not on the caller.
        let caller = std::thread::current().id();
        let (on_worker, name) = rt
            .spawn(|| {
                (
                    scheduler::in_goroutine(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .join()
            .unwrap();
        assert!(on_worker);
        let name = name.expect("worker threads are named");
        assert!(
            name.starts_with("scheduler-worker-"),
            "unexpected worker thread name {name:?}"
        );
        assert_ne!(
            rt.spawn(|| std::thread::current().id()).join().unwrap(),
            caller
        );
    });
}

#[test]
fn goroutine_joins_a_goroutine_of_another_runtime() {
    let results = watchdog("cross-runtime join", HANG_LIMIT, || {
        let rt1 = runtime(2);
        let rt2 = Arc::new(runtime(2));
        let rt2_inner = rt2.clone();
        let results = rt1.block_on(move || {
            let handles: Vec<JoinHandle<usize>> = (0..100)
                .map(|i| {
                    let rt2 = rt2_inner.clone();
                    scheduler::spawn(move || {
                        // Spawned on rt2 from rt1's goroutine, joined by rt1's goroutine: the
                        // wake comes from another runtime's thread.
                        let h = rt2.spawn(move || {
                            scheduler::yield_now();
                            i * 2
                        });
                        h.join().unwrap() + 1
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<usize>>()
        });
        drop(rt1);
        Arc::try_unwrap(rt2)
            .expect("rt1's goroutines dropped their rt2 handles")
            .shutdown_timeout(HANG_LIMIT)
            .expect("rt2 had nothing left to run");
        results
    });
    assert_eq!(results, (0..100).map(|i| i * 2 + 1).collect::<Vec<_>>());
}

#[test]
fn goroutine_ids_are_unique_and_count_from_one() {
    watchdog("goroutine ids", HANG_LIMIT, || {
        let rt = runtime(2);
        let first = rt.spawn(|| ());
        assert_eq!(first.id(), 1, "the first goroutine of a runtime has id 1");
        first.join().unwrap();
        let ids = rt.block_on(|| {
            let handles: Vec<JoinHandle<()>> = (0..1000).map(|_| scheduler::spawn(|| ())).collect();
            let ids: Vec<u64> = handles.iter().map(JoinHandle::id).collect();
            for h in handles {
                h.join().unwrap();
            }
            ids
        });
        let unique: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "goroutine ids repeat");
        assert!(!unique.contains(&1), "id 1 was reused");
    });
}

#[test]
fn is_finished_tracks_completion() {
    watchdog("is_finished", HANG_LIMIT, || {
        let rt = runtime(2);
        let gate = WaitGroup::new();
        gate.add(1);
        let g = gate.clone();
        let h = rt.spawn(move || {
            g.wait();
            7
        });
        // It cannot finish before the gate opens.
        assert!(!h.is_finished());
        assert!(format!("{h:?}").contains("finished: false"));
        gate.done();
        // Wait for completion without consuming the handle: a second goroutine waits for it.
        let probe = rt.spawn(move || {
            while !h.is_finished() {
                scheduler::yield_now();
            }
            h
        });
        let h = probe.join().unwrap();
        assert!(h.is_finished());
        assert_eq!(h.join().unwrap(), 7);
    });
}

#[test]
fn block_on_runs_concurrently_from_several_threads() {
    watchdog("concurrent block_on", HANG_LIMIT, || {
        let rt = Arc::new(runtime(2));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rt = rt.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .map(|i| {
                            rt.block_on(move || {
                                let h = scheduler::spawn(move || t * 1000 + i);
                                h.join().unwrap()
                            })
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        for (t, thread) in threads.into_iter().enumerate() {
            let expected: usize = (0..100).map(|i| t * 1000 + i).sum();
            assert_eq!(thread.join().unwrap(), expected);
        }
    });
}

/// Each level spawns the next and joins it: a chain `depth` goroutines deep.
fn chain(depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    scheduler::spawn(move || chain(depth - 1))
        .join()
        .expect("a chain link panicked")
        + 1
}

#[test]
fn deep_spawn_join_chain_does_not_overflow_the_joiners_stack() {
    // A join runs a goroutine that has not started on the joiner's own stack, but only while
    // at least half of that stack is free; deeper links get stacks of their own. Without that
    // rule 20,000 nested joins (far more than one 256 KiB stack holds) would overflow.
    const DEPTH: u32 = 20_000;
    let depth = watchdog("deep join chain", HANG_LIMIT, || {
        runtime(2).block_on(|| chain(DEPTH))
    });
    assert_eq!(depth, DEPTH);
}

#[test]
fn a_joined_goroutine_that_blocks_parks_its_joiner_and_still_completes() {
    // The joined goroutine (run on the joiner's stack if it has not started) waits for a
    // value that a third goroutine sends only after the join began.
    let got = watchdog("join of a blocking goroutine", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = scheduler::chan::bounded::<u32>(0);
            let receiver = scheduler::spawn(move || rx.recv().expect("sender alive") * 2);
            let sender = scheduler::spawn(move || tx.send(21).expect("receiver alive"));
            let got = receiver.join().expect("receiver panicked");
            sender.join().expect("sender panicked");
            got
        })
    });
    assert_eq!(got, 42);
}

/// A skynet node: spawns ten children, joins them in order, sums their results; each leaf
/// counts its runs in `runs[leaf]`.
fn ordered_tree(num: usize, size: usize, runs: Arc<Vec<AtomicUsize>>) -> usize {
    if size == 1 {
        runs[num].fetch_add(1, Ordering::Relaxed);
        return num;
    }
    let child = size / 10;
    let children: Vec<JoinHandle<usize>> = (0..10)
        .map(|i| {
            let runs = runs.clone();
            scheduler::spawn(move || ordered_tree(num + i * child, child, runs))
        })
        .collect();
    children
        .into_iter()
        .map(|h| h.join().expect("node panicked"))
        .sum()
}

#[test]
fn goroutines_joined_out_of_spawn_order_run_exactly_once_while_others_steal() {
    // Joining children in spawn order runs the older ones on the joiner's stack and leaves
    // their deque entries stale; another worker that steals such an entry after the handle
    // is gone must skip it, not start the goroutine a second time (a regression: it did).
    const LEAVES: usize = 10_000;
    watchdog("ordered joins under stealing", HANG_LIMIT, || {
        let rt = runtime(2);
        for round in 0..10 {
            let runs: Arc<Vec<AtomicUsize>> =
                Arc::new((0..LEAVES).map(|_| AtomicUsize::new(0)).collect());
            let r = runs.clone();
            let sum = rt.block_on(move || ordered_tree(0, LEAVES, r));
            assert_eq!(sum, LEAVES * (LEAVES - 1) / 2, "round {round}");
            for (leaf, count) in runs.iter().enumerate() {
                assert_eq!(
                    count.load(Ordering::Relaxed),
                    1,
                    "leaf {leaf} in round {round}"
                );
            }
        }
    });
}
