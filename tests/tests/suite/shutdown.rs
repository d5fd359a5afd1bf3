//! Shutting a runtime down: dropping it waits for every goroutine, and `shutdown_timeout`
//! cancels the ones that are still blocked at the deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use scheduler::chan::{self, TryRecvError, TrySendError};
use scheduler::{Cancelled, JoinHandle, WaitGroup};
use scheduler_tests::{DropCounter, HANG_LIMIT, runtime, watchdog};

/// Sets its flag when dropped: shows that a goroutine's destructors ran.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Deadline for shutdowns that must time out: long enough for nothing, since what they wait
/// for never happens.
const SHORT: Duration = Duration::from_millis(50);

#[test]
fn drop_waits_for_every_goroutine_detached_ones_included() {
    const PARENTS: usize = 16;
    const CHILDREN: usize = 8;
    const YIELDS: usize = 50;
    let (work, flags) = watchdog("drop waits", HANG_LIMIT, || {
        let rt = runtime(2);
        let work = Arc::new(AtomicUsize::new(0));
        let flags: Vec<Arc<AtomicBool>> = (0..PARENTS)
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        for flag in &flags {
            let (work, flag) = (work.clone(), flag.clone());
            // Handles dropped at once: nobody joins these, only the runtime's drop waits.
            rt.spawn(move || {
                for _ in 0..CHILDREN {
                    let work = work.clone();
                    drop(scheduler::spawn(move || {
                        for _ in 0..YIELDS {
                            scheduler::yield_now();
                            work.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                for _ in 0..YIELDS {
                    scheduler::yield_now();
                }
                flag.store(true, Ordering::Relaxed);
            });
        }
        drop(rt);
        let flags: Vec<bool> = flags.iter().map(|f| f.load(Ordering::Relaxed)).collect();
        (work.load(Ordering::Relaxed), flags)
    });
    assert_eq!(work, PARENTS * CHILDREN * YIELDS);
    assert!(flags.iter().all(|&f| f), "unfinished parents: {flags:?}");
}

#[test]
fn drop_waits_for_a_goroutine_blocked_until_a_plain_thread_releases_it() {
    watchdog("drop waits for a blocked goroutine", HANG_LIMIT, || {
        let rt = runtime(2);
        let gate = WaitGroup::new();
        gate.add(1);
        let finished = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let (g, f) = (gate.clone(), finished.clone());
        drop(rt.spawn(move || {
            started_tx.send(()).unwrap();
            g.wait();
            f.store(true, Ordering::SeqCst);
        }));
        started_rx.recv().unwrap();
        // Released by another thread once this one is inside `drop`, or before; either way the
        // drop must not return before the goroutine finished.
        let releaser = std::thread::spawn(move || gate.done());
        drop(rt);
        assert!(finished.load(Ordering::SeqCst));
        releaser.join().unwrap();
    });
}

#[test]
fn shutdown_timeout_returns_ok_when_everything_finishes() {
    watchdog("shutdown in time", HANG_LIMIT, || {
        let rt = runtime(2);
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let hits = hits.clone();
            rt.spawn(move || {
                scheduler::yield_now();
                hits.fetch_add(1, Ordering::Relaxed);
            });
        }
        rt.shutdown_timeout(HANG_LIMIT)
            .expect("every goroutine finishes in time");
        assert_eq!(hits.load(Ordering::Relaxed), 100);
    });
}

#[test]
fn shutdown_timeout_cancels_a_goroutine_blocked_forever() {
    watchdog("shutdown cancels", HANG_LIMIT, || {
        let rt = runtime(2);
        let dropped = Arc::new(AtomicBool::new(false));
        let after_wait = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let never = WaitGroup::new();
        never.add(1);
        let (d, a, n) = (dropped.clone(), after_wait.clone(), never.clone());
        let handle = rt.spawn(move || {
            let _guard = SetOnDrop(d);
            started_tx.send(()).unwrap();
            n.wait(); // nobody ever calls done
            a.store(true, Ordering::SeqCst);
        });
        // It has started and is about to park on the group that never completes.
        started_rx.recv().unwrap();

        let err = rt
            .shutdown_timeout(SHORT)
            .expect_err("a goroutine blocked forever cannot finish in time");
        assert_eq!(err.remaining(), 1);
        assert!(err.to_string().contains('1'), "message: {err}");
        // It lists the goroutine it cancelled, with what it waited for.
        let unfinished: Vec<_> = err
            .unfinished()
            .iter()
            .map(|g| (g.id(), g.state()))
            .collect();
        assert_eq!(
            unfinished,
            [(
                handle.id(),
                scheduler::GoroutineState::Blocked(scheduler::WaitReason::WaitGroup)
            )]
        );
        assert!(err.to_string().contains("[wait group"), "message: {err}");
        assert!(dropped.load(Ordering::SeqCst), "its destructor did not run");
        assert!(
            !after_wait.load(Ordering::SeqCst),
            "the cancelled wait returned normally"
        );
        let payload = handle
            .join()
            .expect_err("a cancelled goroutine has no result");
        assert!(
            payload.is::<Cancelled>(),
            "payload is not scheduler::Cancelled"
        );
        assert_eq!(never.count(), 1);
    });
}

#[test]
fn shutdown_timeout_cancels_goroutines_blocked_in_every_way() {
    watchdog("shutdown cancels several", HANG_LIMIT, || {
        let rt = runtime(2);
        let never = WaitGroup::new();
        never.add(1);
        let started = WaitGroup::new();
        let guards: Vec<Arc<AtomicBool>> =
            (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();

        // Blocked on a WaitGroup.
        started.add(3);
        let (g, n, s) = (guards[0].clone(), never.clone(), started.clone());
        let waiter = rt.spawn(move || {
            let _guard = SetOnDrop(g);
            s.done();
            n.wait();
        });
        // Blocked joining a goroutine that is itself blocked.
        let (g, n, s) = (guards[1].clone(), never.clone(), started.clone());
        let joiner = rt.spawn(move || {
            let _guard = SetOnDrop(g);
            let inner = scheduler::spawn(move || n.wait());
            s.done();
            inner.join()
        });
        // Yielding forever: a suspension point every time round.
        let (g, s) = (guards[2].clone(), started.clone());
        let spinner = rt.spawn(move || {
            let _guard = SetOnDrop(g);
            s.done();
            loop {
                scheduler::yield_now();
            }
        });
        started.wait();
        // A plain thread blocked in a join when the shutdown comes.
        let (tx, rx) = mpsc::channel::<JoinHandle<()>>();
        let plain = std::thread::spawn(move || rx.recv().unwrap().join());
        tx.send(waiter).unwrap();

        let err = rt
            .shutdown_timeout(SHORT)
            .expect_err("blocked goroutines cannot finish in time");
        // waiter, joiner, joiner's inner goroutine, spinner.
        assert_eq!(err.remaining(), 4);
        for (i, g) in guards.iter().enumerate() {
            assert!(g.load(Ordering::SeqCst), "guard {i} was not dropped");
        }
        let payload = plain.join().unwrap().expect_err("the waiter was cancelled");
        assert!(payload.is::<Cancelled>());
        let payload = joiner.join().expect_err("the joiner was cancelled");
        assert!(payload.is::<Cancelled>());
        let payload = spinner.join().expect_err("the spinner was cancelled");
        assert!(payload.is::<Cancelled>());
    });
}

#[test]
fn shutdown_timeout_unwinds_goroutines_parked_in_plain_send_and_recv() {
    // A goroutine blocked in a plain send or recv waits on its own stack, with the channel
    // pointing at it. Cancelled, it must take itself out of the channel before its stack
    // unwinds: afterwards the channel has no waiting party left to hand a value to or take
    // one from, and every value is dropped exactly once.
    watchdog(
        "shutdown unwinds parked channel parties",
        HANG_LIMIT,
        || {
            let rt = runtime(2);
            let drops = DropCounter::new();
            let (tx, rx) = chan::bounded(0);
            let (keep_tx, keep_rx) = (tx.clone(), rx.clone());
            let started = WaitGroup::new();
            const SENDERS: usize = 8;
            const RECEIVERS: usize = 8;
            started.add(SENDERS);
            for i in 0..SENDERS {
                let (tx, value, s) = (tx.clone(), drops.value(i), started.clone());
                rt.spawn(move || {
                    s.done();
                    let _ = tx.send(value);
                });
            }
            started.wait();
            // The senders may still be on their way into `send`: wait until the channel holds
            // every one of them, checking from a goroutine (a receive takes one out, so count
            // through try_send, which can only succeed when a receiver waits: never here).
            let (other_tx, other_rx) = chan::bounded::<usize>(0);
            started.add(RECEIVERS);
            for _ in 0..RECEIVERS {
                let (rx, s) = (other_rx.clone(), started.clone());
                rt.spawn(move || {
                    s.done();
                    let _ = rx.recv();
                });
            }
            started.wait();
            drop((tx, rx));

            let err = rt
                .shutdown_timeout(SHORT)
                .expect_err("parked senders and receivers cannot finish in time");
            assert_eq!(err.remaining(), SENDERS + RECEIVERS);
            assert_eq!(
                drops.dropped(),
                SENDERS,
                "every value a cancelled sender offered was dropped once"
            );
            // Nobody waits in either channel any more: a hand-over has no one to go to.
            assert!(matches!(
                keep_tx.try_send(drops.value(100)),
                Err(TrySendError::Full(_))
            ));
            assert_eq!(keep_rx.try_recv().map(|v| v.id), Err(TryRecvError::Empty));
            assert!(matches!(other_tx.try_send(7), Err(TrySendError::Full(7))));
            assert_eq!(drops.dropped(), SENDERS + 1);
        },
    );
}

#[test]
fn shutdown_timeout_refuses_new_spawns_finishes_running_and_unwinds_blocked() {
    // Under load: spawners keep spawning, some goroutines block forever, some are busy.
    // Once the shutdown begins every spawn is refused with ShuttingDown; the busy ones finish;
    // the blocked ones are unwound at the deadline and counted.
    watchdog("shutdown under load", HANG_LIMIT, || {
        let rt = runtime(2);
        const SPAWNERS: usize = 4;
        const BLOCKED: usize = 6;
        let never = WaitGroup::new();
        never.add(1);
        let started = WaitGroup::new();
        started.add(SPAWNERS + BLOCKED);
        let refused = Arc::new(AtomicUsize::new(0));
        let finished_children = Arc::new(AtomicUsize::new(0));
        let unwound = Arc::new(AtomicUsize::new(0));
        for _ in 0..BLOCKED {
            let (never, started, unwound) = (never.clone(), started.clone(), unwound.clone());
            rt.spawn(move || {
                let _count = CountOnDrop(unwound);
                started.done();
                never.wait();
            });
        }
        let mut spawners = Vec::new();
        for _ in 0..SPAWNERS {
            let (started, refused, finished) =
                (started.clone(), refused.clone(), finished_children.clone());
            spawners.push(rt.spawn(move || {
                started.done();
                // Spawn short-lived children until the runtime refuses.
                loop {
                    let finished = finished.clone();
                    match scheduler::try_spawn(move || {
                        scheduler::yield_now();
                        finished.fetch_add(1, Ordering::SeqCst);
                    }) {
                        Ok(_) => scheduler::yield_now(),
                        Err(scheduler::SpawnError::ShuttingDown) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
            }));
        }
        started.wait();
        let err = rt
            .shutdown_timeout(SHORT)
            .expect_err("the blocked goroutines cannot finish");
        assert_eq!(
            err.remaining(),
            BLOCKED,
            "only the blocked ones were forced"
        );
        assert_eq!(
            refused.load(Ordering::SeqCst),
            SPAWNERS,
            "every spawner was refused"
        );
        assert_eq!(unwound.load(Ordering::SeqCst), BLOCKED, "destructors ran");
        for spawner in spawners {
            spawner.join().expect("a spawner returns once refused");
        }
        assert!(finished_children.load(Ordering::SeqCst) > 0);
    });
}

#[test]
fn spawn_after_shutdown_began_panics_with_the_reason() {
    watchdog("spawn refused", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        rt.spawn(move || {
            ready_tx.send(()).unwrap();
            // Wait, yielding, until the shutdown below refuses spawns; then spawn anyway.
            while scheduler::try_spawn(|| ()).is_ok() {
                scheduler::yield_now();
            }
            let outcome = std::panic::catch_unwind(|| scheduler::spawn(|| ()));
            let message = outcome
                .err()
                .and_then(|p| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tx.send(message).unwrap();
        });
        ready_rx.recv().unwrap();
        rt.shutdown_timeout(HANG_LIMIT).expect("it finishes");
        let message = rx.recv().unwrap();
        assert!(
            message.contains("shutting down"),
            "spawn panicked with {message:?}"
        );
    });
}

/// Counts itself when dropped.
struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
